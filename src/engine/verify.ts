/**
 * The destination's two checks against the source's final page manifest. Before restoring:
 * every page of every pages file it assembled (rebuilt from its store, or received whole for
 * shared memory) hashes to the manifest's value, and the images hold exactly the manifest's
 * pages. After `criu restore --leave-stopped`, with the tree still stopped: pages read back from
 * the restored processes (/proc/PID/mem) hash to the manifest's values — a sample per mapping,
 * or every page. The legitimate differences (each thread's rseq area and the dead stack below its
 * stack pointer, page_allowance.ts) are allowed: such a page is compared with its image page
 * outside those areas. Any mismatch throws {@linkcode VerificationError}.
 *
 * @example
 * ```ts
 * import { checkImages, readBackTree } from "./verify.ts";
 * const checked = await checkImages(dir, manifest); // before criu restore
 * const read = await readBackTree({ root, dir, manifest, mode: "sample" }); // tree stopped
 * ```
 *
 * @module
 */
import { pageHashes } from "../native/page_hash.ts";
import {
  decodeVmas,
  type DumpDir,
  PE_LAZY,
  PE_PARENT,
  readDumpDir,
  shmemMappings,
} from "../criu/images/mod.ts";
import {
  MANIFEST_FILE,
  type Verification,
  type VerifyMode,
  type VerifyRequest,
} from "./contract.ts";
import {
  decodeManifest,
  type DecodeOptions,
  isDigestManifest,
  type PageList,
  type PageManifest,
} from "./manifest.ts";
import { heldOfComposed, heldOfFiles } from "./manifest_held.ts";
import { BATCH_PAGES, PageReader } from "./page_reader.ts";
import { pidNamespaceMap } from "../tracker/proc.ts";
import type { ComposeResult } from "./lazy_images.ts";
import { checkComposed, composedPage } from "./verify_composed.ts";
import { VerificationError } from "./verify_error.ts";
import { allowedAreas, type Area, areasOn, sameOutside } from "./page_allowance.ts";
import { lowerBound } from "../util/lower_bound.ts";

const PAGE = 4096;
const HASH = 16;
const READ_PAGES = 2048;

/** Pages read back per mapping in "sample" mode (first, last and evenly spread ones). */
export const SAMPLE_PAGES_PER_MAPPING = 8;

export { VerificationError } from "./verify_error.ts";

/** The manifest and the images check, done before `criu restore`. */
export interface ImagesChecked {
  /** The decoded manifest. */
  manifest: PageManifest;
  /** Pages of the images checked (all of them). */
  imagePages: number;
  /** Milliseconds the check took. */
  imageMs: number;
  /** The composed layout the processes are restored from, when not from flat pages files. */
  composed?: ComposeResult;
  /** The images' structure as checked (the read-back after the restore reuses it). */
  dump?: DumpDir;
}

/**
 * The source's page manifest ({@linkcode MANIFEST_FILE} in `dir`), decoded, its page count
 * cross-checked with the request's; a {@linkcode VerificationError} when it is missing or differs.
 * `held` gives the destination's own hashes of what it restores, asked for only when the
 * manifest lists processes with chunk digests (which are then checked on them).
 *
 * @example
 * ```ts
 * const manifest = await readManifest(dir, { mode: "sample", pages: 8192 });
 * ```
 */
export async function readManifest(
  dir: string,
  req: VerifyRequest,
  held?: () => Promise<DecodeOptions["held"]>,
): Promise<PageManifest> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(`${dir}/${MANIFEST_FILE}`);
  } catch {
    throw new VerificationError(`the source's page manifest (${MANIFEST_FILE}) never arrived`);
  }
  // A digest manifest is checked on the destination's own hashes of what it restores.
  const manifest = decodeManifest(bytes, {
    held: held && isDigestManifest(bytes) ? await held() : undefined,
  });
  if (manifest.pages !== req.pages) {
    throw new VerificationError(
      `the manifest names ${manifest.pages} pages, the request ${req.pages}`,
    );
  }
  return manifest;
}

/**
 * The check before restoring: decode the manifest the source sent ({@linkcode MANIFEST_FILE}
 * in `dir`), cross-check its page count with the request, and check every image page — of the
 * flat pages files, or with `composed` of the composed layout the processes are restored from.
 */
