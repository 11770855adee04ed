/**
 * `pagemap-<pid>.img`: which pages of a process's address space a dump holds and where their
 * contents are. The first entry is a `PagemapHead` naming the raw `pages-<pages_id>.img` file;
 * each later `PagemapEntry` is a run of `nr_pages` (CRIU ≥ 4.2: `pages`, field 5) pages from
 * `vaddr` with flags: PE_PRESENT (in
 * this dump's pages file, in pagemap order), PE_PARENT (in the parent dump's images), PE_LAZY
 * (may be restored lazily; left out of the pages file by `dump --lazy-pages`).
 *
 * @module
 */
import { expectMagic, Magic, readImage, writeImage } from "./image.ts";
import { decodeMessage, encodeMessage, type PbField, uintField } from "./protobuf.ts";

/** PagemapEntry flag: pages live in the parent images. */
export const PE_PARENT = 1;
/** PagemapEntry flag: pages may be restored lazily. */
export const PE_LAZY = 2;
/** PagemapEntry flag: pages have contents in a pages image. */
export const PE_PRESENT = 4;

/** One run of pages. */
export interface PagemapEntry {
  /** First page's address. */
  vaddr: number;
  /** Number of pages. */
  nrPages: number;
  /** PE_* flags. */
  flags: number;
}

/** A decoded pagemap image. */
export interface Pagemap {
  /** The N of `pages-N.img`. */
  pagesId: number;
  /** The runs, in file order (ascending addresses). */
  entries: PagemapEntry[];
  /**
   * CRIU ≥ 4.2 writes run lengths as 64-bit `pages` (field 5), leaving `nr_pages` (field 2) 0;
   * re-encoding keeps the layout it was read in. @default false
   */
  widePages?: boolean;
}

/** Decode `pagemap-<pid>.img` bytes. */
export function decodePagemap(bytes: Uint8Array, name = "pagemap"): Pagemap {
  const image = readImage(bytes, name);
  expectMagic(image, Magic.PAGEMAP, name);
  if (image.entries.length === 0) throw new Error(`${name}: no PagemapHead`);
  const head = decodeMessage(image.entries[0]);
  const pagesId = uintField(head, 1);
  if (pagesId === undefined) throw new Error(`${name}: PagemapHead without pages_id`);
  let widePages = false;
  const entries = image.entries.slice(1).map((bytes, i) => {
    const f = decodeMessage(bytes);
    const vaddr = uintField(f, 1);
    const wide = uintField(f, 5);
    if (wide !== undefined) widePages = true;
    const nrPages = wide ?? uintField(f, 2);
    if (vaddr === undefined || nrPages === undefined) {
      throw new Error(`${name}: entry ${i} lacks vaddr or nr_pages`);
    }
    let flags = uintField(f, 4);
    // Images from CRIU < 3.0 said in_parent (field 3) instead of flags.
    if (flags === undefined) flags = uintField(f, 3) ? PE_PARENT : PE_PRESENT;
    return { vaddr, nrPages, flags };
  });
  return widePages ? { pagesId, entries, widePages } : { pagesId, entries };
}

/**
 * Encode a pagemap image the way CRIU writes it: head, then vaddr/nr_pages/flags entries (plus
 * the 64-bit `pages` field for CRIU ≥ 4.2 layouts).
 */
export function encodePagemap(pagemap: Pagemap): Uint8Array {
  const head = encodeMessage([{ field: 1, wire: 0, value: BigInt(pagemap.pagesId) }]);
  const entries = pagemap.entries.map((e) => {
    const fields: PbField[] = [
      { field: 1, wire: 0, value: BigInt(e.vaddr) },
      { field: 2, wire: 0, value: pagemap.widePages ? 0n : BigInt(e.nrPages) },
      { field: 4, wire: 0, value: BigInt(e.flags) },
    ];
    if (pagemap.widePages) fields.push({ field: 5, wire: 0, value: BigInt(e.nrPages) });
    return encodeMessage(fields);
  });
  return writeImage({ kind: "common", magic: Magic.PAGEMAP, entries: [head, ...entries] });
}

/** Whether an entry's pages are stored in this dump's pages file. */
export function inPagesFile(entry: PagemapEntry, lazyDump = false): boolean {
  if ((entry.flags & PE_PARENT) !== 0 || (entry.flags & PE_PRESENT) === 0) return false;
  return !(lazyDump && (entry.flags & PE_LAZY) !== 0);
}

/** Number of pages the pages file of this pagemap holds. */
export function pagesInFile(pagemap: Pagemap, lazyDump = false): number {
  let n = 0;
  for (const e of pagemap.entries) if (inPagesFile(e, lazyDump)) n += e.nrPages;
  return n;
}
