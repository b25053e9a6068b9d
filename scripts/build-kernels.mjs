// The page's own WebAssembly kernels: compiles kernels/linear.ts with AssemblyScript (a devDependency, so the
// build needs nothing but the npm registry) into dist/kernels. Two builds of the same source: linear.wasm over a
// plain imported memory, and linear-shared.wasm over an imported shared memory for pages that run it on several
// worker threads (shared memories must declare a maximum: 65536 pages, all that wasm32 addresses).
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import asc from 'assemblyscript/asc';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const KERNELS_DIST = path.join(ROOT, 'dist', 'kernels');

const COMMON = ['-O3', '--enable', 'simd', '--runtime', 'stub', '--noAssert', '--importMemory'];
const BUILDS = [
  { out: 'linear.wasm', flags: [] },
  { out: 'linear-shared.wasm', flags: ['--enable', 'threads', '--sharedMemory', '--maximumMemory', '65536'] },
];

export async function buildKernels() {
  await mkdir(KERNELS_DIST, { recursive: true });
  for (const { out, flags } of BUILDS) {
    const file = path.join(KERNELS_DIST, out);
    let errors = '';
    const stderr = { write: (text) => void (errors += String(text)) };
    const argv = ['kernels/linear.ts', '--baseDir', ROOT, '--outFile', path.relative(ROOT, file), ...COMMON, ...flags];
    const { error } = await asc.main(argv, { stdout: { write: () => {} }, stderr });
    if (error) throw new Error(`kernels/linear.ts -> ${out}: ${error.message}\n${errors}`);
  }
  return KERNELS_DIST;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildKernels();
