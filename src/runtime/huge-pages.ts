// Memory backed by transparent huge pages (2 MiB) on Linux, for what decoding streams through once per token:
// the weights (weights-in-memory.ts) and the KV cache. Reading gigabytes through 4 KiB pages misses the TLB all
// the time; with THP in `madvise` mode (common, and this project's host) only memory advised with
// MADV_HUGEPAGE gets 2 MiB pages. koffi (FFI) calls the C library's mmap and madvise.
import { open } from 'node:fs/promises';
import koffi from 'koffi';

const PROT_READ = 0x1;
const PROT_WRITE = 0x2;
const MAP_PRIVATE = 0x02;
const MAP_ANONYMOUS = 0x20;
const MADV_HUGEPAGE = 14;
const MAP_FAILED = 0xffff_ffff_ffff_ffffn;
const HUGE_PAGE = 2 * 2 ** 20;
/** The file is read into the region this many bytes at a time (one view each: koffi views stay under 4 GiB). */
const READ_CHUNK = 64 * 2 ** 20;
/** Reads in flight while filling (libuv's thread pool runs four by default). */
const READS_IN_FLIGHT = 4;

interface Libc {
  mmap(addr: null, length: number, prot: number, flags: number, fd: number, offset: number): bigint;
  madvise(addr: bigint, length: number, advice: number): number;
  munmap(addr: bigint, length: number): number;
}
let libc: Libc | undefined;

function memoryFunctions(): Libc {
  if (process.platform !== 'linux') {
    throw new Error(`huge-page memory uses Linux's mmap flags and transparent huge pages; on ${process.platform} pass weightsInMemory: false`);
  }
  if (!libc) {
    const c = koffi.load(null);
    libc = {
      mmap: c.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, intptr_t offset)'),
      madvise: c.func('int madvise(void *addr, size_t length, int advice)'),
      munmap: c.func('int munmap(void *addr, size_t length)'),
    } as Libc;
  }
  return libc;
}

/** The 2 MiB boundary at or below `address`. */
function hugePageBelow(address: bigint): bigint {
  return (address / BigInt(HUGE_PAGE)) * BigInt(HUGE_PAGE);
}

/** The 2 MiB boundary at or above `address`. */
function hugePageAbove(address: bigint): bigint {
  return hugePageBelow(address + BigInt(HUGE_PAGE - 1));
}

/**
 * A zeroed Float32Array whose 2 MiB pages are advised for huge pages before anything touches them, so its first
 * writes fault them in as 2 MiB pages: for the KV cache, which attention reads whole on every token. Advice
 * only; where there are no huge pages (other systems, the browser build, small arrays) it is a plain array.
 */
export function hugePageFloat32Array(length: number): Float32Array {
  const array = new Float32Array(length);
  if (typeof process === 'undefined' || process.platform !== 'linux' || array.byteLength < 2 * HUGE_PAGE) return array;
  // Node allocates large buffers with calloc, which maps fresh zero pages: none is faulted in yet.
  const address = koffi.address(array);
  const start = hugePageAbove(address);
  const end = hugePageBelow(address + BigInt(array.byteLength));
  if (end > start) memoryFunctions().madvise(start, Number(end - start), MADV_HUGEPAGE);
  return array;
}

/** `length` bytes of a file at `fileOffset`, to be copied to `regionOffset` of a region. */
export interface FileRange {
  fileOffset: number;
  regionOffset: number;
  length: number;
}

/** Anonymous private memory, 2 MiB-aligned and advised for transparent huge pages. */
export class HugePageRegion {
  private released = false;

  private constructor(
    private readonly mapping: bigint,
    private readonly mappedBytes: number,
    private readonly base: bigint,
    readonly bytes: number,
  ) {}

  static allocate(minimumBytes: number, purpose: string): HugePageRegion {
    const c = memoryFunctions();
    const bytes = Math.ceil(minimumBytes / HUGE_PAGE) * HUGE_PAGE;
    // One spare huge page, so the region can start on a 2 MiB boundary (mmap only aligns to 4 KiB).
    const mappedBytes = bytes + HUGE_PAGE;
    const mapping = c.mmap(null, mappedBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapping === MAP_FAILED || mapping === 0n) {
      throw new Error(
        `could not reserve ${(bytes / 1e9).toFixed(2)} GB of memory for the weights of ${purpose} (mmap: ${koffi.errno()}); ` +
          'pass weightsInMemory: false to read them memory-mapped instead',
      );
    }
    const base = hugePageAbove(mapping);
    // Advice only: without transparent huge pages the region still works, in 4 KiB pages.
    c.madvise(base, bytes, MADV_HUGEPAGE);
    return new HugePageRegion(mapping, mappedBytes, base, bytes);
  }

  /** An ArrayBuffer over [offset, offset + length) of the region, without a copy. */
  view(offset: number, length: number): ArrayBuffer {
    if (this.released) throw new Error('the weights in memory were released');
    return koffi.view(this.base + BigInt(offset), length);
  }

  /**
   * Copies byte ranges of `file` into the region (faulting its pages in as huge pages), several chunks at a time:
   * on this project's VM four reads in flight took the 5.3 GB of a paged-out fp32 1.3B from disk in 2.1 to 2.8 s
   * where one took 3.4 to 10.9 s.
   */
  async fill(file: string, ranges: readonly FileRange[]): Promise<void> {
    const chunks = ranges.flatMap((range) =>
      Array.from({ length: Math.ceil(range.length / READ_CHUNK) }, (_, i) => {
        const skip = i * READ_CHUNK;
        return { fileOffset: range.fileOffset + skip, regionOffset: range.regionOffset + skip, length: Math.min(READ_CHUNK, range.length - skip) };
      }),
    );
    const handle = await open(file, 'r');
    let next = 0;
    const reader = async () => {
      for (let chunk = chunks[next++]; chunk; chunk = chunks[next++]) {
        for (let done = 0; done < chunk.length; ) {
          const view = new Uint8Array(this.view(chunk.regionOffset + done, chunk.length - done));
          const { bytesRead } = await handle.read(view, 0, view.length, chunk.fileOffset + done);
          if (bytesRead === 0) {
            const { size } = await handle.stat();
            throw new Error(`${file} ends at ${size} bytes, but the model's weights need ${chunk.fileOffset + chunk.length}`);
          }
          done += bytesRead;
        }
      }
    };
    // Every reader settles before the file closes and a failure can unmap the region under a read.
    const results = await Promise.allSettled(Array.from({ length: READS_IN_FLIGHT }, reader));
    await handle.close();
    const failure = results.find((result) => result.status === 'rejected');
    if (failure) throw failure.reason;
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    memoryFunctions().munmap(this.mapping, this.mappedBytes);
  }
}
