/**
 * The final dirty scan of a frozen tree: read the pages of the runs a lazy dump left in memory
 * with process_vm_readv, hash them in the shim, and compare them with what the destination
 * holds — on every core at once (one FFI worker per core, each on its own chunks). The held
 * hashes come as a {@linkcode HeldIndex} built before the freeze, so the scan does no per-page
 * work in TypeScript when the held pages of a run are contiguous (the common case).
 *
 * @module
 */
import { hashDiffAsync, type HashDiffBuffers } from "../native/ffi.ts";
import { CHUNK_PAGES, chunkBuffers } from "./live_hashes.ts";
import { lowerBound } from "../util/lower_bound.ts";

const PAGE = 4096;

/** Pages a process's destination holds: sorted addresses and their hashes (2 words each). */
export interface HeldIndex {
  /** Page addresses, ascending. */
  addresses: Float64Array;
  /** Two 64-bit words per page (the shim's hash), in the order of `addresses`. */
  hashes: BigUint64Array;
}

/** A run of pages to scan. */
export interface ScanRun {
  /** First page address. */
  vaddr: number;
  /** Pages in the run. */
  nrPages: number;
}

/**
 * Index held hashes (address → 16-byte hash) for {@linkcode scanChanged}; done before the freeze.
 *
 * @example
 * ```ts
 * const index = heldIndex(new Map([[0x1000, new Uint8Array(16)]]));
 * ```
 */
export function heldIndex(held: ReadonlyMap<number, Uint8Array>): HeldIndex {
  const addresses = Float64Array.from(held.keys()).sort();
  const bytes = new Uint8Array(addresses.length * 16);
  for (let i = 0; i < addresses.length; i++) bytes.set(held.get(addresses[i])!, i * 16);
  return { addresses, hashes: new BigUint64Array(bytes.buffer) };
}

/** Options of {@linkcode scanChanged}. */
export interface ScanOptions {
  /** Concurrent scan workers. @default the machine's cores */
  workers?: number;
  /**
   * Collect the addresses of pages that cannot be read here instead of failing (a scan of what
   * the destination holds meets pages unmapped since). @default none: an unreadable page throws
   */
  unreadable?: number[];
}

/**
 * The runs of consecutive addresses of a held index (what a scan of everything held reads).
 *
 * @example
 * ```ts
 * heldRuns(heldIndex(held)); // [{ vaddr: 0x7f0000000000, nrPages: 65536 }, …]
 * ```
 */
export function heldRuns(index: HeldIndex): ScanRun[] {
  const a = index.addresses;
  const runs: ScanRun[] = [];
  for (let i = 0; i < a.length;) {
    let j = i + 1;
    while (j < a.length && a[j] === a[j - 1] + PAGE) j++;
    runs.push({ vaddr: a[i], nrPages: j - i });
    i = j;
  }
  return runs;
}

/**
 * The addresses of the pages of `runs` that `index` does not hold, ascending per run.
 *
 * @example
 * ```ts
 * missingFrom(index, [{ vaddr: 0x1000, nrPages: 4 }]); // pages new since the last round
 * ```
 */
export function missingFrom(index: HeldIndex, runs: ScanRun[]): number[] {
  const a = index.addresses;
  const out: number[] = [];
  for (const r of runs) {
    const i = lowerBound(a, r.vaddr);
    const last = r.vaddr + (r.nrPages - 1) * PAGE;
    if (i + r.nrPages <= a.length && a[i] === r.vaddr && a[i + r.nrPages - 1] === last) continue;
    for (let p = 0, k = i; p < r.nrPages; p++) {
      const addr = r.vaddr + p * PAGE;
      while (k < a.length && a[k] < addr) k++;
      if (k >= a.length || a[k] !== addr) out.push(addr);
    }
  }
  return out;
}

/**
 * The addresses (ascending per run) of the pages of `runs` in host pid `pid` whose contents
 * differ from `held` or that `held` lacks. Throws when a page cannot be read (the freeze must
 * then fail: the destination could not be brought up to date).
 *
 * @example
 * ```ts
 * const changed = await scanChanged(pid, [{ vaddr: 0x7f0000000000, nrPages: 65536 }], index);
 * ```
 */
export async function scanChanged(
  pid: number,
  runs: ScanRun[],
  held: HeldIndex,
  options: ScanOptions = {},
): Promise<number[]> {
  const chunks: ScanRun[] = [];
  for (const r of runs) {
    for (let off = 0; off < r.nrPages; off += CHUNK_PAGES) {
      chunks.push({ vaddr: r.vaddr + off * PAGE, nrPages: Math.min(CHUNK_PAGES, r.nrPages - off) });
    }
  }
  const results: number[][] = new Array(chunks.length);
  let next = 0;
  const worker = async () => {
    const b = chunkBuffers();
    while (next < chunks.length) {
      const k = next++;
      results[k] = await scanChunk(pid, chunks[k], held, b, options.unreadable);
    }
  };
  const n = Math.max(1, Math.min(options.workers ?? navigator.hardwareConcurrency, chunks.length));
  await Promise.all(Array.from({ length: n }, worker));
  return results.flat();
}

async function scanChunk(
  pid: number,
  chunk: ScanRun,
  held: HeldIndex,
  b: HashDiffBuffers,
  unreadable: number[] | undefined,
): Promise<number[]> {
  const n = chunk.nrPages;
  fillHeld(chunk, held, b);
  b.present.fill(1, 0, n);
  const dirty = await hashDiffAsync(pid, chunk.vaddr, n, b);
  if (Number(b.stats[1]) > 0 && unreadable) {
    for (let i = 0; i < n; i++) if (!b.known[i]) unreadable.push(chunk.vaddr + i * PAGE);
  } else if (Number(b.stats[1]) > 0) {
    // A page CRIU left in memory that cannot be read now: the destination cannot be brought
    // up to date, so the freeze fails (and the source resumes).
    const at = b.known.subarray(0, n).indexOf(0);
    throw new Error(
      `final scan: page 0x${(chunk.vaddr + at * PAGE).toString(16)} of pid ${pid} ` +
        `cannot be read`,
    );
  }
  const out = new Array<number>(dirty);
  for (let i = 0; i < dirty; i++) out[i] = chunk.vaddr + b.dirty[i] * PAGE;
  return out;
}

/** Put the held hashes of the chunk's pages into `b.hashes`/`b.known`. */
function fillHeld(chunk: ScanRun, held: HeldIndex, b: HashDiffBuffers): void {
  const n = chunk.nrPages;
  const a = held.addresses;
  let i = lowerBound(a, chunk.vaddr);
  const last = chunk.vaddr + (n - 1) * PAGE;
  if (i + n <= a.length && a[i] === chunk.vaddr && a[i + n - 1] === last) {
    // Sorted, unique addresses: the held pages cover the chunk contiguously.
    b.hashes.set(held.hashes.subarray(2 * i, 2 * (i + n)));
    b.known.fill(1, 0, n);
    return;
  }
  b.known.fill(0, 0, n);
  for (; i < a.length && a[i] <= last; i++) {
    const p = (a[i] - chunk.vaddr) / PAGE;
    b.hashes[2 * p] = held.hashes[2 * i];
    b.hashes[2 * p + 1] = held.hashes[2 * i + 1];
    b.known[p] = 1;
  }
}
