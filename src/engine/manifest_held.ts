/**
 * The destination's own page hashes a digest manifest is checked on (manifest.ts,
 * {@linkcode DecodeOptions.held}): those of the composed layout it restores from (taken when
 * each page was written into its slot, or into the parent image), or of the flat pages files it
 * rebuilt (hashed here from their bytes).
 *
 * @example
 * ```ts
 * const held = heldOfComposed(composed); // pid → the restore's pages and their hashes
 * const manifest = decodeManifest(bytes, { held });
 * ```
 *
 * @module
 */
import type { DumpDir } from "../criu/images/mod.ts";
import { pageHashes } from "../native/page_hash.ts";
import type { ComposeResult } from "./lazy_images.ts";
import type { DecodeOptions, HeldSegment } from "./manifest.ts";

/**
 * The hashes of a composed restore: per process, its slot-file pages and its parent's pages.
 *
 * @example
 * ```ts
 * const held = heldOfComposed(composed)(1); // two segments of pid 1
 * ```
 */
export function heldOfComposed(composed: ComposeResult): NonNullable<DecodeOptions["held"]> {
  return (pid) => {
    const p = composed.processes.get(pid);
    if (!p) return undefined;
    const { addresses, hashes, fileCount } = p;
    return [
      { addresses, hashes, from: 0, to: fileCount },
      { addresses, hashes, from: fileCount, to: addresses.length },
    ];
  };
}

/**
 * The hashes of the flat pages files of `dump` (in `dir`), read and hashed now.
 *
 * @example
 * ```ts
 * const held = await heldOfFiles(dir, await readDumpDir(dir));
 * ```
 */
export async function heldOfFiles(
  dir: string,
  dump: DumpDir,
): Promise<NonNullable<DecodeOptions["held"]>> {
  const out = new Map<number, HeldSegment[]>();
  for (const mem of dump.memory) {
    const data = await Deno.readFile(`${dir}/${mem.pagesFile}`);
    const n = Math.min(mem.addresses.length, Math.floor(data.length / 4096));
    const hashes = pageHashes(data.subarray(0, n * 4096));
    out.set(mem.pid, [{ addresses: mem.addresses, hashes, from: 0, to: n }]);
  }
  return (pid) => out.get(pid);
}
