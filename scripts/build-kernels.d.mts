/** dist/kernels, where the WebAssembly kernels go. */
export declare const KERNELS_DIST: string;
/** Compiles kernels/linear.ts into dist/kernels/linear.wasm and linear-shared.wasm; returns that folder. */
export declare function buildKernels(): Promise<string>;
