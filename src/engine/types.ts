/**
 * The migration engine plug-in interface: one engine moves one process tree to the destination
 * behind a {@linkcode MigrationChannel}, asking a stop policy what to do each round.
 *
 * @module
 */
import type { PredictionProvider } from "../sim/provider.ts";
import type { StopPolicy } from "../policy/types.ts";
import type { MigrationChannel } from "./channel.ts";
import type { Verification, VerifyMode } from "./contract.ts";

/** Engine names (`auto` picks one by capability). */
export type EngineName = "delta" | "predump" | "lazy" | "hybrid";

/** One pre-copy round as reported (names match the JSON result). */
export interface RoundReport {
  /** Round index from 0. */
  index: number;
  /** Pages sent. */
  pages_sent: number;
  /** Pages the workload dirtied while the round ran. */
  pages_dirtied: number;
  /** Pages the predictor expected dirty for this round (null without prediction). */
  predicted_dirty: number | null;
  /** Wall-clock milliseconds. */
  duration_ms: number;
  /** Bytes put on the wire. */
  bytes: number;
}

/** Where the final phase's time went (milliseconds). */
export interface PhaseTimes {
  /** Freezing the tree (CRIU's freezing time). */
  freeze_ms: number;
  /** The whole `criu dump`. */
  dump_ms: number;
  /** Sending the final pages and image files. */
  transfer_ms: number;
  /** The destination's restore, as the source saw it. */
  restore_ms: number;
}

/** A finished migration. */
export interface MigrationOutcome {
  /** Engine used. */
  engine: EngineName;
  /** Policy used. */
  policy: string;
  /** Milliseconds from start to the destination confirming. */
  totalMs: number;
  /** Milliseconds from the source freeze to the restored tree running. */
  downtimeMs: number;
  /** Bytes put on the wire. */
  bytesSent: number;
  /** Pre-copy rounds run. */
  precopyRounds: number;
  /** Host pid of the restored root on the destination. */
  destPid: number;
  /** Per-round figures. */
  rounds: RoundReport[];
  /** Final-phase figures. */
  phases: PhaseTimes;
  /** Pages sent during the final phase. */
  finalPages: number;
  /** Pages left for the destination to fetch after the restore (lazy, hybrid). */
  lazyPages?: number;
  /** What the destination verified against the final page manifest (absent: not verified). */
  verified?: Verification;
}

/** Progress events for a live display. */
export type ProgressEvent =
  | { kind: "round"; round: RoundReport; bytesSent: number; linkBps: number }
  | { kind: "phase"; phase: "freeze" | "dump" | "transfer" | "restore" | "done" | "rollback" };

/** Everything an engine needs for one migration. */
export interface MigrationContext {
  /** Migration id (also the destination's directory name). */
  id: string;
  /** Host pid of the tree's root. */
  pid: number;
  /** The channel to the destination. */
  channel: MigrationChannel;
  /** The stop policy. */
  policy: StopPolicy;
  /**
   * The predictor the policy sees, fed every tracker round (with the round's mappings and
   * features). @default a moving-window page-frequency model
   */
  provider?: PredictionProvider;
  /** Local scratch directory for dumps (tmpfs preferred). */
  workDir: string;
  /** Progress callback. @default none */
  onProgress?: (event: ProgressEvent) => void;
  /** Milliseconds between tracker scans when a round finishes quicker. @default 50 */
  minRoundMs?: number;
  /** Most pre-copy rounds whatever the policy says. @default 30 */
  maxRounds?: number;
  /** Address the source's lazy page server listens on (lazy/hybrid). @default "127.0.0.1" */
  lazyAddress?: string;
  /**
   * Established TCP connections: `close` leaves them out (clients reconnect), `established`
   * migrates them (TCP repair; network locked with nftables). @default none (dump fails on them)
   */
  tcp?: "close" | "established";
  /**
   * Page-batch compression the channel was opened with (`u2cm migrate --compress`): the peer
   * channel applies it (LZ4 when the agent can decompress; `auto` when the link is slower than
   * LZ4); engines need not act on it. @default "off"
   */
  compress?: "auto" | "on" | "off";
  /**
   * How much of the restored tree the destination reads back and compares with the final page
   * manifest (the images are always checked in full): a sample per mapping, or every page.
   * @default "sample"
   */
  verify?: VerifyMode;
  /** Throttle with a cgroup when the policy asks. @default true */
  throttle?: boolean;
  /** Absolute downtime budget for the policy. */
  maxDowntimeMs?: number;
  /** Tolerated downtime above the best reachable. @default 0.1 */
  downtimeSlack?: number;
  /** Cancels the migration (the source resumes). */
  signal?: AbortSignal;
  /** Called with the phase whenever it changes (for the state-dir record). */
  onPhase?: (phase: MigrationPhase) => void;
}

/** Phases a migration record passes through. */
export type MigrationPhase =
  | "precopy"
  | "frozen"
  | "restoring"
  | "done"
  | "rolled-back"
  | "failed";

/** A migration engine. */
export interface MigrationEngine {
  /** Its name. */
  readonly name: EngineName;
  /**
   * Migrate the tree. Resolves once the destination confirmed the restore and the source copy
   * is ended; on any failure before that, resumes the source and throws
   * {@linkcode MigrationError}.
   */
  migrate(ctx: MigrationContext): Promise<MigrationOutcome>;
}

/** A migration that failed; the source was resumed (`sourceRunning`) or is gone. */
export class MigrationError extends Error {
  /**
   * @param message what failed
   * @param phase where it failed
   * @param sourceRunning whether the source tree runs again
   */
  constructor(message: string, readonly phase: MigrationPhase, readonly sourceRunning: boolean) {
    super(message);
    this.name = "MigrationError";
  }
}

/**
 * The outcome of a migration that ended with `final` after `rounds` of pre-copy.
 *
 * @param engine the engine's name
 * @param ctx the migration
 * @param startedMs `performance.now()` when the migration started
 * @param rounds the pre-copy rounds
 * @param final the final phase's figures
 */
export function outcomeOf(
  engine: EngineName,
  ctx: MigrationContext,
  startedMs: number,
  rounds: RoundReport[],
  final: {
    downtimeMs: number;
    destPid: number;
    phases: PhaseTimes;
    pages: number;
    verified?: Verification;
  },
): MigrationOutcome {
  return {
    engine,
    policy: ctx.policy.name,
    totalMs: performance.now() - startedMs,
    downtimeMs: final.downtimeMs,
    bytesSent: ctx.channel.bytesSent,
    precopyRounds: rounds.length,
    destPid: final.destPid,
    rounds,
    phases: final.phases,
    finalPages: final.pages,
    ...(final.verified ? { verified: final.verified } : {}),
  };
}
