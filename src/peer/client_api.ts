/**
 * The source side's contract with one peer: the options of {@linkcode connectPeer} (client.ts) and
 * of {@linkcode PeerClient.openMigration}, and the {@linkcode PeerClient} it returns.
 *
 * @example
 * ```ts
 * const opts: ConnectPeerOptions = { stateDir: "/var/lib/u2cm", peer: "edge-b", transport: "ws" };
 * ```
 *
 * @module
 */
import type { LogSink } from "./log.ts";
import type { MigrationChannel } from "./channel.ts";
import type { CompressMode } from "./compression.ts";
import type { ResolveAction, ResolveAnswer } from "./agent_context.ts";
import type { ContainerCheck, ContainerCheckAnswer } from "./container_check.ts";
import type { Capabilities } from "./protocol.ts";

/** Options of `connectPeer` (client.ts). */
export interface ConnectPeerOptions {
  /** This node's state directory (identity and peers.json). */
  stateDir: string;
  /** The peer's name in peers.json. */
  peer: string;
  /** Transport. @default "ws" */
  transport?: "ws" | "quic";
  /** Connect-and-authenticate timeout. @default 10000 */
  timeoutMs?: number;
  /** How long to keep re-connecting after a drop before failing migrations. @default 30000 */
  resumeTimeoutMs?: number;
  /**
   * Unacknowledged bytes in flight per migration (and the resend buffer). 32 MiB held a 1 Gbit/s
   * tbf link (100 ms of queue) to 0.71 of its rate, 64–96 MiB to 0.79–0.89. @default 64 MiB
   */
  windowBytes?: number;
  /** Close the link after this long without hearing from the agent. @default 8000 */
  deadAfterMs?: number;
  /** Structured log sink. @default silent */
  log?: LogSink;
  /**
   * With the WebSocket transport, send page batches and file chunks on the agent's sealed bulk
   * stream when it offers one (bulk_client.ts); false keeps every frame on the WebSocket.
   * @default true
   */
  bulk?: boolean;
}

/** Options of {@linkcode PeerClient.openMigration}. */
export interface OpenMigrationOptions {
  /** Page-batch compression. @default "off" */
  compress?: CompressMode;
  /**
   * Ask the agent to keep the pages as CRIU pages images as they arrive, for a freeze that
   * restores from them in place (scan-and-copy). Writing them costs the agent a second copy of
   * every page (about as much CPU as receiving it), so only such a freeze asks. @default false
   */
  pagesImage?: boolean;
}

/** A connection to one peer's agent. */
export interface PeerClient {
  /** The agent's capabilities, from the handshake. */
  readonly remote: Capabilities;
  /** Whether the current link sends frames on a sealed bulk stream (see bulk_client.ts). */
  readonly sealedBulk: boolean;
  /**
   * Announce a migration of about `expectedBytes` and get its channel. `options.compress` asks
   * for LZ4 page batches ("auto": when the link is the bottleneck; see compression.ts); it
   * applies only when the agent announced the "lz4" codec, else the channel sends raw.
   */
  openMigration(
    id: string,
    expectedBytes: number,
    options?: OpenMigrationOptions,
  ): Promise<MigrationChannel>;
  /**
   * Ask the agent about migration `id` (the source's commit and recovery): its state, resume its
   * restored copy, or discard everything of it. Opens a fresh link when the current one is down.
   */
  resolve(id: string, action: ResolveAction): Promise<ResolveAnswer>;
  /**
   * Ask the agent whether it can take a container before anything is frozen (image present,
   * name free, volumes and bind mounts there); for migration `id`.
   */
  checkContainer(id: string, check: ContainerCheck): Promise<ContainerCheckAnswer>;
  /** Close the connection (open migrations are left for the agent's resume timeout). */
  close(): Promise<void>;
}
