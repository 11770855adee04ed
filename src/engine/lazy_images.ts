/**
 * Images for a restore from the destination's own pages images, without a page-by-page
 * rebuild. For each process the final pagemap is laid over the {@linkcode PagesImage} slot
 * file: runs whose pages sit in the file's ascending prefix, in order, are read from that file
 * in place (the file itself becomes `pages-N.img`); every other page — one that arrived out of
 * order (deferred, new since the first round) — goes into a small parent image (`parent/`)
 * written from the page store, which CRIU's restore reads eagerly. Lazy runs in the file are
 * served after the restore by a local `criu lazy-pages` daemon. (CRIU's lazy daemon cannot
 * serve runs from a parent image — its parent reads never complete the fault — so runs that
 * must come from the parent are made eager.)
 *
 * @module
 */
import {
  decodePagemap,
  decodePstree,
  decodeVmas,
  encodePagemap,
  PAGE_SIZE,
  type Pagemap,
  type PagemapEntry,
  PE_LAZY,
  PE_PARENT,
  PE_PRESENT,
  type Vma,
  VMA_ANON_PRIVATE,
  VMA_FILE_PRIVATE,
} from "../criu/images/mod.ts";
import { pageHashes } from "../native/page_hash.ts";
import type { PageStoreView } from "./channel.ts";
import type { PagesImage } from "./pages_image.ts";

/** mmap's MAP_SHARED. */
const MAP_SHARED = 0x01;

/** How one process's final pagemap maps onto its slot file. */
export interface ProcessPlan {
  /** The pagemap to restore with (in-file runs present, the rest in the parent). */
  entries: PagemapEntry[];
  /** Addresses of pages that must come from the parent image, ascending. */
  parent: number[];
  /** Pages read from the slot file. */
  inFile: number;
  /** Covered slots whose page must read as zeros (their slot is to be zeroed first). */
  zero: number[];
  /** Every covered slot's address (zeroed or kept): pages the final dump lacks. */
  covered: Set<number>;
}

/**
 * How a slot holding a page the final dump lacks can be covered: `zero` — it lies in a private
 * anonymous VMA, where an absent page reads as zeros (the shared zero page, or memory given
 * back), so a zero-filled present page is the same memory; `keep` — it lies in a private file
 * mapping, where a page the process never wrote reads as the file (what pre-copy sent);
 * undefined — it cannot be covered (outside every VMA, shared memory).
 */
export type Cover = "zero" | "keep" | undefined;

/**
 * The {@linkcode Cover} of addresses in a process with these VMAs.
 *
 * @example
 * ```ts
 * const cover = coverOf(decodeVmas(await Deno.readFile(`${dir}/mm-1.img`)));
 * ```
 */
export function coverOf(vmas: Vma[]): (addr: number) => Cover {
  vmas = [...vmas].sort((a, b) => a.start - b.start);
  return (addr) => {
    let lo = 0, hi = vmas.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (vmas[mid].end <= addr) lo = mid + 1;
      else hi = mid;
    }
    const v = vmas[lo];
    if (!v || v.start > addr || (v.flags & MAP_SHARED) !== 0) return undefined;
    if ((v.status & VMA_ANON_PRIVATE) !== 0) return "zero";
    if ((v.status & VMA_FILE_PRIVATE) !== 0) return "keep";
    return undefined;
  };
}

/** The pages one process is restored with, in a {@linkcode ComposeResult}. */
export interface ComposedProcess {
  /** Every page the restore maps in, in pagemap order: from the slot file, then the parent. */
  addresses: number[];
  /** How many of `addresses` (the first ones, ascending) come from the slot file. */
  fileCount: number;
  /** The hash of each of those pages (16 bytes each), of the bytes CRIU will read. */
  hashes: Uint8Array;
  /** Addresses of pages the final dump lacks, restored as the slot holds them (not in a manifest). */
  covered: Set<number>;
  /** Read one restored page: `index` into `addresses`. */
  page(index: number): Promise<Uint8Array>;
  /** The pages image the first `fileCount` pages are read from (a link to the slot file). */
  pagesFile: string;
}

