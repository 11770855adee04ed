/**
 * What the agent's sessions share and what they hand the engine: the restore request and result,
 * the engine's restore hook, and the agent-wide context (identity, migrations, limits).
 *
 * @module
 */
import type { NonceLog } from "./auth.ts";
import type { Identity } from "./identity.ts";
import type { LogSink } from "./log.ts";
import type { IncomingMigration } from "./migration.ts";
import type { PageStore } from "./page_store.ts";
import type { Capabilities } from "./protocol.ts";
import type { Tunnel } from "./tunnel.ts";

/** The engine's request to restore (engine-defined JSON, validated as a bounded object). */
export interface RestoreRequest {
  [k: string]: unknown;
}

/** The outcome of a restore on the agent. */
export interface RestoreResult {
  /** Whether the workload runs on this node now. */
  ok: boolean;
  /** Pid of the restored root process. */
  pid?: number;
  /** What went wrong. */
  error?: string;
  /** Time the restore took. */
  restoreMs?: number;
}

/** The engine's restore hook, run by the agent when the source asks. */
export type RestoreHandler = (ctx: {
  migrationId: string;
  dir: string;
  store: PageStore;
  request: RestoreRequest;
  /**
   * Open this migration's tunnel endpoint (tunnel.ts): a loopback port whose connections are
   * carried through the channel to the source's endpoint. It stays open after the handler returns
   * (post-copy pages flow on) until closed, or until the migration ends.
   */
  openTunnel: () => Promise<Tunnel>;
}) => Promise<RestoreResult>;

/** State shared by every session of one agent. */
export interface AgentContext {
  identity: Identity;
  stateDir: string;
  migrations: Map<string, IncomingMigration>;
  nonces: NonceLog;
  findPeer: (publicKey: string) => { name: string } | undefined;
  capabilities: () => Promise<Capabilities>;
  onRestore?: RestoreHandler;
  log: LogSink;
  resumeTimeoutMs: number;
  memoryLimitBytes: number;
  maxMigrations: number;
  idleTimeoutMs: number;
}
