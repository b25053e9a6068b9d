// The bench runs from its build (dist-bench/bench/) but reads files that only a checkout has: the PyTorch peer's
// script beside the bench's sources and GPT-2's tokenizer files among the test fixtures. Both are found from the
// checkout's root (the first folder above with a package.json), which is the same from the source and the build.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function checkoutRoot(from: string): string {
  for (let folder = from; ; folder = path.dirname(folder)) {
    if (existsSync(path.join(folder, 'package.json'))) return folder;
    if (path.dirname(folder) === folder) throw new Error(`no package.json above ${from}: the bench runs from a checkout of gpt-neo`);
  }
}

export const CHECKOUT = checkoutRoot(path.dirname(fileURLToPath(import.meta.url)));

/** The bench's source folder, where files that are not TypeScript (the PyTorch peer) stay. */
export const BENCH_SOURCE = path.join(CHECKOUT, 'bench');