/** What {@linkcode composeImages} did. */
export interface ComposeResult {
  /** Pages served from the slot files in place. */
  inPlace: number;
  /** Pages copied into the parent image. */
  copied: number;
  /** Per process (pid as CRIU names it): what the restore reads, for the manifest check. */
  processes: Map<number, ComposedProcess>;
}

/**
 * Lay a final pagemap (runs present, lazy or not, ascending) over a slot file whose leading
 * slots hold `ascending` (strictly ascending addresses); lazy pages whose slot is `hot` (patched
 * again while pre-copy ran: the working set) become eager. Undefined when the pagemap has runs
 * in a parent of its own (a pre-dump chain), which this layout cannot express.
 *
 * @example
 * ```ts
 * const plan = planProcess({ pagesId: 1, entries: [{ vaddr: 0x1000, nrPages: 2, flags: 6 }] }, [0x1000, 0x2000]);
 * // plan.inFile === 2, plan.parent.length === 0
 * ```
 */
export function planProcess(
  pagemap: Pagemap,
  ascending: ArrayLike<number>,
  cover: (addr: number) => Cover = () => undefined,
  hot: (slot: number) => boolean = () => false,
): ProcessPlan | undefined {
  const entries: PagemapEntry[] = [];
  const parent: number[] = [];
  const zero: number[] = [];
  const covered = new Set<number>();
  let usable = ascending.length; // slots before the first stale one
  let k = 0; // next slot of the file
  let inFile = 0;
  const push = (vaddr: number, nrPages: number, flags: number) => {
    const last = entries.at(-1);
    if (last && last.flags === flags && last.vaddr + last.nrPages * PAGE_SIZE === vaddr) {
      last.nrPages += nrPages;
    } else entries.push({ vaddr, nrPages, flags });
  };
  for (const e of pagemap.entries) {
    if ((e.flags & PE_PARENT) !== 0) return undefined;
    if ((e.flags & PE_PRESENT) === 0) {
      entries.push({ ...e });
      continue;
    }
    const fileFlags = PE_PRESENT | (e.flags & PE_LAZY);
    const end = e.vaddr + (e.nrPages - 1) * PAGE_SIZE;
    if (
      k + e.nrPages <= usable && ascending[k] === e.vaddr && ascending[k + e.nrPages - 1] === end
    ) {
      // Ascending unique addresses: the whole run sits in the file, in order. Its hot slots
      // are restored eagerly (the resumed tree would fault on them first).
      if (fileFlags === PE_PRESENT) push(e.vaddr, e.nrPages, fileFlags);
      else {
        // One entry per stretch of equally hot slots (not a push per page: half a million
        // pages in a 2 GiB tree).
        for (let i = 0; i < e.nrPages;) {
          const h = hot(k + i);
          let j = i + 1;
          while (j < e.nrPages && hot(k + j) === h) j++;
          push(e.vaddr + i * PAGE_SIZE, j - i, h ? PE_PRESENT : fileFlags);
          i = j;
        }
      }
      k += e.nrPages;
      inFile += e.nrPages;
      continue;
    }
    for (let i = 0; i < e.nrPages; i++) {
      const addr = e.vaddr + i * PAGE_SIZE;
      // Slots below this address hold pages the final dump does not have. Each must be covered
      // by a run of its own (the file's offsets count every slot); one that cannot be ends the
      // usable part of the file, and every later page comes from the parent.
      while (k < usable && ascending[k] < addr) {
        const how = cover(ascending[k]);
        if (how === undefined) {
          usable = k;
          break;
        }
        if (how === "zero") zero.push(ascending[k]);
        covered.add(ascending[k]);
        push(ascending[k], 1, PE_PRESENT);
        k++;
        inFile++;
      }
      if (k < usable && ascending[k] === addr) {
        push(addr, 1, hot(k) ? PE_PRESENT : fileFlags);
        k++;
        inFile++;
      } else {
        push(addr, 1, PE_PARENT);
        parent.push(addr);
      }
    }
  }
  return { entries: splitLazyRuns(entries), parent, inFile, zero, covered };
}

