/**
 * The final page manifest: a 16-byte hash for every page of every private and shared mapping
 * of the frozen tree, as CRIU dumped it. The source records each hash when it reads the page
 * for sending (no second read); the destination decodes the file and checks the images it
 * assembled, then the restored tree, against it (verify.ts).
 *
 * @example
 * ```ts
 * import { decodeManifest, ManifestBuilder } from "./manifest.ts";
 * const b = new ManifestBuilder();
 * b.add("process", 1, [0x400000], new Uint8Array(16));
 * const m = decodeManifest(b.encode());
 * console.log(m.pages); // 1
 * ```
 *
 * @module
 */
import { decodeBase64, encodeBase64 } from "../util/base64.ts";
import { MAX_MANIFEST_PAGES, type PageManifestJson, PageManifestSchema } from "./contract.ts";
import { chunksOf, type Run, runDigests } from "./manifest_digest.ts";
import { VerificationError } from "./verify_error.ts";
import { lowerBound } from "../util/lower_bound.ts";

const PAGE = 4096;
const HASH = 16;

/** The pages of one process (addresses) or shared-memory object (offsets) and their hashes. */
export interface PageList {
  /** Addresses or offsets, ascending. */
  addresses: number[];
  /** 16 bytes per page, in the same order. */
  hashes: Uint8Array;
}

/** A decoded manifest. */
export interface PageManifest {
  /** Live processes by pid inside the tree's namespace. */
  processes: Map<number, PageList>;
  /** Shared-memory objects by id. */
  shmem: Map<number, PageList>;
  /** Pages named in all. */
  pages: number;
}

/** What a manifest entry describes. */
export type ManifestKind = "process" | "shmem";

/**
 * Pages of one process the destination holds, as it hashed them: `addresses[from … to)`,
 * ascending, and their hashes (16 bytes each, indexed like `addresses`).
 */
export interface HeldSegment {
  addresses: ArrayLike<number>;
  hashes: Uint8Array;
  from: number;
  to: number;
}

/** Options of {@linkcode decodeManifest}. */
export interface DecodeOptions {
  /**
   * The destination's own hashes of process `pid`'s pages (what it will restore): needed to
   * check a process listed with chunk digests. Each page the manifest names must be in one
   * segment; its hash there becomes the manifest's, once the chunk digests match.
   */
  held?: (pid: number) => HeldSegment[] | undefined;
}

/** Collects page hashes as the source reads pages, and encodes the manifest file. */
export class ManifestBuilder {
  readonly #lists = { process: new Map<number, Parts>(), shmem: new Map<number, Parts>() };
  readonly #digested = new Map<number, Digested>();
  #pages = 0;

  /** Pages added so far. */
  get pages(): number {
    return this.#pages;
  }

  /**
   * Add pages of process `id` (ns pid) or shared-memory object `id`, in ascending order and
   * after those added before for the same id; `hashes` holds 16 bytes per page.
   */
  add(kind: ManifestKind, id: number, addresses: ArrayLike<number>, hashes: Uint8Array): void {
    if (hashes.length < addresses.length * HASH) {
      throw new RangeError(`${addresses.length} pages but ${hashes.length} bytes of hashes`);
    }
    if (kind === "process" && this.#digested.has(id)) {
      throw new Error(`pid ${id} is listed with digests already`);
    }
    let parts = this.#lists[kind].get(id);
    if (!parts) this.#lists[kind].set(id, parts = { addresses: [], hashes: [] });
    for (let i = 0; i < addresses.length; i++) parts.addresses.push(addresses[i]);
    parts.hashes.push(hashes.slice(0, addresses.length * HASH));
    this.#pages += addresses.length;
  }

