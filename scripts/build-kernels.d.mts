/** dist/kernels, where the WebAssembly kernels go. */
export declare const KERNELS_DIST: string;
/** Compiles kernels/int4.ts into dist/kernels/int4.wasm and int4-shared.wasm; returns that folder. */
export declare function buildKernels(): Promise<string>;
