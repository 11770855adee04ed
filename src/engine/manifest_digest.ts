/**
 * Chunk digests of a process's page hashes: the compact form of the final page manifest.
 *
 * The address space is cut into aligned chunks of {@linkcode DIGEST_PAGES} pages (1 MiB). A
 * chunk's block is 4 KiB: the 16-byte hash of each of its pages the manifest names, at the
 * page's place in the chunk (zeros where it names none); its digest is the page hash of that
 * block. The source sends the runs of pages and one digest per chunk instead of a hash per page;
 * the destination lays out, for the same runs, the hashes IT took of the bytes it will restore
 * and compares the digests (manifest.ts). One page whose hash differs changes its chunk's digest.
 *
 * The source keeps a {@linkcode DigestTable} built before the freeze from what the destination
 * holds: inside the freeze only the chunks the freeze sent pages into (or whose runs changed)
 * are laid out and hashed again.
 *
 * @example
 * ```ts
 * import { runDigests } from "./manifest_digest.ts";
 * const digests = runDigests([[0x400000, 2]], new Uint8Array(32)); // 16 bytes: one chunk
 * ```
 *
 * @module
 */
import { pageHashes } from "../native/page_hash.ts";
import type { HeldPages } from "./ledger.ts";
import { inRuns, type RunBounds } from "../util/in_runs.ts";

const PAGE = 4096;
const HASH = 16;

/** Pages per digest chunk (its block of hashes is one 4 KiB page). */
export const DIGEST_PAGES = PAGE / HASH;
const CHUNK_BYTES = DIGEST_PAGES * PAGE;

/** `[first address, pages]`, ascending and not overlapping. */
export type Run = readonly [number, number];

/** One run's part inside one chunk. */
interface Segment {
  chunk: number;
  /** Page index inside the chunk. */
  pos: number;
  pages: number;
}

/** Call `each` for every part of `runs` inside one chunk, in order. */
function forEachSegment(runs: readonly Run[], each: (s: Segment) => void): void {
  for (const [start, count] of runs) {
    let a = start, left = count;
    while (left > 0) {
      const chunk = Math.floor(a / CHUNK_BYTES);
      const pos = (a - chunk * CHUNK_BYTES) / PAGE;
      const pages = Math.min(left, DIGEST_PAGES - pos);
      each({ chunk, pos, pages });
      a += pages * PAGE;
      left -= pages;
    }
  }
}

/**
 * The chunks `runs` touch, ascending.
 *
 * @example
 * ```ts
 * chunksOf([[0, 1], [0x100000, 1]]); // [0, 1]
 * ```
 */
export function chunksOf(runs: readonly Run[]): number[] {
  const out: number[] = [];
  forEachSegment(runs, (s) => {
    if (out[out.length - 1] !== s.chunk) out.push(s.chunk);
  });
  return out;
}

/**
 * The digests (16 bytes per chunk of {@linkcode chunksOf}) of pages `runs` whose hashes are
 * `hashes` (16 bytes per page, in run order).
 *
 * @example
 * ```ts
 * const d = runDigests([[0x400000, 1]], new Uint8Array(16)); // d.length === 16
 * ```
 */
export function runDigests(runs: readonly Run[], hashes: Uint8Array): Uint8Array {
  return pageHashes(layout(chunksOf(runs), runs, hashes));
}

/** The blocks of `chunks` (those of `runs`), from `hashes` (16 bytes per page, in run order). */
function layout(chunks: number[], runs: readonly Run[], hashes: Uint8Array): Uint8Array {
  const blocks = new Uint8Array(chunks.length * PAGE);
  let k = 0, block = -1, last = -1;
  forEachSegment(runs, ({ chunk, pos, pages }) => {
    if (chunk !== last) [block, last] = [block + 1, chunk];
    if ((k + pages) * HASH > hashes.length) {
      throw new RangeError(`${hashes.length / HASH} hashes for more pages`);
    }
    blocks.set(hashes.subarray(k * HASH, (k + pages) * HASH), block * PAGE + pos * HASH);
    k += pages;
  });
  return blocks;
}

/** Pages sent, ascending, with their hashes (16 bytes each, in order). */
export interface SentPages {
  addresses: ArrayLike<number>;
  hashes: Uint8Array;
}

/**
 * A process's chunk blocks and digests as the destination holds its pages, kept by the source
 * from before the freeze (the ledger's hashes) and brought up to date inside it for the chunks
 * that changed only.
 */
export class DigestTable {
  readonly #blocks = new Map<number, Uint8Array>();
  readonly #digests = new Map<number, Uint8Array>();
  #runs: Run[];

