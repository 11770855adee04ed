/**
 * The stop-and-copy policy interface: one small decision per pre-copy round, usable live by an
 * engine and offline by the simulator.
 *
 * @module
 */
import type { PageSet } from "../tracker/types.ts";

/** What one completed pre-copy round did. */
export interface RoundRecord {
  /** Round index, 0 = the first (full) pre-copy round. */
  index: number;
  /** Pages sent in this round. */
  pagesSent: number;
  /** Pages that were dirty but held back (deferred) this round. */
  pagesDeferred: number;
  /** Resident pages not sent because unchanged since the previous round (CRIU's "skipped"). */
  pagesSkipped: number;
  /** Pages written by the workload while this round was being sent. */
  pagesDirtied: number;
  /** Wall-clock duration of the round in milliseconds. */
  durationMs: number;
  /** Bytes put on the wire. */
  bytesSent: number;
  /** Pages the predictor expected this round to dirty, when a predictor ran. */
  predictedDirty?: number;
}

/** The link as the engine currently estimates it. */
export interface LinkEstimate {
  /** Usable bandwidth in bytes per second. */
  bandwidthBps: number;
  /** Round-trip time in milliseconds. */
  rttMs: number;
}

/**
 * What a predictor says about the rounds to come, if the engine keeps pre-copying from now on.
 * `expectedDirty[h - 1]` is the number of dirty pages expected to be pending after h more rounds
 * (h = 1..horizon), taking round durations (bandwidth) into account.
 */
export interface PredictionView {
  /** How many rounds ahead the view reaches. */
  horizon: number;
  /** Expected pending dirty pages after each of the next `horizon` rounds. */
  expectedDirty: number[];
  /**
   * Pages expected to be written within the next `ms` milliseconds of workload time (the dirty
   * count of a round lasting that long); absent when the predictor cannot say.
   */
  expectedDirtyWithin?(ms: number): number;
  /**
   * Probability that a page is written again within the next `h` rounds (h ≥ 1); absent when
   * the predictor has no per-page view. Used for deferral.
   */
  willRedirty?(mappingId: number, pageIndex: number, h: number): number;
  /**
   * Probability that a page is written within the next `ms` milliseconds of workload time;
   * absent when the predictor cannot say. Lets deferral size the round it is deciding about.
   */
  willRedirtyWithin?(mappingId: number, pageIndex: number, ms: number): number;
  /**
   * Expected pending dirty pages after the next round if the workload were throttled by
   * `percent` (0–99); absent when the predictor cannot say.
   */
  expectedDirtyThrottled?(percent: number): number;
}

/** Everything a policy may look at when deciding about the next round. */
export interface PolicyState {
  /** The completed pre-copy rounds, oldest first (empty before the first round). */
  rounds: RoundRecord[];
  /** Dirty pages that would be sent by the next round (all resident pages before round 0). */
  pendingPages: number;
  /** The pending pages themselves, for deferral decisions. */
  pending: PageSet;
  /** Link estimate. */
  link: LinkEstimate;
  /** Page size in bytes. */
  pageSize: number;
  /** Bytes on the wire per page (after compression, with per-page overhead). */
  wireBytesPerPage: number;
  /** Resident pages of the workload. */
  totalPages: number;
  /** Current CPU throttle of the workload in percent (0 = none). */
  throttlePercent: number;
  /**
   * Downtime the final phase costs whatever is pending (freeze, dump of non-memory state, restore,
   * one round trip), in ms. @default 0
   */
  fixedDowntimeMs?: number;
  /**
   * Downtime each page still pending at the freeze costs besides sending it (CRIU dumping and
   * restoring it), in ms. @default 0
   */
  finalMsPerPage?: number;
  /** Absolute downtime budget in milliseconds, when the user gave one. */
  maxDowntimeMs?: number;
  /** Tolerated downtime above the best reachable, as a fraction (0.1 = 10 %). */
  downtimeSlack: number;
  /** The predictor's view, when a predictor runs. */
  prediction?: PredictionView;
}

/** What to do next. */
export type Decision =
  | { action: "continue"; defer?: PageSet }
  | { action: "stop-and-copy" }
  | { action: "post-copy" }
  | { action: "throttle"; percent: number; defer?: PageSet };

/** A stop-and-copy policy: looks at the state, says what to do with the next round. */
export interface StopPolicy {
  /** Registry name, e.g. `phaul` or `fixed-3`. */
  readonly name: string;
  /**
   * Decide about the next round. Called before every round, including before round 0.
   *
   * @param state the rounds so far, the pending pages, the link and the prediction
   */
  decide(state: PolicyState): Decision;
}