export async function verifyBeforeRestore(
  dir: string,
  req: VerifyRequest,
  composed?: ComposeResult,
): Promise<ImagesChecked> {
  const started = performance.now();
  const dump = await readDumpDir(dir, false, { checkSizes: !composed });
  const manifest = await readManifest(
    dir,
    req,
    () => Promise.resolve(composed ? heldOfComposed(composed) : heldOfFiles(dir, dump)),
  );
  const imagePages = await checkImages(dir, manifest, composed, dump);
  return { manifest, imagePages, imageMs: performance.now() - started, composed, dump };
}

/**
 * The check after restoring (tree still stopped): read back and report what was verified. With
 * `skipLazy`, the pages left lazy are not read back ({@linkcode ReadBackOptions.skipLazy}).
 */
export async function verifyAfterRestore(
  root: number,
  dir: string,
  req: VerifyRequest,
  checked: ImagesChecked,
  options: { skipLazy?: boolean } = {},
): Promise<Verification> {
  const started = performance.now();
  const readBackPages = await readBackTree({
    root,
    dir,
    manifest: checked.manifest,
    mode: req.mode,
    composed: checked.composed,
    dump: checked.dump,
    skipLazy: options.skipLazy,
  });
  return {
    mode: req.mode,
    manifestPages: checked.manifest.pages,
    imagePages: checked.imagePages,
    readBackPages,
    imageMs: round1(checked.imageMs),
    readBackMs: round1(performance.now() - started),
  };
}

/**
 * Check the images in `dir` against `manifest`: the same processes and shared-memory objects,
 * the same pages, every page's hash equal. With `composed`, the processes' pages are those of
 * that layout ({@linkcode checkComposed}). `read`: the dump's structure when already read (else
 * read from `dir`). Returns the pages checked.
 */
export async function checkImages(
  dir: string,
  manifest: PageManifest,
  composed?: ComposeResult,
  read?: DumpDir,
): Promise<number> {
  const dump = read ?? await readDumpDir(dir, false, { checkSizes: !composed });
  let checked = composed ? checkComposed(composed, manifest) : 0;
  const seen = { process: new Set<number>(composed?.processes.keys()), shmem: new Set<number>() };
  for (const mem of composed ? [] : dump.memory) {
    const what = `pid ${mem.pid}`;
    seen.process.add(mem.pid);
    checked += await checkFile(
      `${dir}/${mem.pagesFile}`,
      mem.addresses,
      manifest.processes.get(mem.pid),
      what,
    );
  }
  for (const obj of dump.shmem) {
    seen.shmem.add(obj.id);
    checked += await checkFile(
      `${dir}/${obj.pagesFile}`,
      obj.offsets,
      manifest.shmem.get(obj.id),
      `shared memory ${obj.id}`,
    );
  }
  for (const pid of manifest.processes.keys()) {
    if (!seen.process.has(pid)) {
      throw new VerificationError(`pid ${pid} of the manifest has no images`);
    }
  }
  for (const id of manifest.shmem.keys()) {
    if (!seen.shmem.has(id)) {
      throw new VerificationError(`shared memory ${id} of the manifest has no images`);
    }
  }
  return checked;
}

/**
 * Check one flat pages file holding `addresses` (in order) against its manifest list: the same
 * pages, each hashing to the manifest's value. Returns the pages checked.
 */
export async function checkFile(
  file: string,
  addresses: number[],
  list: PageList | undefined,
  what: string,
): Promise<number> {
  if (!list) throw new VerificationError(`${what} has images but is not in the manifest`);
  if (list.addresses.length !== addresses.length) {
    throw new VerificationError(
      `${what}: the images hold ${addresses.length} pages, the manifest ${list.addresses.length}`,
    );
  }
  const f = await Deno.open(file, { read: true });
  const buf = new Uint8Array(READ_PAGES * PAGE);
  try {
    for (let base = 0; base < addresses.length; base += READ_PAGES) {
      const count = Math.min(READ_PAGES, addresses.length - base);
      const data = buf.subarray(0, count * PAGE);
      await readFull(f, data, file);
      const hashes = pageHashes(data);
      for (let i = 0; i < count; i++) {
        const k = base + i;
        if (addresses[k] !== list.addresses[k]) {
          throw new VerificationError(`${what}: page ${k} is 0x${hex(addresses[k])} in the images`);
        }
        if (!equalAt(hashes, i * HASH, list.hashes, k * HASH)) {
          throw new VerificationError(`${what}: page 0x${hex(addresses[k])} differs in the images`);
        }
      }
    }
  } finally {
    f.close();
  }
  return addresses.length;
}

