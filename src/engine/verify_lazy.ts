/**
 * The manifest check of a post-copy restore before it runs: the images hold the eager pages
 * (rebuilt from the store, or written by CRIU), each must hash as the source's manifest says;
 * the pages left lazy must be exactly the manifest's other pages — they are checked one by one
 * as they arrive (lazy_check.ts). Shared memory (never lazy) is checked whole.
 *
 * @example
 * ```ts
 * const { checked, lazyPages } = await verifyBeforeLazyRestore(dir, request.verify);
 * ```
 *
 * @module
 */
import { pageHashes } from "../native/page_hash.ts";
import {
  PAGE_SIZE,
  type PagemapEntry,
  PE_LAZY,
  PE_PARENT,
  PE_PRESENT,
  readDumpDir,
} from "../criu/images/mod.ts";
import type { VerifyRequest } from "./contract.ts";
import type { PageList } from "./manifest.ts";
import { checkFile, type ImagesChecked, readManifest } from "./verify.ts";
import { VerificationError } from "./verify_error.ts";

const HASH = 16;

/** What the check before a post-copy restore found. */
export interface LazyImagesChecked {
  /** The manifest and the eager pages checked (as for a stop-and-copy). */
  checked: ImagesChecked;
  /** Pages the manifest expects to arrive after the restore. */
  lazyPages: number;
}

/** Check the eager images in `dir` and the lazy remainder against the source's manifest. */
export async function verifyBeforeLazyRestore(
  dir: string,
  req: VerifyRequest,
): Promise<LazyImagesChecked> {
  const started = performance.now();
  const manifest = await readManifest(dir, req);
  const dump = await readDumpDir(dir, true, { checkSizes: false });
  let imagePages = 0, lazyPages = 0;
  for (const mem of dump.memory) {
    const list = manifest.processes.get(mem.pid);
    if (!list) throw new VerificationError(`pid ${mem.pid} has images but is not in the manifest`);
    const lazy = mem.pagemap.entries
      .filter((e) => (e.flags & PE_LAZY) !== 0 && (e.flags & (PE_PARENT | PE_PRESENT)) === 0);
    const hashes = await eagerHashes(mem.pid, `${dir}/${mem.pagesFile}`, mem.addresses.length);
    lazyPages += walkProcess(mem.pid, list, mem.addresses, hashes, lazy);
    imagePages += mem.addresses.length;
  }
  for (const pid of manifest.processes.keys()) {
    if (!dump.memory.some((m) => m.pid === pid)) {
      throw new VerificationError(`pid ${pid} of the manifest has no images`);
    }
  }
  for (const obj of dump.shmem) {
    imagePages += await checkFile(
      `${dir}/${obj.pagesFile}`,
      obj.offsets,
      manifest.shmem.get(obj.id),
      `shared memory ${obj.id}`,
    );
  }
  return {
    checked: { manifest, imagePages, imageMs: performance.now() - started },
    lazyPages,
  };
}

/** The hashes of the first `count` pages of the pages file of `pid`. */
async function eagerHashes(pid: number, file: string, count: number): Promise<Uint8Array> {
  if (count === 0) return new Uint8Array(0);
  const data = await Deno.readFile(file);
  if (data.length < count * PAGE_SIZE) {
    throw new VerificationError(`pid ${pid}: the pages image ends early`);
  }
  return pageHashes(data.subarray(0, count * PAGE_SIZE));
}

/**
 * Walk the manifest's pages of `pid` (ascending) with the eager pages (ascending, hashes in the
 * same order) and the lazy runs (ascending) together: every manifest page is either an eager
 * page with its hash or a lazy one, and the images hold no other page. Returns the lazy pages.
 * (One pass, no lookup table: a 2 GiB tree has half a million pages.)
 */
function walkProcess(
  pid: number,
  list: PageList,
  eager: number[],
  hashes: Uint8Array,
  lazy: PagemapEntry[],
): number {
  const where = (a: number) => `pid ${pid}: page 0x${a.toString(16)}`;
  const notListed = (a: number, what: string) =>
    new VerificationError(`${where(a)} (${what}) is not in the manifest`);
  let e = 0, r = 0, i = 0, lazyCount = 0;
  for (let k = 0; k < list.addresses.length; k++) {
    const addr = list.addresses[k];
    if (e < eager.length && eager[e] < addr) throw notListed(eager[e], "eager");
    const la = r < lazy.length ? lazy[r].vaddr + i * PAGE_SIZE : Infinity;
    if (la < addr) throw notListed(la, "lazy");
    if (e < eager.length && eager[e] === addr) {
      for (let b = 0; b < HASH; b++) {
        if (hashes[e * HASH + b] !== list.hashes[k * HASH + b]) {
          throw new VerificationError(`${where(addr)} differs in the images`);
        }
      }
      e++;
    } else if (la === addr) {
      lazyCount++;
      if (++i === lazy[r].nrPages) {
        r++;
        i = 0;
      }
    } else {
      throw new VerificationError(`${where(addr)} of the manifest is neither eager nor lazy`);
    }
  }
  if (e < eager.length) throw notListed(eager[e], "eager");
  if (r < lazy.length) throw notListed(lazy[r].vaddr + i * PAGE_SIZE, "lazy");
  return lazyCount;
}
