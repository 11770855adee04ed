/**
 * Compact encoding of a {@linkcode PageSet}: per mapping either gap/run varints or a bitmap,
 * whichever is smaller. Isolated pages with gaps below 64 cost one byte; runs cost two or three
 * bytes in total; dense scattered sets cost one bit per page of their span.
 *
 * @module
 */
import type { PageSet } from "../tracker/types.ts";
import { type ByteSink, type ByteSource, DecodeError } from "../util/varint.ts";

const MODE_RUNS = 0;
const MODE_BITMAP = 1;

/** Append the encoding of `set` to `sink`. */
export function encodePageSet(sink: ByteSink, set: PageSet): void {
  let count = 0;
  for (const pages of set.values()) if (pages.length > 0) count++;
  sink.varint(count);
  for (const [id, pages] of set) {
    if (pages.length === 0) continue;
    sink.varint(id);
    const first = pages[0];
    const span = pages[pages.length - 1] - first + 1;
    const bitmapBytes = Math.ceil(span / 8);
    const runs = countRuns(pages);
    // Runs cost ≈ 1 byte per isolated page, ≈ 3 per run; the bitmap a bit per spanned page.
    if (bitmapBytes + 4 < runs.isolated + runs.runs * 3) {
      sink.u8(MODE_BITMAP);
      sink.varint(first);
      sink.varint(span);
      const bitmap = new Uint8Array(bitmapBytes);
      for (let i = 0; i < pages.length; i++) {
        const bit = pages[i] - first;
        bitmap[bit >> 3] |= 1 << (bit & 7);
      }
      sink.bytes(bitmap);
    } else {
      sink.u8(MODE_RUNS);
      sink.varint(runs.isolated + runs.runs);
      let prevEnd = 0; // one past the last page of the previous run
      let i = 0;
      while (i < pages.length) {
        let j = i;
        while (j + 1 < pages.length && pages[j + 1] === pages[j] + 1) j++;
        const gap = pages[i] - prevEnd;
        if (j === i) {
          sink.varint(gap * 2);
        } else {
          sink.varint(gap * 2 + 1);
          sink.varint(j - i - 1);
        }
        prevEnd = pages[j] + 1;
        i = j + 1;
      }
    }
  }
}

/**
 * Read a page set written by {@linkcode encodePageSet}.
 *
 * @param maxPagesPerMapping bound on decoded pages per mapping (guards corrupt input)
 */
export function decodePageSet(src: ByteSource, maxPagesPerMapping = 1 << 28): PageSet {
  const set: PageSet = new Map();
  const count = src.varint();
  if (count > src.remaining) throw new DecodeError(`page set claims ${count} mappings`);
  for (let m = 0; m < count; m++) {
    const id = src.varint();
    const mode = src.u8();
    if (mode === MODE_BITMAP) {
      const first = src.varint();
      const span = src.varint();
      if (span > maxPagesPerMapping) throw new DecodeError(`bitmap span ${span} too large`);
      const bitmap = src.bytes(Math.ceil(span / 8));
      const out: number[] = [];
      for (let bit = 0; bit < span; bit++) {
        if (bitmap[bit >> 3] & (1 << (bit & 7))) out.push(first + bit);
      }
      set.set(id, Uint32Array.from(out));
    } else if (mode === MODE_RUNS) {
      const nRuns = src.varint();
      if (nRuns > src.remaining) throw new DecodeError(`page set claims ${nRuns} runs`);
      const out: number[] = [];
      let prevEnd = 0;
      for (let r = 0; r < nRuns; r++) {
        const v = src.varint();
        const start = prevEnd + Math.floor(v / 2);
        const len = v % 2 === 1 ? src.varint() + 2 : 1;
        if (out.length + len > maxPagesPerMapping || start + len > 0xffffffff) {
          throw new DecodeError(`run of ${len} pages at ${start} out of bounds`);
        }
        for (let k = 0; k < len; k++) out.push(start + k);
        prevEnd = start + len;
      }
      set.set(id, Uint32Array.from(out));
    } else {
      throw new DecodeError(`unknown page set mode ${mode}`);
    }
  }
  return set;
}

function countRuns(pages: Uint32Array): { isolated: number; runs: number } {
  let isolated = 0;
  let runs = 0;
  let i = 0;
  while (i < pages.length) {
    let j = i;
    while (j + 1 < pages.length && pages[j + 1] === pages[j] + 1) j++;
    if (j === i) isolated++;
    else runs++;
    i = j + 1;
  }
  return { isolated, runs };
}