/** Options of {@linkcode readBackTree}. */
export interface ReadBackOptions {
  /** Host pid of the restored (stopped) root. */
  root: number;
  /** The images the tree was restored from. */
  dir: string;
  /** The source's manifest. */
  manifest: PageManifest;
  /** A sample per mapping, or every page. @default "sample" */
  mode?: VerifyMode;
  /** Pages per mapping in sample mode. @default SAMPLE_PAGES_PER_MAPPING */
  samplePages?: number;
  /** The composed layout the processes were restored from, when not flat pages files. */
  composed?: ComposeResult;
  /**
   * The images' structure, as read by the check before the restore (CRIU's restore changes no
   * image): not read and decoded a second time on the downtime path. @default read from `dir`
   */
  dump?: DumpDir;
  /**
   * Leave out the pages the pagemaps mark lazy (a lazy-pages daemon still owes them: a read
   * would fail, and they are checked as they are placed). @default false
   */
  skipLazy?: boolean;
}

/**
 * Read back pages of the restored, stopped tree and compare them with the manifest; returns
 * how many pages matched. Throws {@linkcode VerificationError} on the first difference.
 */
export async function readBackTree(options: ReadBackOptions): Promise<number> {
  const { root, dir, manifest, mode = "sample", samplePages = SAMPLE_PAGES_PER_MAPPING } = options;
  const { composed } = options;
  const dump = options.dump ?? await readDumpDir(dir, false, { checkSizes: !composed });
  const hostOf = new Map<number, number>();
  for (const [host, ns] of pidNamespaceMap(root)) hostOf.set(ns, host);
  const rseq = allowedAreas(dump);
  let matched = 0;
  for (const mem of dump.memory) {
    const host = hostOf.get(mem.pid);
    if (host === undefined) throw new VerificationError(`pid ${mem.pid} was not restored`);
    const list = manifest.processes.get(mem.pid)!;
    const vmas = decodeVmas(await Deno.readFile(`${dir}/mm-${mem.pid}.img`));
    const picked: number[] = [];
    const lazy = options.skipLazy
      ? mem.pagemap.entries.filter((e) => (e.flags & PE_LAZY) !== 0 && (e.flags & PE_PARENT) === 0)
      : [];
    forEachMappingRun(list.addresses, vmas, lazy, (from, to) => {
      pick(from, to, mode, samplePages, picked);
    });
    matched += await compareLive({
      host,
      what: `pid ${mem.pid}`,
      addressOf: (k) => list.addresses[k],
      indices: picked,
      list,
      rseq: rseq.get(mem.pid) ?? [],
      imagePage: (k) =>
        composed
          ? composedPage(composed, mem.pid, list.addresses[k])
          : readPage(`${dir}/${mem.pagesFile}`, k),
    });
  }
  const mappings = await shmemMappings(dump);
  for (const obj of dump.shmem) {
    const list = manifest.shmem.get(obj.id)!;
    const m = mappings.find((x) => x.shmemId === obj.id && hostOf.has(x.pid));
    if (!m) continue; // not mapped anywhere (an fd or an unattached segment): images checked
    const picked: number[] = [];
    const len = m.end - m.start;
    const inside = (o: number) => o >= m.pgoff && o < m.pgoff + len;
    const keys = list.addresses.map((o) => (inside(o) ? 0 : -1));
    forEachGroup(keys, (from, to) => pick(from, to, mode, samplePages, picked));
    matched += await compareLive({
      host: hostOf.get(m.pid)!,
      what: `shared memory ${obj.id}`,
      addressOf: (k) => m.start + list.addresses[k] - m.pgoff,
      indices: picked,
      list,
      rseq: [],
      imagePage: (k) => readPage(`${dir}/${obj.pagesFile}`, k),
    });
  }
  return matched;
}

interface LiveCompare {
  host: number;
  what: string;
  addressOf: (k: number) => number;
  /** Manifest indices to read, ascending. */
  indices: number[];
  list: PageList;
  rseq: Area[];
  imagePage: (k: number) => Promise<Uint8Array>;
}