  /**
   * List every page of process `pid` (`runs`, ascending) with its chunk digests
   * ({@linkcode runDigests}: 16 bytes per chunk of {@linkcode chunksOf}) instead of a hash per
   * page; the destination checks them over the hashes it took itself. `exact`: some of those
   * pages (ascending) with their hashes, which the destination also checks page by page.
   */
  addDigests(
    pid: number,
    runs: readonly Run[],
    digests: Uint8Array,
    exact?: { addresses: ArrayLike<number>; hashes: Uint8Array },
  ): void {
    if (this.#lists.process.has(pid) || this.#digested.has(pid)) {
      throw new Error(`pid ${pid} is in the manifest already`);
    }
    if (digests.length !== chunksOf(runs).length * HASH) {
      throw new RangeError(
        `${digests.length} bytes of digests for ${chunksOf(runs).length} chunks`,
      );
    }
    const copy = runs.map(([a, n]) => [a, n] as [number, number]);
    if (exact && exact.hashes.length < exact.addresses.length * HASH) {
      throw new RangeError(`${exact.addresses.length} exact pages but fewer hashes`);
    }
    this.#digested.set(pid, {
      runs: copy,
      digests: digests.slice(),
      exact: exact && {
        addresses: Array.from(exact.addresses),
        hashes: [exact.hashes.slice(0, exact.addresses.length * HASH)],
      },
    });
    for (const [, n] of runs) this.#pages += n;
  }

  /** The manifest file's bytes (JSON, see {@linkcode PageManifestSchema}). */
  encode(): Uint8Array {
    const list = (parts: Parts) => ({
      runs: runsOf(parts.addresses),
      hashes: encodeBase64(concat(parts.hashes)),
    });
    const json: PageManifestJson = {
      v: this.#digested.size > 0 ? 2 : 1,
      processes: [
        ...[...this.#lists.process].map(([pid, p]) => ({ pid, ...list(p) })),
        ...[...this.#digested].map(([pid, d]) => ({
          pid,
          runs: d.runs,
          digests: encodeBase64(d.digests),
          ...(d.exact ? { exact: list(d.exact) } : {}),
        })),
      ],
      shmem: [...this.#lists.shmem].map(([id, p]) => ({ id, ...list(p) })),
    };
    return new TextEncoder().encode(JSON.stringify(json));
  }
}

interface Parts {
  addresses: number[];
  hashes: Uint8Array[];
}

interface Digested {
  runs: [number, number][];
  digests: Uint8Array;
  exact?: Parts;
}

/** Raised for a manifest file that is malformed or inconsistent. */
export class ManifestError extends Error {
  /** @param message what is wrong */
  constructor(message: string) {
    super(`page manifest: ${message}`);
    this.name = "ManifestError";
  }
}

/**
 * Whether manifest file `bytes` may list processes with chunk digests (then
 * {@linkcode decodeManifest} needs {@linkcode DecodeOptions.held}); a cheap look at its start.
 */
export function isDigestManifest(bytes: Uint8Array): boolean {
  const head = new TextDecoder().decode(bytes.subarray(0, 16)).replace(/\s/g, "");
  return !head.startsWith('{"v":1');
}

/**
 * Decode and check a manifest file (zod schema, then runs against hashes). A process listed
 * with chunk digests gets, per page, the hash the destination holds (`options.held`) once every
 * chunk digest over those hashes equals the source's; a difference throws
 * {@linkcode VerificationError}.
 */
export function decodeManifest(bytes: Uint8Array, options: DecodeOptions = {}): PageManifest {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new ManifestError("not JSON");
  }
  const parsed = PageManifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ManifestError(`invalid at ${issue?.path.join(".")}: ${issue?.message}`);
  }
  let pages = 0;
  const expand = (runs: [number, number][], what: string, counted = true) => {
    let total = 0, end = -1;
    for (const [start, count] of runs) {
      if (start < end) {
        throw new ManifestError(`${what}: runs not ascending at 0x${start.toString(16)}`);
      }
      end = start + count * PAGE;
      total += count;
      if (counted) pages += count;
      if (pages > MAX_MANIFEST_PAGES || total > MAX_MANIFEST_PAGES) {
        throw new ManifestError("too many pages");
      }
    }
    const addresses: number[] = new Array(total);
    let k = 0;
    for (const [start, count] of runs) {
      for (let i = 0; i < count; i++) addresses[k++] = start + i * PAGE;
    }
    return addresses;
  };
  const list = (e: { runs: [number, number][]; hashes: string }, what: string, counted = true) => {
    const addresses = expand(e.runs, what, counted);
    const hashes = decodeBase64(e.hashes);
    if (hashes.length !== addresses.length * HASH) {
      throw new ManifestError(`${what}: ${addresses.length} pages but ${hashes.length} hash bytes`);
    }
    return { addresses, hashes };
  };
  const m = parsed.data;
  const processes = new Map<number, PageList>();
  for (const e of m.processes) {
    const what = `pid ${e.pid}`;
    if ("hashes" in e) {
      setOnce(processes, e.pid, list(e, what));
      continue;
    }
    if (m.v === 1) throw new ManifestError(`${what}: digests in a version 1 manifest`);
    const addresses = expand(e.runs, what);
    const digests = decodeBase64(e.digests);
    if (digests.length !== chunksOf(e.runs).length * HASH) {
      throw new ManifestError(`${what}: ${digests.length} digest bytes for its chunks`);
    }
    const segments = options.held?.(e.pid);
    if (!options.held) throw new ManifestError(`${what}: digests, but no hashes to check them on`);
    if (!segments) throw new VerificationError(`${what} of the manifest has no images`);
    const hashes = heldHashes(e.runs, addresses.length, segments, what);
    if (e.exact) checkExact(addresses, hashes, list(e.exact, `${what} (exact)`, false), what);
    checkDigests(e.runs, hashes, digests, what);
    setOnce(processes, e.pid, { addresses, hashes });
  }
  const shmem = new Map<number, PageList>();
  for (const e of m.shmem) setOnce(shmem, e.id, list(e, `shmem ${e.id}`));
  return { processes, shmem, pages };
}

