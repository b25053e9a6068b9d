// The page's own WebAssembly kernels: compiles kernels/int4.ts with AssemblyScript (a devDependency, so the
// build needs nothing but the npm registry) into dist/kernels. Two builds of the same source: int4.wasm over a
// plain imported memory, and int4-shared.wasm over an imported shared memory for pages that run it on several
// worker threads (shared memories must declare a maximum: 65536 pages, all that wasm32 addresses).
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import asc from 'assemblyscript/asc';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const KERNELS_DIST = path.join(ROOT, 'dist', 'kernels');

const COMMON = ['-O3', '--enable', 'simd', '--runtime', 'stub', '--noAssert', '--importMemory'];
const BUILDS = [
  { out: 'int4.wasm', flags: [] },
  { out: 'int4-shared.wasm', flags: ['--enable', 'threads', '--sharedMemory', '--maximumMemory', '65536'] },
];

export async function buildKernels() {
  await mkdir(KERNELS_DIST, { recursive: true });
  for (const { out, flags } of BUILDS) {
    const file = path.join(KERNELS_DIST, out);
    let errors = '';
    const stderr = { write: (text) => void (errors += String(text)) };
    const argv = ['kernels/int4.ts', '--baseDir', ROOT, '--outFile', path.relative(ROOT, file), ...COMMON, ...flags];
    const { error } = await asc.main(argv, { stdout: { write: () => {} }, stderr });
    if (error) throw new Error(`kernels/int4.ts -> ${out}: ${error.message}\n${errors}`);
  }
  return KERNELS_DIST;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildKernels();
