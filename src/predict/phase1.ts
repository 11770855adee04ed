/**
 * Phase 1 of the two-phase predictor: the stability test (coefficient of variation of the last
 * `k` dirty bits below a threshold, or all zero) and the "data shift" predictor for stable pages
 * (keep the latest state when its run covers more than `shiftThreshold` of the last `shiftWindow`
 * rounds, else flip it; one answer for every horizon step).
 *
 * @module
 */

/** Phase-1 parameters. */
export interface Phase1Params {
  /** Dirty bits the stability test looks at. @default 3 */
  k: number;
  /** Coefficient-of-variation threshold below which a page is stable. @default 0.5 */
  cvThreshold: number;
  /** Window of the data-shift run length. @default 2 */
  shiftWindow: number;
  /** Share of the window the latest run must exceed to be kept. @default 0.5 */
  shiftThreshold: number;
}

/** The paper's phase-1 parameters (k 3, CV 0.5, window 2, 50 %). */
export const DEFAULT_PHASE1: Phase1Params = {
  k: 3,
  cvThreshold: 0.5,
  shiftWindow: 2,
  shiftThreshold: 0.5,
};

function popcount(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/**
 * Whether a page is stable: its last `k` dirty bits are all zero or their CV is below the
 * threshold. A page of a mapping observed for fewer than `k` rounds is never stable (its older
 * bits are unknown, not clean).
 *
 * @param bits dirty history (bit 0 = latest round)
 * @param p the parameters
 * @param age rounds the page's mapping has been observed @default Infinity
 */
export function isStable(bits: number, p: Phase1Params, age = Infinity): boolean {
  if (age < p.k) return false;
  const mask = p.k >= 32 ? 0xffffffff : (1 << p.k) - 1;
  const ones = popcount((bits & mask) >>> 0);
  if (ones === 0) return true;
  const mean = ones / p.k;
  const cv = Math.sqrt(mean * (1 - mean)) / mean;
  return cv < p.cvThreshold;
}

/**
 * The data-shift prediction: 1 (dirty) or 0 (clean) for every horizon step.
 *
 * @param bits dirty history (bit 0 = latest round)
 * @param p the parameters
 */
export function dataShift(bits: number, p: Phase1Params): 0 | 1 {
  const latest = bits & 1;
  let run = 1;
  while (run < p.shiftWindow && ((bits >>> run) & 1) === latest) run++;
  const keep = run / p.shiftWindow > p.shiftThreshold;
  return (keep ? latest : 1 - latest) as 0 | 1;
}