/**
 * The hash the destination holds of each page of `runs` (ascending; `pages` in all), from
 * `segments` (each strictly ascending): per run, the stretches a segment holds whole are found
 * by binary search and copied at once (no work per page; the composed and flat checks then walk
 * every page's hash against these).
 */
function heldHashes(
  runs: [number, number][],
  pages: number,
  segments: HeldSegment[],
  what: string,
): Uint8Array {
  const out = new Uint8Array(pages * HASH);
  const at = segments.map((s) => s.from);
  let k = 0;
  for (const [first, count] of runs) {
    let addr = first, left = count;
    while (left > 0) {
      let took = 0;
      for (let s = 0; s < segments.length && took === 0; s++) {
        const seg = segments[s];
        const i = lowerBound(seg.addresses, addr, at[s], seg.to);
        at[s] = i;
        if (i >= seg.to || seg.addresses[i] !== addr) continue;
        // The longest stretch addr, addr + PAGE, … this segment holds from i on.
        let lo = 1, hi = Math.min(left, seg.to - i);
        while (lo < hi) {
          const mid = (lo + hi + 1) >>> 1;
          if (seg.addresses[i + mid - 1] === addr + (mid - 1) * PAGE) lo = mid;
          else hi = mid - 1;
        }
        out.set(seg.hashes.subarray(i * HASH, (i + lo) * HASH), k * HASH);
        at[s] = i + lo;
        took = lo;
      }
      if (took === 0) {
        throw new VerificationError(`${what}: page 0x${addr.toString(16)} is not in the images`);
      }
      k += took;
      addr += took * PAGE;
      left -= took;
    }
  }
  return out;
}

/** Check the `exact` pages (a subset of `addresses`) one by one against `hashes`. */
function checkExact(addresses: number[], hashes: Uint8Array, exact: PageList, what: string): void {
  let k = 0;
  for (let j = 0; j < exact.addresses.length; j++) {
    const addr = exact.addresses[j];
    while (k < addresses.length && addresses[k] < addr) k++;
    if (addresses[k] !== addr) {
      throw new ManifestError(`${what}: exact page 0x${addr.toString(16)} is not in its runs`);
    }
    for (let b = 0; b < HASH; b++) {
      if (hashes[k * HASH + b] !== exact.hashes[j * HASH + b]) {
        throw new VerificationError(`${what}: page 0x${addr.toString(16)} differs in the images`);
      }
    }
  }
}

/** Throw {@linkcode VerificationError} unless `hashes` (of `runs`) give the source's digests. */
function checkDigests(
  runs: [number, number][],
  hashes: Uint8Array,
  digests: Uint8Array,
  what: string,
): void {
  const mine = runDigests(runs, hashes);
  const chunks = chunksOf(runs);
  for (let c = 0; c < chunks.length; c++) {
    for (let b = 0; b < HASH; b++) {
      if (mine[c * HASH + b] === digests[c * HASH + b]) continue;
      const from = chunks[c] * PAGE * (PAGE / HASH);
      throw new VerificationError(
        `${what}: the pages in 0x${from.toString(16)}–0x${
          (from + PAGE * (PAGE / HASH)).toString(16)
        } differ from the source's (chunk digest)`,
      );
    }
  }
}

function setOnce(map: Map<number, PageList>, id: number, list: PageList): void {
  if (map.has(id)) throw new ManifestError(`id ${id} listed twice`);
  map.set(id, list);
}

/** Runs of consecutive pages of sorted `addresses`. */
function runsOf(addresses: number[]): [number, number][] {
  const runs: [number, number][] = [];
  for (const a of addresses) {
    const last = runs[runs.length - 1];
    if (last && a === last[0] + last[1] * PAGE) last[1]++;
    else runs.push([a, 1]);
  }
  return runs;
}

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