/**
 * Pages one lazy run may hold at most. CRIU's lazy-pages daemon (4.1) keeps the longest lazy
 * run's length in an `int` of bytes and allocates a buffer that long (criu/uffd.c
 * collect_iovs): a run of 2 GiB overflows it and the daemon quits without a word, failing the
 * restore. Runs are cut into pieces of this many pages (64 MiB) — same pages, more entries.
 */
export const MAX_LAZY_RUN_PAGES = 16_384;

/** `entries` with every lazy run cut into runs of at most {@linkcode MAX_LAZY_RUN_PAGES}. */
function splitLazyRuns(entries: PagemapEntry[]): PagemapEntry[] {
  if (!entries.some((e) => (e.flags & PE_LAZY) !== 0 && e.nrPages > MAX_LAZY_RUN_PAGES)) {
    return entries;
  }
  const out: PagemapEntry[] = [];
  for (const e of entries) {
    if ((e.flags & PE_LAZY) === 0 || e.nrPages <= MAX_LAZY_RUN_PAGES) {
      out.push(e);
      continue;
    }
    for (let at = 0; at < e.nrPages; at += MAX_LAZY_RUN_PAGES) {
      const n = Math.min(MAX_LAZY_RUN_PAGES, e.nrPages - at);
      out.push({ vaddr: e.vaddr + at * PAGE_SIZE, nrPages: n, flags: e.flags });
    }
  }
  return out;
}

/**
 * Write the restore's pagemaps into `dir` (which holds the other image files): each process's
 * `pages-N.img` becomes a link to its slot file, out-of-order pages go to `dir/parent/` from
 * `store`. Undefined (nothing written) when a process cannot be laid out so; the caller then
 * rebuilds the pages images the ordinary way.
 *
 * @example
 * ```ts
 * const done = await composeImages(scratch, image, store); // { inPlace: 65000, copied: 536 }
 * ```
 */
export async function composeImages(
  dir: string,
  image: PagesImage,
  store: PageStoreView,
): Promise<ComposeResult | undefined> {
  const pstree = decodePstree(await Deno.readFile(`${dir}/pstree.img`));
  const plans: { pid: number; pagemap: Pagemap; plan: ProcessPlan; slots?: string }[] = [];
  for (const p of pstree) {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(`${dir}/pagemap-${p.pid}.img`);
    } catch {
      continue; // a zombie: no memory
    }
    const pagemap = decodePagemap(bytes, `pagemap-${p.pid}.img`);
    const layout = image.layout(p.pid);
    const vmas = decodeVmas(await Deno.readFile(`${dir}/mm-${p.pid}.img`));
    // Slots the sender patched again hold the working set: eager, not left to fault on.
    const hot = layout?.rewritten ?? (() => false);
    const plan = planProcess(pagemap, layout?.ascending ?? [], coverOf(vmas), hot);
    if (!plan) return undefined;
    // Covered slots of private anonymous memory read as zeros, as that memory does now.
    if (plan.zero.length > 0) {
      image.put(p.pid, plan.zero, new Uint8Array(plan.zero.length * PAGE_SIZE));
    }
    plans.push({ pid: p.pid, pagemap, plan, slots: layout?.path });
  }
  const withParent = plans.some((x) => x.plan.parent.length > 0);
  if (withParent) await Deno.mkdir(`${dir}/parent`, { mode: 0o700 });
  let inPlace = 0, copied = 0;
  const processes = new Map<number, ComposedProcess>();
  for (const { pid, pagemap, plan, slots } of plans) {
    const pages = `${dir}/pages-${pagemap.pagesId}.img`;
    await Deno.remove(pages).catch(() => {});
    if (slots && plan.inFile > 0) await Deno.symlink(slots, pages);
    else await Deno.writeFile(pages, new Uint8Array(0));
    await Deno.writeFile(
      `${dir}/pagemap-${pid}.img`,
      encodePagemap({ ...pagemap, entries: plan.entries }),
    );
    const parentHashes = withParent
      ? await writeParent(`${dir}/parent`, pid, pagemap, plan.parent, store)
      : new Uint8Array(0);
    processes.set(pid, composedProcess(dir, pagemap.pagesId, plan, image, pid, parentHashes));
    inPlace += plan.inFile;
    copied += plan.parent.length;
  }
  return { inPlace, copied, processes };
}

