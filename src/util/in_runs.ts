/**
 * Whether an address lies in a list of runs (ascending, disjoint address ranges), by binary search:
 * the engine's one such test, for runs of any shape (a manifest's `[vaddr, pages]` tuples, a final
 * scan's `{ vaddr, nrPages }` objects), each caller saying where its runs start and end.
 *
 * @module
 */

/** Where a run of shape `R` starts and ends (exclusive), in bytes. */
export interface RunBounds<R> {
  /** The run's first address. */
  start(run: R): number;
  /** The address just past the run. */
  end(run: R): number;
}

/**
 * Whether `addr` lies in one of `runs` (ascending and disjoint).
 *
 * @example
 * ```ts
 * const bounds = { start: (r: [number, number]) => r[0], end: (r: [number, number]) => r[0] + r[1] * 4096 };
 * inRuns([[0x1000, 2], [0x8000, 1]], 0x2000, bounds); // true (the first run's second page)
 * inRuns([[0x1000, 2], [0x8000, 1]], 0x3000, bounds); // false
 * ```
 */
export function inRuns<R>(runs: readonly R[], addr: number, bounds: RunBounds<R>): boolean {
  let lo = 0, hi = runs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (bounds.end(runs[mid]) <= addr) lo = mid + 1;
    else hi = mid;
  }
  return lo < runs.length && bounds.start(runs[lo]) <= addr;
}
