/**
 * The raw `pages-<id>.img` file: the contents of every page its pagemap marks as stored in this
 * dump, 4 KiB each, concatenated in pagemap order. These helpers name each stored page by
 * address and rebuild a pages file from pages held elsewhere (the peer's page store).
 *
 * @module
 */
import { inPagesFile, type Pagemap } from "./pagemap.ts";

/** Bytes per page. */
export const PAGE_SIZE = 4096;

/** The address of each page in the pages file, in file order. */
export function storedAddresses(pagemap: Pagemap, lazyDump = false): number[] {
  const out: number[] = [];
  for (const e of pagemap.entries) {
    if (!inPagesFile(e, lazyDump)) continue;
    for (let i = 0; i < e.nrPages; i++) out.push(e.vaddr + i * PAGE_SIZE);
  }
  return out;
}

/** Raised when a pages file cannot be rebuilt because a page is missing. */
export class MissingPageError extends Error {
  /**
   * @param pid the process
   * @param addr the missing page's address
   */
  constructor(readonly pid: number, readonly addr: number) {
    super(`page 0x${addr.toString(16)} of pid ${pid} is missing from the page store`);
    this.name = "MissingPageError";
  }
}

/**
 * Rebuild the pages file of `pagemap` from `pageAt(addr)` (a 4 KiB page, or undefined when
 * missing → {@linkcode MissingPageError}).
 */
export function buildPagesFile(
  pid: number,
  pagemap: Pagemap,
  pageAt: (addr: number) => Uint8Array | undefined,
  lazyDump = false,
): Uint8Array {
  const addresses = storedAddresses(pagemap, lazyDump);
  const out = new Uint8Array(addresses.length * PAGE_SIZE);
  for (let i = 0; i < addresses.length; i++) {
    const page = pageAt(addresses[i]);
    if (!page || page.length !== PAGE_SIZE) throw new MissingPageError(pid, addresses[i]);
    out.set(page, i * PAGE_SIZE);
  }
  return out;
}
