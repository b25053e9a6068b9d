// The browser build: bundles src/browser (library, conversion worker, demo page) into dist/web with esbuild,
// next to the onnxruntime-web WebAssembly files it loads. Run by `npm run build`; tests call buildBrowser().
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { buildKernels } from './build-kernels.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const WEB_DIST = path.join(ROOT, 'dist', 'web');

/**
 * Node-only modules that shared code imports for its Node paths (files, the onnxruntime-node session, the zip
 * reader, terminal progress bars, the cache locks' flock). The browser paths never call them; if one is called
 * anyway, the stub throws an error naming the module instead of failing somewhere obscure.
 */
const NODE_ONLY = /^(node:.*|onnxruntime-node|cli-progress|koffi)$/;

const nodeOnlyStub = {
  name: 'node-only-stub',
  setup(build) {
    build.onResolve({ filter: NODE_ONLY }, (args) => ({ path: args.path, namespace: 'node-only' }));
    build.onLoad({ filter: /.*/, namespace: 'node-only' }, (args) => ({
      loader: 'js',
      contents: `
        const fail = (name) => () => { throw new Error(${JSON.stringify(args.path)} + ': ' + name + ' is only available in Node.js, not in the browser build'); };
        const api = new Proxy({}, { get: (_, key) => (typeof key === 'symbol' ? undefined : fail(key)) });
        module.exports = Object.create(api);`,
    }));
  },
};

/**
 * ONNX Runtime's WebAssembly builds, loaded at run time from ./ort/ beside the bundle: the plain one (SIMD,
 * threads) for device 'wasm', the one with WebGPU (JSEP) for 'webgpu'.
 */
const ORT_FILES = ['ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm', 'ort-wasm-simd-threaded.jsep.mjs', 'ort-wasm-simd-threaded.jsep.wasm'];

/** The project's own WebAssembly kernels (scripts/build-kernels.mjs), loaded from ./kernels/ beside the bundle. */
const KERNEL_FILES = ['linear.wasm', 'linear-shared.wasm'];

export async function buildBrowser({ minify = true } = {}) {
  await mkdir(path.join(WEB_DIST, 'ort'), { recursive: true });
  await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: {
      'gpt-neo': 'src/browser/index.ts',
      worker: 'src/browser/worker.ts',
      'kernel-thread': 'src/browser/kernels/helper-thread.ts',
      demo: 'src/browser/demo/demo.ts',
    },
    outdir: WEB_DIST,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify,
    sourcemap: true,
    // onnxruntime-web's entry that loads its WebAssembly files from env.wasm.wasmPaths instead of inlining them.
    conditions: ['onnxruntime-web-use-extern-wasm'],
    plugins: [nodeOnlyStub],
    logLevel: 'warning',
  });
  const ortDist = path.join(ROOT, 'node_modules', 'onnxruntime-web', 'dist');
  await Promise.all(ORT_FILES.map((file) => copyFile(path.join(ortDist, file), path.join(WEB_DIST, 'ort', file))));
  await copyFile(path.join(ROOT, 'src', 'browser', 'demo', 'index.html'), path.join(WEB_DIST, 'index.html'));
  await mkdir(path.join(WEB_DIST, 'kernels'), { recursive: true });
  const kernels = await buildKernels();
  await Promise.all(KERNEL_FILES.map((file) => copyFile(path.join(kernels, file), path.join(WEB_DIST, 'kernels', file))));
  return WEB_DIST;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildBrowser();
