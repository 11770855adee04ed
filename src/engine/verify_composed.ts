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
import type { PageManifest } from "./manifest.ts";
import { VerificationError } from "./verify_error.ts";

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
    const index = indexOf(proc);
    for (let k = 0; k < list.addresses.length; k++) {
      const addr = list.addresses[k];
      const at = index.get(addr);
      if (at === undefined) {
        throw new VerificationError(`pid ${pid}: page 0x${hex(addr)} is not in the images`);
      }
      if (proc.covered.has(addr)) {
        throw new VerificationError(`pid ${pid}: page 0x${hex(addr)} is a covered slot`);
      }
      if (!equalAt(proc.hashes, at * HASH, list.hashes, k * HASH)) {
        throw new VerificationError(`pid ${pid}: page 0x${hex(addr)} differs in the images`);
      }
    }
    const extra = proc.addresses.length - proc.covered.size - list.addresses.length;
    if (extra !== 0) {
      throw new VerificationError(
        `pid ${pid}: the images hold ${proc.addresses.length - proc.covered.size} dumped pages, ` +
          `the manifest ${list.addresses.length}`,
      );
    }
    checked += list.addresses.length;
  }
  for (const pid of manifest.processes.keys()) {
    if (!composed.processes.has(pid)) {
      throw new VerificationError(`pid ${pid} of the manifest has no images`);
    }
  }
  return checked;
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
  const at = proc ? indexOf(proc).get(addr) : undefined;
  if (!proc || at === undefined) {
    return Promise.reject(new VerificationError(`pid ${pid}: page 0x${hex(addr)} has no image`));
  }
  return proc.page(at);
}

const indexes = new WeakMap<ComposedProcess, Map<number, number>>();

function indexOf(proc: ComposedProcess): Map<number, number> {
  let m = indexes.get(proc);
  if (!m) {
    m = new Map();
    for (let i = 0; i < proc.addresses.length; i++) m.set(proc.addresses[i], i);
    indexes.set(proc, m);
  }
  return m;
}

function equalAt(a: Uint8Array, at: number, b: Uint8Array, bt: number): boolean {
  for (let i = 0; i < HASH; i++) if (a[at + i] !== b[bt + i]) return false;
  return true;
}

function hex(n: number): string {
  return n.toString(16);
}
