/// <reference lib="dom" />
import { MODEL_FILE, WEIGHTS_FILE } from '../onnx/write.js';

/** Converted models kept between visits, one entry per conversion key (as the Node conversion cache names its folders). */
export interface ConvertedModelStore {
  read(entry: string, onProgress: (doneBytes: number, totalBytes: number) => void): Promise<{ model: Uint8Array; weights: Uint8Array } | null>;
  write(entry: string, model: Uint8Array, weights: Uint8Array): Promise<void>;
}

const ROOT = 'gpt-neo-onnx';
/** Written last, so an entry cut short by a closed tab is never read. */
const COMPLETE = 'complete';

/**
 * The Origin Private File System: per-site storage the browser keeps on disk, large enough for a 1.3B model.
 * Undefined where the browser has none (then every load converts again).
 */
export function opfsModelStore(): ConvertedModelStore | undefined {
  if (typeof navigator === 'undefined' || !navigator.storage?.getDirectory) return undefined;
  const folder = async (entry: string, create: boolean) =>
    (await (await navigator.storage.getDirectory()).getDirectoryHandle(ROOT, { create })).getDirectoryHandle(entry, { create });
  return {
    async read(entry, onProgress) {
      let dir: FileSystemDirectoryHandle;
      try {
        dir = await folder(entry, false);
        await dir.getFileHandle(COMPLETE);
      } catch {
        return null;
      }
      const model = new Uint8Array(await (await (await dir.getFileHandle(MODEL_FILE)).getFile()).arrayBuffer());
      const file = await (await dir.getFileHandle(WEIGHTS_FILE)).getFile();
      const weights = new Uint8Array(file.size);
      const reader = file.stream().getReader();
      for (let done = 0; ; ) {
        const { done: finished, value } = await reader.read();
        if (finished) break;
        weights.set(value, done);
        done += value.length;
        onProgress(done, file.size);
      }
      return { model, weights };
    },
    async write(entry, model, weights) {
      const root = await (await navigator.storage.getDirectory()).getDirectoryHandle(ROOT, { create: true });
      await root.removeEntry(entry, { recursive: true }).catch(() => {});
      const dir = await folder(entry, true);
      for (const [name, bytes] of [[MODEL_FILE, model], [WEIGHTS_FILE, weights], [COMPLETE, new Uint8Array(0)]] as const) {
        const writable = await (await dir.getFileHandle(name, { create: true })).createWritable();
        await writable.write(bytes as Uint8Array<ArrayBuffer>);
        await writable.close();
      }
    },
  };
}
