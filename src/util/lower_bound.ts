/**
 * Binary search in an ascending array of numbers: the engine's one way to find a page address
 * among a manifest's, a composed layout's or a held index's addresses without building a table.
 *
 * @module
 */

/**
 * The first index in [from, to) of ascending `a` whose value is ≥ `x` (`to` when none is).
 *
 * @example
 * ```ts
 * lowerBound([0x1000, 0x2000, 0x3000], 0x2000); // 1
 * lowerBound([0x1000, 0x2000, 0x3000], 0x2800); // 2
 * lowerBound([0x1000, 0x2000, 0x3000], 0x1000, 1, 3); // 1
 * ```
 */
export function lowerBound(a: ArrayLike<number>, x: number, from = 0, to = a.length): number {
  let lo = from, hi = to;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
