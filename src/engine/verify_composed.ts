/**
 * The manifest check of a composed restore ({@linkcode composeImages}): the processes' pages are
 * not rebuilt into flat files but read in place from the destination's slot files, plus a small
 * parent image. What CRIU will read is then checked against the source's manifest with the
 * hashes the destination took of those very bytes — the slot file's per-slot hashes (taken when
 * each page was written into its slot) and the parent image's (taken when it was written) —
 * instead of rebuilding and re-reading every page inside the freeze.
 *
 * Every manifest page must be restored from a page with its hash; every other page the restore
 * maps in must be a covered slot (a page the final dump lacks, see lazy_images.ts).
 *
 * @example
 * ```ts
 * const composed = await composeImages(dir, store.pagesImage!, store);
 * const pages = checkComposed(composed!, manifest); // throws VerificationError on a difference
 * ```
 *
 * @module
 */
import type { ComposedProcess, ComposeResult } from "./lazy_images.ts";
import type { PageList, PageManifest } from "./manifest.ts";
import { VerificationError } from "./verify_error.ts";
import { lowerBound } from "../util/lower_bound.ts";

const HASH = 16;

/**
 * Check the processes of a composed restore against `manifest`; returns the pages checked.
 * Shared-memory objects are not part of a composition (their pages files are checked flat).
 */
export function checkComposed(composed: ComposeResult, manifest: PageManifest): number {
  let checked = 0;
  for (const [pid, proc] of composed.processes) {
    const list = manifest.processes.get(pid);
    if (!list) {
      if (proc.addresses.length === proc.covered.size) continue; // nothing the dump holds
      throw new VerificationError(`pid ${pid} has images but is not in the manifest`);
    }
    checked += checkProcess(pid, proc, list);
  }
  for (const pid of manifest.processes.keys()) {
    if (!composed.processes.has(pid)) {
      throw new VerificationError(`pid ${pid} of the manifest has no images`);
    }
  }
  return checked;
}

/**
 * One process: the slot-file pages and the parent's pages are each ascending, the manifest is
 * ascending; walk the three together (no lookup table: a 2 GiB tree has half a million pages).
 */
function checkProcess(pid: number, proc: ComposedProcess, list: PageList): number {
  const { addresses: a, fileCount, hashes, covered } = proc;
  const equalAt = hashComparer(hashes, list.hashes);
  let f = 0, p = fileCount;
  for (let k = 0; k < list.addresses.length; k++) {
    const addr = list.addresses[k];
    // Covered slots below this page are not in the manifest; any other page below it is extra.
    while (f < fileCount && a[f] < addr) {
      if (!covered.has(a[f])) throw extraPage(pid, a[f]);
      f++;
    }
    if (p < a.length && a[p] < addr) throw extraPage(pid, a[p]);
    let at: number;
    if (f < fileCount && a[f] === addr) {
      if (covered.size > 0 && covered.has(addr)) {
        throw new VerificationError(`pid ${pid}: page 0x${hex(addr)} is a covered slot`);
      }
      at = f++;
    } else if (p < a.length && a[p] === addr) {
      at = p++;
    } else {
      throw new VerificationError(`pid ${pid}: page 0x${hex(addr)} is not in the images`);
    }
    if (!equalAt(at, k)) {
      throw new VerificationError(`pid ${pid}: page 0x${hex(addr)} differs in the images`);
    }
  }
  for (; f < fileCount; f++) if (!covered.has(a[f])) throw extraPage(pid, a[f]);
  if (p < a.length) throw extraPage(pid, a[p]);
  return list.addresses.length;
}

function extraPage(pid: number, addr: number): VerificationError {
  return new VerificationError(
    `pid ${pid}: the images hold page 0x${hex(addr)}, which the manifest does not name`,
  );
}

/**
 * The image page a composed restore reads for process `pid` at `addr` (the read-back compares
 * it outside the areas a restore may change).
 */
export function composedPage(
  composed: ComposeResult,
  pid: number,
  addr: number,
): Promise<Uint8Array> {
  const proc = composed.processes.get(pid);
  const at = proc ? indexOf(proc, addr) : -1;
  if (!proc || at < 0) {
    return Promise.reject(new VerificationError(`pid ${pid}: page 0x${hex(addr)} has no image`));
  }
  return proc.page(at);
}

/**
 * Where `addr` is in `proc.addresses` (-1: nowhere). The slot-file part and the parent part
 * each ascend: a binary search in each, no lookup table (a 2 GiB tree has half a million
 * pages; the read-back asks for a handful, inside the freeze).
 */
function indexOf(proc: ComposedProcess, addr: number): number {
  const a = proc.addresses;
  const search = (from: number, to: number) => {
    const lo = lowerBound(a, addr, from, to);
    return lo < to && a[lo] === addr ? lo : -1;
  };
  const inFile = search(0, proc.fileCount);
  return inFile >= 0 ? inFile : search(proc.fileCount, a.length);
}

/**
 * `(i, j)` → whether hash i of `a` equals hash j of `b` (16 bytes each): four 32-bit compares
 * when both arrays are 4-byte aligned, else byte by byte.
 */
function hashComparer(a: Uint8Array, b: Uint8Array): (i: number, j: number) => boolean {
  if (
    a.byteOffset % 4 === 0 && b.byteOffset % 4 === 0 && a.length % 4 === 0 && b.length % 4 === 0
  ) {
    const x = new Uint32Array(a.buffer, a.byteOffset, a.length / 4);
    const y = new Uint32Array(b.buffer, b.byteOffset, b.length / 4);
    return (i, j) => {
      const p = i * 4, q = j * 4;
      return x[p] === y[q] && x[p + 1] === y[q + 1] && x[p + 2] === y[q + 2] &&
        x[p + 3] === y[q + 3];
    };
  }
  return (i, j) => {
    for (let t = 0; t < HASH; t++) if (a[i * HASH + t] !== b[j * HASH + t]) return false;
    return true;
  };
}

function hex(n: number): string {
  return n.toString(16);
}