/** What one process is restored with: the slot file's pages in order, then the parent's. */
function composedProcess(
  dir: string,
  pagesId: number,
  plan: ProcessPlan,
  image: PagesImage,
  pid: number,
  parentHashes: Uint8Array,
): ComposedProcess {
  const layout = image.layout(pid);
  let fileCount = 0;
  for (const e of plan.entries) {
    if ((e.flags & PE_PRESENT) !== 0 && (e.flags & PE_PARENT) === 0) fileCount += e.nrPages;
  }
  // Filled in place (a 2 GiB tree has half a million pages: no pushes, no spread copies).
  const addresses = new Array<number>(fileCount + plan.parent.length);
  let at = 0;
  for (const e of plan.entries) {
    if ((e.flags & PE_PRESENT) === 0 || (e.flags & PE_PARENT) !== 0) continue;
    for (let i = 0; i < e.nrPages; i++) addresses[at++] = e.vaddr + i * PAGE_SIZE;
  }
  for (let i = 0; i < plan.parent.length; i++) addresses[at++] = plan.parent[i];
  const hashes = new Uint8Array(addresses.length * 16);
  // The file's pages are its slots 0 … in order: their hashes are one piece of the layout's.
  const bulk = layout?.slotHashes?.(fileCount);
  if (bulk && bulk.length === fileCount * 16) hashes.set(bulk);
  else for (let i = 0; i < fileCount; i++) hashes.set(layout!.hashOfSlot(i), i * 16);
  hashes.set(parentHashes, fileCount * 16);
  return {
    addresses,
    fileCount,
    hashes,
    covered: plan.covered,
    pagesFile: `${dir}/pages-${pagesId}.img`,
    page: (index) =>
      index < fileCount
        ? readPageAt(`${dir}/pages-${pagesId}.img`, index)
        : readPageAt(`${dir}/parent/pages-${pagesId}.img`, index - fileCount),
  };
}

async function readPageAt(file: string, index: number): Promise<Uint8Array> {
  using f = await Deno.open(file, { read: true });
  await f.seek(index * PAGE_SIZE, Deno.SeekMode.Start);
  const page = new Uint8Array(PAGE_SIZE);
  let off = 0;
  while (off < PAGE_SIZE) {
    const n = await f.read(page.subarray(off));
    if (n === null || n === 0) throw new Error(`${file} ends before page ${index}`);
    off += n;
  }
  return page;
}

/** The parent image of one process: its out-of-order pages, from the store; their hashes. */
async function writeParent(
  dir: string,
  pid: number,
  pagemap: Pagemap,
  addresses: number[],
  store: PageStoreView,
): Promise<Uint8Array> {
  const entries: PagemapEntry[] = [];
  const data = new Uint8Array(addresses.length * PAGE_SIZE);
  for (let i = 0; i < addresses.length; i++) {
    const got = store.get(pid, addresses[i]);
    const page = got instanceof Promise ? await got : got;
    if (!page || page.length !== PAGE_SIZE) {
      throw new Error(`page 0x${addresses[i].toString(16)} of pid ${pid} never arrived`);
    }
    data.set(page, i * PAGE_SIZE);
    const last = entries.at(-1);
    if (last && last.vaddr + last.nrPages * PAGE_SIZE === addresses[i]) last.nrPages++;
    else entries.push({ vaddr: addresses[i], nrPages: 1, flags: PE_PRESENT });
  }
  await Deno.writeFile(`${dir}/pages-${pagemap.pagesId}.img`, data);
  await Deno.writeFile(`${dir}/pagemap-${pid}.img`, encodePagemap({ ...pagemap, entries }));
  return pageHashes(data);
}
