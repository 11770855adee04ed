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
import { PAGE_SIZE, PE_LAZY, PE_PARENT, PE_PRESENT, readDumpDir } from "../criu/images/mod.ts";
import type { VerifyRequest } from "./contract.ts";
import type { PageManifest } from "./manifest.ts";
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
      .filter((e) => (e.flags & PE_LAZY) !== 0 && (e.flags & (PE_PARENT | PE_PRESENT)) === 0)
      .flatMap((e) => Array.from({ length: e.nrPages }, (_, i) => e.vaddr + i * PAGE_SIZE));
    imagePages += await checkSubset(manifest, mem.pid, `${dir}/${mem.pagesFile}`, mem.addresses);
    const index = new Set(list.addresses);
    for (const a of lazy) {
      if (!index.has(a)) {
        throw new VerificationError(
          `pid ${mem.pid}: lazy page 0x${a.toString(16)} is not in the manifest`,
        );
      }
    }
    if (mem.addresses.length + lazy.length !== list.addresses.length) {
      throw new VerificationError(
        `pid ${mem.pid}: ${mem.addresses.length} eager and ${lazy.length} lazy pages, the ` +
          `manifest ${list.addresses.length}`,
      );
    }
    lazyPages += lazy.length;
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

/** Check the pages file of `pid` (holding `addresses`) page by page against the manifest. */
async function checkSubset(
  manifest: PageManifest,
  pid: number,
  file: string,
  addresses: number[],
): Promise<number> {
  if (addresses.length === 0) return 0;
  const list = manifest.processes.get(pid)!;
  const index = new Map(list.addresses.map((a, i) => [a, i]));
  const data = await Deno.readFile(file);
  if (data.length < addresses.length * PAGE_SIZE) {
    throw new VerificationError(`pid ${pid}: the pages image ends early`);
  }
  const hashes = pageHashes(data.subarray(0, addresses.length * PAGE_SIZE));
  for (let i = 0; i < addresses.length; i++) {
    const k = index.get(addresses[i]);
    if (k === undefined) {
      throw new VerificationError(
        `pid ${pid}: page 0x${addresses[i].toString(16)} is not in the manifest`,
      );
    }
    for (let b = 0; b < HASH; b++) {
      if (hashes[i * HASH + b] !== list.hashes[k * HASH + b]) {
        throw new VerificationError(
          `pid ${pid}: page 0x${addresses[i].toString(16)} differs in the images`,
        );
      }
    }
  }
  return addresses.length;
}
