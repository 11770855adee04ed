/**
 * The parts the migration driver ({@linkcode runMigration} in driver.ts) is assembled from: a
 * {@linkcode RoundSource} runs the pre-copy rounds the policy asks for (content-hash pre-copy, or
 * CRIU's pre-dump chain on soft-dirty hosts), and a {@linkcode FinalPhase} freezes the tree and
 * hands it to the destination (stop-and-copy, or post-copy). Neither part resumes, ends or rolls
 * back anything: the driver alone does.
 *
 * @module
 */
import type { PageSet } from "../tracker/types.ts";
import type { MigrationChannel } from "./channel.ts";
import type { VerifyMode } from "./contract.ts";
import type { PageLedger } from "./ledger.ts";
import type { PhaseTimes, PostCopyReport, ProgressEvent, RestoreRequestBase } from "./types.ts";

/** What the pre-copy rounds look like after the baseline or a round. */
export interface RoundState {
  /** The pages the next round would send (deferred pages included). */
  pending: PageSet;
  /** How many pages that is. */
  pendingPages: number;
  /** Resident pages of the tree. */
  residentPages: number;
}

/** What one pre-copy round did. */
export interface RoundDone extends RoundState {
  /** Pages sent. */
  sent: number;
  /** Pages the workload dirtied while the round ran. */
  dirtied: number;
  /** Wall-clock milliseconds of sending (for the link estimate). */
  sendMs: number;
  /** Milliseconds the round cost besides sending (scan, spacing). */
  overheadMs: number;
}

/** A source of pre-copy rounds: it reads the tree while it runs and sends what changed. */
export interface RoundSource {
  /** Name for logs ("hash", "predump"). */
  readonly name: string;
  /** The baseline: the tree's pages, all pending. */
  begin(): Promise<RoundState>;
  /**
   * Send the pending pages except `defer` (which stay pending), let the workload run until the
   * round ends, and report what is pending now.
   */
  round(defer: PageSet | undefined): Promise<RoundDone>;
  /** What the final phase needs to know from the rounds. */
  handoff(): RoundHandoff;
  /** Release trackers, readers and files (scratch directories stay for the final phase). */
  close(): void;
}

/** What the rounds leave to the final phase. */
export interface RoundHandoff {
  /** Host pid → pid inside the tree's pid namespace (CRIU's names), for every pid seen. */
  pidMap: Map<number, number>;
  /**
   * Pages the rounds still owe the destination that a final dump marks as already sent (the
   * pre-dump chain's deferred pages); sent before the restore request. @default none
   */
  sendOwed?: (channel: MigrationChannel) => Promise<number>;
  /** The last pre-dump directory, the final dump's parent (`--prev-images-dir`). */
  parentDir?: string;
}

/** The tree frozen and its state at the destination, ready for the restore request. */
export interface FrozenTree {
  /** The restore request the destination needs for this final phase. */
  request: RestoreRequestBase;
  /** Pages sent in the final phase. */
  pages: number;
  /** Pages left for the destination to fetch after the restore (post-copy). */
  lazyPages?: number;
  /** Phase times so far (freeze, dump, transfer). */
  phases: PhaseTimes;
  /** The directory holding the final dump (for the page manifest and CRIU's log). */
  dumpDir: string;
  /** Processes the final phase leaves running (a lazy dump's page server), by host pid. */
  helperPids?: number[];
  /**
   * After the destination resumed the tree: wait until nothing of the source is needed any more
   * (post-copy: every lazy page fetched, and checked against the manifest at the destination:
   * the report says so). Throws when that failed or was not verified.
   */
  drain(): Promise<PostCopyReport | void>;
  /** Stop whatever the final phase started (a lazy dump's page server); safe to call twice. */
  stop(): Promise<void>;
}

/** A final phase: freeze the tree and bring the destination to the point of restoring it. */
export interface FinalPhase {
  /** "stop-and-copy" or "post-copy". */
  readonly name: "stop-and-copy" | "post-copy";
  /**
   * Work that needs the rounds to be over but not the tree to be frozen (indexing what the
   * destination holds); the driver runs it just before the freeze, outside the downtime.
   * @default none
   */
  prepare?(ctx: FinalContext): Promise<void>;
  /**
   * Freeze and dump the tree (left stopped), send what the destination lacks. Throws on any
   * failure; the driver rolls back.
   */
  freeze(ctx: FinalContext): Promise<FrozenTree>;
}

/** What a final phase gets from the driver. */
export interface FinalContext {
  /** Host pid of the tree's root. */
  pid: number;
  /** The channel to the destination. */
  channel: MigrationChannel;
  /** Scratch directory for this phase's dump (created by the driver, removed by it). */
  dir: string;
  /** What the rounds left. */
  handoff: RoundHandoff;
  /** Established TCP connections. */
  tcp?: "close" | "established";
  /** Progress callback. */
  onProgress?: (event: ProgressEvent) => void;
  /** Where this node's page server for post-copy listens. */
  pageServer: PageServerEndpoint;
  /** Cancels the dump. */
  signal?: AbortSignal;
  /** What the destination holds: every page sent so far with the hash it had when sent. */
  ledger: PageLedger;
  /** How much of the restored tree the destination reads back. @default "sample" */
  verify?: VerifyMode;
}

/**
 * Where the source's CRIU page server listens for a post-copy restore, and what the destination's
 * `criu lazy-pages` should connect to: the same TCP address (in-process channels), or, over a peer
 * agent, the channel's tunnel (final_post_copy.ts `tunnelPageServer`: the page server listens on
 * a loopback port, the destination's daemon connects to its agent's end of the tunnel).
 */
export interface PageServerEndpoint {
  /** The address and port the dump's page server binds. */
  listen(): Promise<{ address: string; port: number }>;
  /** Where the destination's lazy-pages daemon connects (the restore request's `lazy`). */
  remote(local: { address: string; port: number }): LazyTarget;
  /** Bytes the page traffic moved so far, where it can be watched (the drain waits while it moves). */
  carried?(): number;
  /** Release what `listen` set up (after the pages drained, or on rollback). */
  close?(): Promise<void>;
}

/** A restore request's `lazy`: a page server address, or "through the channel's tunnel". */
export type LazyTarget = { address: string; port: number } | { tunnel: true };
