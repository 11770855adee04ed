/**
 * Hashes of the pages of a stopped process, read with process_vm_readv and hashed in the shim on
 * every core at once (one FFI worker per core, each on its own 32 MiB chunks): what post-copy's
 * manifest needs of the lazy pages inside the freeze, with no per-page work in TypeScript.
 *
 * @example
 * ```ts
 * import { hashFrozenRuns } from "./live_hashes.ts";
 * const hashes = await hashFrozenRuns(hostPid, [{ vaddr: 0x7f0000000000, nrPages: 65536 }]);
 * // 16 bytes per page, in the order of the runs
 * ```
 *
 * @module
 */
import { hashDiffAsync, type HashDiffBuffers } from "../native/ffi.ts";

const PAGE = 4096;
const HASH = 16;
/** Pages per hashing call (a chunk): 32 MiB. */
export const CHUNK_PAGES = 8192;
/** process_vm_readv buffer per worker, in pages (1 MiB). */
const READ_PAGES = 256;

/** A run of consecutive pages. */
export interface PageRun {
  /** First page address. */
  vaddr: number;
  /** Pages in the run. */
  nrPages: number;
}

/** Options of {@linkcode hashFrozenRuns}. */
export interface HashFrozenOptions {
  /** Concurrent workers. @default the machine's cores */
  workers?: number;
}

/** Raised when a page of the stopped process cannot be read. */
export class UnreadablePageError extends Error {
  /**
   * @param address the first page that could not be read
   * @param pid the host pid read
   */
  constructor(readonly address: number, readonly pid: number) {
    super(`page 0x${address.toString(16)} of pid ${pid} cannot be read`);
    this.name = "UnreadablePageError";
  }
}

/**
 * The 16-byte shim hash of every page of `runs` in host pid `pid` (which must not run: the
 * pages are read as they are now), in run order. Throws {@linkcode UnreadablePageError} when a
 * page cannot be read.
 *
 * @example
 * ```ts
 * const h = await hashFrozenRuns(pid, [{ vaddr: 0x400000, nrPages: 4 }]); // 64 bytes
 * ```
 */
export async function hashFrozenRuns(
  pid: number,
  runs: PageRun[],
  options: HashFrozenOptions = {},
): Promise<Uint8Array> {
  const chunks: { vaddr: number; nrPages: number; at: number }[] = [];
  let total = 0;
  for (const r of runs) {
    for (let off = 0; off < r.nrPages; off += CHUNK_PAGES) {
      const n = Math.min(CHUNK_PAGES, r.nrPages - off);
      chunks.push({ vaddr: r.vaddr + off * PAGE, nrPages: n, at: total });
      total += n;
    }
  }
  const out = new Uint8Array(total * HASH);
  let next = 0;
  const worker = async () => {
    try {
      await work();
    } catch (e) {
      next = chunks.length; // the others stop at their next chunk
      throw e;
    }
  };
  const work = async () => {
    const b = chunkBuffers();
    const bytes = new Uint8Array(b.hashes.buffer);
    while (next < chunks.length) {
      const c = chunks[next++];
      b.present.fill(1, 0, c.nrPages);
      b.known.fill(0, 0, c.nrPages);
      await hashDiffAsync(pid, c.vaddr, c.nrPages, b);
      if (Number(b.stats[1]) > 0) {
        const i = b.known.subarray(0, c.nrPages).indexOf(0);
        throw new UnreadablePageError(c.vaddr + i * PAGE, pid);
      }
      out.set(bytes.subarray(0, c.nrPages * HASH), c.at * HASH);
    }
  };
  const n = Math.max(1, Math.min(options.workers ?? navigator.hardwareConcurrency, chunks.length));
  await Promise.all(Array.from({ length: n }, worker));
  return out;
}

/**
 * One worker's buffers for a chunk of {@linkcode CHUNK_PAGES} pages (final_scan.ts uses them too).
 *
 * @example
 * ```ts
 * const b = chunkBuffers(); // b.hashes: 2 words per page of a 32 MiB chunk
 * ```
 */
export function chunkBuffers(): HashDiffBuffers {
  return {
    present: new Uint8Array(CHUNK_PAGES),
    hashes: new BigUint64Array(CHUNK_PAGES * 2),
    known: new Uint8Array(CHUNK_PAGES),
    dirty: new Uint32Array(CHUNK_PAGES),
    readBuffer: new Uint8Array(READ_PAGES * PAGE),
    stats: new BigUint64Array(3),
  };
}
