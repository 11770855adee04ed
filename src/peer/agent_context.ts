/**
 * What every session of one agent shares, and the engine's hooks the agent calls: restore a
 * migration (left stopped) and resolve one (resume, discard, query) for its owner.
 *
 * @module
 */
import type { BulkServer } from "./bulk_server.ts";
import type { LazyCheckReport, RestoreRequest, RestoreResult } from "../engine/contract.ts";
import type { NonceLog } from "./auth.ts";
import type { Identity } from "./identity.ts";
import type { LogSink } from "./log.ts";
import type { IncomingMigration } from "./migration.ts";
import type { PageStore } from "./page_store.ts";
import type { Capabilities, RESOLVE_ACTIONS, RESOLVE_STATES } from "./protocol.ts";
import type { Tunnel } from "./tunnel.ts";
import type { ContainerCheckHandler } from "./container_check.ts";

export type { RestoreRequest, RestoreResult } from "../engine/contract.ts";

/** The engine's restore hook, run by the agent when the source asks. */
export type RestoreHandler = (ctx: {
  migrationId: string;
  dir: string;
  store: PageStore;
  request: RestoreRequest;
  /** Public key of the source node that owns the migration. */
  owner: string;
  /**
   * Open this migration's tunnel endpoint (tunnel.ts): a loopback port whose connections are
   * carried through the channel to the source's endpoint. It stays open after the handler returns
   * (post-copy pages flow on) until closed, or until the migration ends.
   */
  openTunnel: () => Promise<Tunnel>;
}) => Promise<RestoreResult>;

/** A source's resolve request about one of its migrations. */
export type ResolveAction = typeof RESOLVE_ACTIONS[number];

/** The answer to a resolve request. */
export interface ResolveAnswer {
  /** What this node holds of the migration. */
  state: typeof RESOLVE_STATES[number];
  /** The restored root's pid, when there is a copy. */
  pid?: number;
  /** Why the action could not be done. */
  error?: string;
  /** To a query after post-copy: what the check of the arriving pages saw. */
  lazy?: LazyCheckReport;
}

/** The engine's hook for restored migrations: resume, discard or report one (owner-checked). */
export type ResolveHandler = (
  migrationId: string,
  owner: string,
  action: ResolveAction,
) => ResolveAnswer | Promise<ResolveAnswer>;

/** State shared by every session of one agent. */
export interface AgentContext {
  identity: Identity;
  stateDir: string;
  migrations: Map<string, IncomingMigration>;
  nonces: NonceLog;
  findPeer: (publicKey: string) => { name: string } | undefined;
  capabilities: () => Promise<Capabilities>;
  onRestore?: RestoreHandler;
  onResolve?: ResolveHandler;
  /** Answers container pre-checks; without it the agent takes no containers. */
  onContainerCheck?: ContainerCheckHandler;
  log: LogSink;
  resumeTimeoutMs: number;
  memoryLimitBytes: number;
  maxMigrations: number;
  idleTimeoutMs: number;
  /** The sealed bulk listener, when this agent has one (bulk_server.ts). */
  bulk?: BulkServer;
}

/** Migrations still being received or restored (finished ones do not count against limits). */
export function receivingCount(migrations: Map<string, IncomingMigration>): number {
  let n = 0;
  for (const m of migrations.values()) {
    if (m.status === "receiving" || m.status === "detached" || m.status === "restoring") n++;
  }
  return n;
}

/**
 * The answer to a query or resume of migration `id` from `owner`: a migration still being
 * received or restored answers for itself; a restored one (or one this agent only knows from
 * the engine's records) is the engine's to answer.
 */
export async function answerResolve(
  ctx: AgentContext,
  owner: string,
  id: string,
  action: "query" | "resume",
): Promise<ResolveAnswer> {
  const mig = ctx.migrations.get(id);
  const mine = mig && mig.owner === owner ? mig : undefined;
  if (mine && (mine.status === "receiving" || mine.status === "detached")) {
    return { state: "receiving", error: action === "resume" ? "nothing restored yet" : undefined };
  }
  if (mine?.status === "restoring") {
    return { state: "restoring", error: action === "resume" ? "still restoring" : undefined };
  }
  return await ctx.onResolve?.(id, owner, action) ?? { state: "unknown" };
}