async function compareLive(c: LiveCompare): Promise<number> {
  if (c.indices.length === 0) return 0;
  const reader = new PageReader(c.host);
  const buf = new Uint8Array(BATCH_PAGES * PAGE);
  try {
    for (let at = 0; at < c.indices.length; at += BATCH_PAGES) {
      const idx = c.indices.slice(at, at + BATCH_PAGES);
      const addrs = idx.map(c.addressOf);
      const data = buf.subarray(0, idx.length * PAGE);
      const ok = reader.read(addrs, data);
      const hashes = pageHashes(data);
      for (let i = 0; i < idx.length; i++) {
        const addr = addrs[i];
        if (!ok[i]) throw new VerificationError(`${c.what}: page 0x${hex(addr)} is unreadable`);
        if (equalAt(hashes, i * HASH, c.list.hashes, idx[i] * HASH)) continue;
        const areas = areasOn(c.rseq, addr);
        const live = data.subarray(i * PAGE, (i + 1) * PAGE);
        if (areas.length === 0 || !sameOutside(live, await c.imagePage(idx[i]), addr, areas)) {
          throw new VerificationError(`${c.what}: page 0x${hex(addr)} differs after the restore`);
        }
      }
    }
  } finally {
    reader.close();
  }
  return c.indices.length;
}

/**
 * Call `each(from, to)` for every run of indices of `addresses` (ascending) that lie in one
 * mapping (or between the previous mapping and it) outside the `lazy` runs — found by binary
 * searches at the mappings' and runs' bounds, not page by page (a 2 GiB tree has half a
 * million pages, the read-back reads a few dozen). Runs in ascending order.
 */
function forEachMappingRun(
  addresses: ArrayLike<number>,
  vmas: { end: number }[],
  lazy: { vaddr: number; nrPages: number }[],
  each: (from: number, to: number) => void,
): void {
  const indexOf = (addr: number) => lowerBound(addresses, addr);
  // Index ranges of the lazy runs that hold pages, ascending.
  const cuts: [number, number][] = [];
  for (const e of lazy) {
    const from = indexOf(e.vaddr), to = indexOf(e.vaddr + e.nrPages * PAGE);
    if (to > from) cuts.push([from, to]);
  }
  let c = 0, start = 0;
  for (let v = 0; v <= vmas.length && start < addresses.length; v++) {
    const end = v < vmas.length ? indexOf(vmas[v].end) : addresses.length;
    let from = start;
    while (c < cuts.length && cuts[c][0] < end) {
      if (cuts[c][0] > from) each(from, cuts[c][0]);
      from = Math.max(from, cuts[c][1]);
      if (cuts[c][1] > end) break; // the run goes on into the next mapping
      c++;
    }
    if (end > from) each(from, end);
    start = Math.max(end, from);
  }
}

/** Call `each(from, to)` for every run of consecutive indices with the same key (≥ 0). */
function forEachGroup(keys: number[], each: (from: number, to: number) => void): void {
  let from = 0;
  for (let k = 1; k <= keys.length; k++) {
    if (k === keys.length || keys[k] !== keys[from]) {
      if (keys[from] >= 0) each(from, k);
      from = k;
    }
  }
}

/** Push indices [from, to) (full) or up to `n` of them spread evenly, first and last included. */
function pick(from: number, to: number, mode: VerifyMode, n: number, out: number[]): void {
  const count = to - from;
  if (mode === "full" || count <= n) {
    for (let k = from; k < to; k++) out.push(k);
    return;
  }
  for (let i = 0; i < n; i++) out.push(from + Math.round(i * (count - 1) / (n - 1)));
}

async function readPage(file: string, index: number): Promise<Uint8Array> {
  const f = await Deno.open(file, { read: true });
  try {
    await f.seek(index * PAGE, Deno.SeekMode.Start);
    const page = new Uint8Array(PAGE);
    await readFull(f, page, file);
    return page;
  } finally {
    f.close();
  }
}

async function readFull(f: Deno.FsFile, into: Uint8Array, file: string): Promise<void> {
  let off = 0;
  while (off < into.length) {
    const n = await f.read(into.subarray(off));
    if (n === null || n === 0) throw new VerificationError(`${file} ends early`);
    off += n;
  }
}

function equalAt(a: Uint8Array, at: number, b: Uint8Array, bt: number): boolean {
  for (let i = 0; i < HASH; i++) if (a[at + i] !== b[bt + i]) return false;
  return true;
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

function hex(n: number): string {
  return n.toString(16);
}
