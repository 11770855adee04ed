/**
 * `stats-dump`: CRIU's own timing of a dump (microseconds) and page counts.
 *
 * @module
 */
import { expectMagic, Magic, readImage } from "./image.ts";
import { bytesField, decodeMessage, uintField } from "./protobuf.ts";

/** What `criu dump` measured. */
export interface DumpStats {
  /** Microseconds spent freezing the tree. */
  freezingUs: number;
  /** Microseconds the tree stayed frozen during the dump. */
  frozenUs: number;
  /** Microseconds draining memory. */
  memdumpUs: number;
  /** Microseconds writing memory images. */
  memwriteUs: number;
  /** Pages scanned. */
  pagesScanned: number;
  /** Pages written to images. */
  pagesWritten: number;
  /** Pages left for a lazy restore. */
  pagesLazy: number;
}

/** Decode a `stats-dump` file. */
export function decodeDumpStats(bytes: Uint8Array, name = "stats-dump"): DumpStats {
  const image = readImage(bytes, name);
  expectMagic(image, Magic.STATS, name);
  if (image.entries.length === 0) throw new Error(`${name}: empty`);
  const dump = bytesField(decodeMessage(image.entries[0]), 1);
  if (!dump) throw new Error(`${name}: no dump statistics`);
  const f = decodeMessage(dump);
  return {
    freezingUs: uintField(f, 1) ?? 0,
    frozenUs: uintField(f, 2) ?? 0,
    memdumpUs: uintField(f, 3) ?? 0,
    memwriteUs: uintField(f, 4) ?? 0,
    pagesScanned: uintField(f, 5) ?? 0,
    pagesWritten: uintField(f, 7) ?? 0,
    pagesLazy: uintField(f, 9) ?? 0,
  };
}
