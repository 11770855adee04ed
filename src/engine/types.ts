/**
 * The driver's vocabulary: engine names, what a migration needs ({@linkcode MigrationContext}),
 * what it reports ({@linkcode MigrationOutcome}), and how it fails ({@linkcode MigrationError}).
 *
 * @module
 */
import type { PredictionProvider } from "../predict/provider.ts";
import type { StopPolicy } from "../policy/types.ts";
import type { MigrationChannel } from "./channel.ts";
import type { ENGINE_NAMES, EngineRestoreRequest, Verification, VerifyMode } from "./contract.ts";
import type { FinalPhase, FrozenTree, PageServerEndpoint } from "./parts.ts";
import type { ContainerJournal } from "./journal.ts";
import type { LocalLazyReport } from "./local_fill.ts";

/** Engine names (`auto` picks one by capability). */
export type EngineName = typeof ENGINE_NAMES[number];

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
  /** The final dirty scan of the frozen tree against what the destination holds (scan-and-copy). */
  scan_ms?: number;
  /**
   * The part of the final scan that ran alongside the dump (scan-and-copy; inside dump_ms, so
   * not part of the sum; scan_ms is the part after it).
   */
  scan_overlap_ms?: number;
  /**
   * Steps of the scan-and-copy transfer (inside transfer_ms, not part of the sum): the changed
   * pages read from the frozen tree and sent, the eager pages CRIU wrote, the pagemaps
   * rewritten, the manifest built and encoded, the image files (with shared memory) sent, and
   * the channel's flush.
   */
  transfer_pages_ms?: number;
  /** See {@linkcode PhaseTimes.transfer_pages_ms}. */
  transfer_eager_ms?: number;
  /** See {@linkcode PhaseTimes.transfer_pages_ms}. */
  transfer_pagemap_ms?: number;
  /** See {@linkcode PhaseTimes.transfer_pages_ms}. */
  transfer_manifest_ms?: number;
  /** See {@linkcode PhaseTimes.transfer_pages_ms}. */
  transfer_files_ms?: number;
  /** See {@linkcode PhaseTimes.transfer_pages_ms}. */
  transfer_flush_ms?: number;
  /** Waiting, after the transfer, for the lazy dump to let the tree go (scan-and-copy). */
  release_ms?: number;
  /** Hashing the frozen tree's lazy pages for the manifest (post-copy). */
  manifest_ms?: number;
  /** The commit record and the destination's resume, as the source saw it. */
  resume_ms?: number;
  /**
   * The rest of the downtime (journal records, images read, scheduling): downtime minus every
   * other phase, so that the phases add up to the downtime (freeze_ms lies inside dump_ms).
   */
  other_ms?: number;
}

/** A finished migration. */
export interface MigrationOutcome {
  /** Engine used. */
  engine: EngineName;
  /** Policy used. */
  policy: string;
  /** Milliseconds from start to the destination running the tree. */
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
  /** Post-copy: what was fetched after the resume and how it was checked. */
  postCopy?: PostCopyReport;
  /** A verified lazy local restore: the pages placed after the resume, each checked. */
  localLazy?: LocalLazyReport;
}

/** What a post-copy final phase fetched after the resume, and how it was checked. */
export interface PostCopyReport {
  /** Pages left at the source for the destination to fetch after the restore. */
  lazyPages: number;
  /** Of them, the pages that arrived and matched the source's manifest (all, when verified). */
  checkedPages: number;
  /** Page requests the destination's lazy-pages daemon sent (faults and background fetches). */
  requests: number;
  /** Faults of the running tree served remotely (from the daemon's log), when known. */
  remoteFaults?: number;
  /** The risk post-copy ran, in words. */
  linkRisk: string;
  /** Milliseconds from the resume until the last lazy page was served. */
  drainMs?: number;
}

/** Progress events for a live display. */
export type ProgressEvent =
  | { kind: "round"; round: RoundReport; bytesSent: number; linkBps: number }
  | {
    kind: "phase";
    phase: "freeze" | "dump" | "transfer" | "restore" | "commit" | "done" | "rollback";
  };

/** Everything the driver needs for one migration. */
export interface MigrationContext {
  /** Migration id (also the destination's directory name). */
  id: string;
  /** Host pid of the tree's root. */
  pid: number;
  /** The channel to the destination, or how to open it (after the checks). */
  channel: MigrationChannel | (() => Promise<MigrationChannel>);
  /**
   * The stop policy; it alone ends the pre-copy rounds (wrap it with `withRoundCap` for a
   * round limit).
   */
  policy: StopPolicy;
  /**
   * The predictor the policy sees, fed every round (with the round's mappings and features).
   * @default a moving-window page-frequency model
   */
  provider?: PredictionProvider;
  /** The state directory holding the migration journal. @default none (no journal) */
  stateDir?: string;
  /** The destination peer's name, for the journal. @default "local" */
  peer?: string;
  /** Directory for scratch dumps (tmpfs preferred); u2cm creates and removes its own inside. */
  workDir: string;
  /** Progress callback. @default none */
  onProgress?: (event: ProgressEvent) => void;
  /** Milliseconds between tracker scans when a round finishes quicker. @default 50 */
  minRoundMs?: number;
  /** Where the post-copy page server listens. @default TCP on 127.0.0.1, a free port */
  pageServer?: PageServerEndpoint;
  /**
   * Established TCP connections: `close` leaves them out (clients reconnect), `established`
   * migrates them (TCP repair; network locked with nftables). @default none (dump fails on them)
   */
  tcp?: "close" | "established";
  /**
   * Page-batch compression the channel was opened with (`u2cm migrate --compress`): the peer
   * channel applies it; the driver need not act on it. @default "off"
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
  /**
   * How long a committed migration keeps asking the destination to resume the tree, in ms.
   * @default 30000
   */
  resumeTimeoutMs?: number;
  /** Cancels the migration (the source resumes) — honoured until the commit. */
  signal?: AbortSignal;
  /**
   * Called with the frozen tree after its state reached the destination and before the restore
   * request: the place to send the final page manifest the destination checks. @default none
   */
  beforeRestore?: (frozen: FrozenTree, channel: MigrationChannel) => Promise<void>;
  /**
   * The final phase to use whatever the decision names: a container target's (src/container),
   * whose runtime checkpoints the container and restores it at the peer. @default by decision
   */
  finalPhase?: FinalPhase;
  /** The container behind `pid`, journalled so recovery can restore or remove it. */
  container?: ContainerJournal;
}

/**
 * Restore request fields every final phase sends: the destination's strict schema's type, plus
 * what a final phase with its own restore handler adds (a container target's `container`).
 */
export type RestoreRequestBase = EngineRestoreRequest & Record<string, unknown>;

/**
 * Phases a migration record passes through. The source owns the workload until `committed`
 * is on disk; from then on the destination does.
 */
export type MigrationPhase =
  | "precopy"
  | "frozen"
  | "restoring"
  | "committed"
  | "done"
  | "rolled-back"
  | "failed";

/**
 * A migration that failed. Before the commit the source was resumed (`sourceRunning`); a failure
 * after it (phase `committed`) leaves the workload to the destination, and `u2cm recover`
 * finishes what is left.
 */
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
