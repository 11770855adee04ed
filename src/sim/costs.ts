/**
 * The CRIU cost model of the simulator: fixed and per-page costs of the final phase, measured with
 * real CRIU 4.1.1 on the development machine by `build/calibrate/criu_costs.ts` (see the README's
 * "Simulator calibration").
 *
 * @module
 */

/** Costs of a CRIU migration's final phase. */
export interface CriuCosts {
  /** Freeze the tree and dump its non-memory state, in ms. */
  freezeMs: number;
  /** Restore the tree's non-memory state on the target, up to it running again, in ms. */
  restoreMs: number;
  /** Dump cost per page (write to tmpfs), in µs. */
  dumpUsPerPage: number;
  /** Restore cost per page, in µs. */
  restoreUsPerPage: number;
}

/**
 * Measured with CRIU 4.1.1 on the development machine (kernel 6.18, x86_64) by
 * `build/calibrate/criu_costs.ts`: a memcheck workload of 16/64/256 MiB dumped with
 * `--leave-stopped` to tmpfs and restored, medians of 3, least-squares line (dump 42/64/315 ms,
 * restore 44/74/255 ms).
 */
export const CRIU_COSTS: CriuCosts = {
  freezeMs: 7.4,
  restoreMs: 23.6,
  dumpUsPerPage: 4.64,
  restoreUsPerPage: 3.51,
};
