/**
 * Page bitmaps: one bit per page of a {@linkcode PageIndex}, packed in a `Uint32Array`. The
 * simulator's sets (pending, sent, dirtied) are bitmaps, so a union or a count costs one pass
 * over the words whatever the number of pages in the sets.
 *
 * @module
 */

/** A page bitmap (bit i of word i >> 5 = page i). */
export type Bitmap = Uint32Array;

/**
 * An empty bitmap for `bits` pages.
 *
 * @example
 * ```ts
 * const b = emptyBitmap(100); // 4 words
 * ```
 */
export function emptyBitmap(bits: number): Bitmap {
  return new Uint32Array((bits + 31) >>> 5);
}

/** `into |= from`, word by word; returns `into`. */
export function orInto(into: Bitmap, from: Bitmap): Bitmap {
  for (let i = 0; i < into.length; i++) into[i] |= from[i];
  return into;
}

/** `a & ~b` as a new bitmap. */
export function andNot(a: Bitmap, b: Bitmap): Bitmap {
  const out = new Uint32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] & ~b[i];
  return out;
}

/** `a & b` as a new bitmap. */
export function and(a: Bitmap, b: Bitmap): Bitmap {
  const out = new Uint32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] & b[i];
  return out;
}

/** Set bits in a 32-bit word. */
export function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/** Pages in a bitmap. */
export function popcount(b: Bitmap): number {
  let n = 0;
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) n += popcount32(b[i]);
  return n;
}

/** Pages in `a | b`, without building it. */
export function popcountOr(a: Bitmap, b: Bitmap): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    const w = a[i] | b[i];
    if (w !== 0) n += popcount32(w);
  }
  return n;
}

/** Pages in `a & b`, without building it. */
export function popcountAnd(a: Bitmap, b: Bitmap): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    const w = a[i] & b[i];
    if (w !== 0) n += popcount32(w);
  }
  return n;
}

/** Whether bit `i` is set. */
export function hasBit(b: Bitmap, i: number): boolean {
  return ((b[i >>> 5] >>> (i & 31)) & 1) === 1;
}

/** Set bit `i`. */
export function setBit(b: Bitmap, i: number): void {
  b[i >>> 5] |= 1 << (i & 31);
}

/** Call `f` with every set bit, in increasing order. */
export function forEachBit(b: Bitmap, f: (i: number) => void): void {
  for (let w = 0; w < b.length; w++) {
    let x = b[w];
    while (x !== 0) {
      const low = x & -x;
      f((w << 5) + 31 - Math.clz32(low));
      x ^= low;
    }
  }
}
