/**
 * The CRIU cost model of the simulator: fixed costs of the final phase, measured with real CRIU
 * 4.1.1 on the development machine by `build/calibrate_criu.ts` (see the README's "Simulator
 * calibration"). Per-page costs of the final dump are folded into the link model: on every link the
 * simulator models (≤ 10 Gbit), writing a page image to tmpfs is much faster than sending it.
 *
 * @module
 */

/** Fixed costs of a CRIU migration's final phase, in milliseconds. */
export interface CriuCosts {
  /** Freeze the tree and dump its non-memory state (with a small memory footprint). */
  freezeMs: number;
  /** Restore the tree on the target, up to it running again. */
  restoreMs: number;
}

/** Measured on this machine: see `build/calibrate_criu.ts` and the README. */
export const CRIU_COSTS: CriuCosts = { freezeMs: 60, restoreMs: 80 };