  /**
   * Lay out and hash every chunk of `runs` (before the freeze).
   *
   * @param runs the held pages' runs
   * @param held their hashes: the ledger's, or 16 bytes per page in run order
   */
  constructor(runs: readonly Run[], held: HeldPages | Uint8Array) {
    this.#runs = [...runs];
    const chunks = chunksOf(runs);
    if (held instanceof Uint8Array) {
      const all = layout(chunks, runs, held);
      chunks.forEach((c, i) => this.#blocks.set(c, all.subarray(i * PAGE, (i + 1) * PAGE)));
    } else this.#rebuild(chunks, runs, held);
    this.#hash(chunks);
  }

  /**
   * The digests of `runs` (the final pages, ascending chunks) as the destination now holds
   * them: the table's hashes, with `sent` (every page sent since the table was built or last
   * brought up to date, with the hashes it was sent with) written over them. Chunks whose pages
   * differ from the table's are laid out again from `held` (the ledger); only the chunks so
   * changed are hashed again.
   */
  digests(runs: readonly Run[], held: HeldPages, sent: SentPages): Uint8Array {
    const chunks = chunksOf(runs);
    const dirty = new Set<number>();
    if (!sameRuns(runs, this.#runs)) {
      const before = signatures(this.#runs), after = signatures(runs);
      const moved: number[] = [];
      for (const [c, sig] of after) if (before.get(c) !== sig) moved.push(c);
      for (const c of before.keys()) if (!after.has(c)) this.#drop(c);
      this.#rebuild(moved, runs, held);
      for (const c of moved) dirty.add(c);
    }
    this.#runs = [...runs];
    for (let i = 0; i < sent.addresses.length; i++) {
      const a = sent.addresses[i];
      if (!inRuns(runs, a, RUN_BOUNDS)) continue; // not restored: not in the manifest
      const c = Math.floor(a / CHUNK_BYTES);
      const block = this.#blocks.get(c)!;
      block.set(
        sent.hashes.subarray(i * HASH, (i + 1) * HASH),
        (a - c * CHUNK_BYTES) / PAGE * HASH,
      );
      dirty.add(c);
    }
    this.#hash([...dirty]);
    const out = new Uint8Array(chunks.length * HASH);
    chunks.forEach((c, i) => out.set(this.#digests.get(c)!, i * HASH));
    return out;
  }

  #drop(chunk: number): void {
    this.#blocks.delete(chunk);
    this.#digests.delete(chunk);
  }

  /** Lay out `chunks` anew from the pages of `runs` in them, with `held`'s hashes. */
  #rebuild(chunks: number[], runs: readonly Run[], held: HeldPages): void {
    if (chunks.length === 0) return;
    const all = new Uint8Array(chunks.length * PAGE);
    const at = new Map(chunks.map((c, i) => [c, i]));
    forEachSegment(runs, ({ chunk, pos, pages }) => {
      const k = at.get(chunk);
      if (k === undefined) return;
      const first = chunk * CHUNK_BYTES + pos * PAGE;
      for (let i = 0; i < pages; i++) {
        const h = held.get(first + i * PAGE);
        if (!h) throw new Error(`page 0x${(first + i * PAGE).toString(16)} was never sent`);
        all.set(h, k * PAGE + (pos + i) * HASH);
      }
    });
    chunks.forEach((c, i) => this.#blocks.set(c, all.subarray(i * PAGE, (i + 1) * PAGE)));
  }

  /** Hash the blocks of `chunks` (at once). */
  #hash(chunks: number[]): void {
    if (chunks.length === 0) return;
    const all = new Uint8Array(chunks.length * PAGE);
    chunks.forEach((c, i) => all.set(this.#blocks.get(c)!, i * PAGE));
    const digests = pageHashes(all);
    chunks.forEach((c, i) => this.#digests.set(c, digests.subarray(i * HASH, (i + 1) * HASH)));
  }
}

/**
 * The pages of `sent` that lie in `runs` (those the manifest names).
 *
 * @example
 * ```ts
 * withinRuns({ addresses: [0x1000, 0x9000], hashes: new Uint8Array(32) }, [[0x1000, 1]]);
 * // { addresses: [0x1000], hashes: (16 bytes) }
 * ```
 */
export function withinRuns(sent: SentPages, runs: readonly Run[]): SentPages {
  const keep: number[] = [];
  for (let i = 0; i < sent.addresses.length; i++) {
    if (inRuns(runs, sent.addresses[i], RUN_BOUNDS)) keep.push(i);
  }
  if (keep.length === sent.addresses.length) return sent;
  const hashes = new Uint8Array(keep.length * HASH);
  keep.forEach((i, k) => hashes.set(sent.hashes.subarray(i * HASH, (i + 1) * HASH), k * HASH));
  return { addresses: keep.map((i) => sent.addresses[i]), hashes };
}

/** Where a manifest's runs start and end. */
const RUN_BOUNDS: RunBounds<Run> = { start: (r) => r[0], end: (r) => r[0] + r[1] * PAGE };

function sameRuns(a: readonly Run[], b: readonly Run[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i][0] !== b[i][0] || a[i][1] !== b[i][1]) return false;
  return true;
}

/** Per chunk, which of its pages `runs` names (as a comparable string). */
function signatures(runs: readonly Run[]): Map<number, string> {
  const out = new Map<number, string>();
  forEachSegment(runs, ({ chunk, pos, pages }) => {
    out.set(chunk, `${out.get(chunk) ?? ""}${pos}+${pages},`);
  });
  return out;
}

/**
 * Merged runs of ascending page addresses.
 *
 * @example
 * ```ts
 * runsOfAddresses([0x1000, 0x2000, 0x5000]); // [[0x1000, 2], [0x5000, 1]]
 * ```
 */
export function runsOfAddresses(addresses: ArrayLike<number>): [number, number][] {
  const runs: [number, number][] = [];
  for (let i = 0; i < addresses.length; i++) {
    const a = addresses[i];
    const last = runs[runs.length - 1];
    if (last && a === last[0] + last[1] * PAGE) last[1]++;
    else runs.push([a, 1]);
  }
  return runs;
}
