/**
 * The agent's record of one incoming migration: its store, who owns it, which connection feeds it,
 * the last chunk stored, and the timer that aborts it when its source stays away too long.
 *
 * @module
 */
import type { LogSink } from "./log.ts";
import { PageStore, type PageStoreOptions } from "./page_store.ts";
import type { AgentTunnel } from "./tunnel_agent.ts";

/** Where a migration is in its life. */
export type MigrationStatus = "receiving" | "detached" | "restoring" | "restored" | "aborted";

/** An incoming migration on the agent. */
export class IncomingMigration {
  /** Its store (pages and image files). */
  readonly store: PageStore;
  /** Life-cycle state. */
  status: MigrationStatus = "receiving";
  /** Highest chunk sequence number stored (chunks are stored strictly in order). */
  lastSeq = 0;
  /** Highest chunk sequence number acknowledged. */
  lastAcked = 0;
  /** The session feeding it, when attached. */
  session: object | undefined;
  /** Its stream number on that session. */
  stream = 0;
  /** The successful restore's result, resent if the source reconnects before reading it. */
  result: { ok: boolean; pid?: number; error?: string; restoreMs?: number } | undefined;
  /** When stop-and-copy started and ended (ms since epoch), when reported. */
  stopCopy: { start?: number; end?: number } = {};
  /** The tunnel the restore handler opened (post-copy page traffic), while it is open. */
  tunnel: AgentTunnel | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * @param id migration id (validated by the protocol)
   * @param owner public key of the peer that prepared it
   * @param dir its directory
   * @param expectedBytes the size the source announced
   * @param storeOptions memory limit and quota of the store
   */
  constructor(
    readonly id: string,
    readonly owner: string,
    readonly dir: string,
    readonly expectedBytes: number,
    storeOptions: PageStoreOptions,
  ) {
    this.store = new PageStore(dir, storeOptions);
  }

  /** Attach to a session's stream, cancelling any pending detach timeout. */
  attach(session: object, stream: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.session = session;
    this.stream = stream;
    if (this.status === "detached") this.status = "receiving";
  }

  /** Detach from its session; call `onExpire` unless re-attached within `timeoutMs`. */
  detach(timeoutMs: number, onExpire: () => void): void {
    this.session = undefined;
    if (this.status !== "receiving") return;
    this.status = "detached";
    this.#timer = setTimeout(onExpire, timeoutMs);
  }

  /** Abort: delete the store and its directory. */
  abort(reason: string, log: LogSink): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.status === "aborted") return;
    this.status = "aborted";
    this.session = undefined;
    this.closeTunnel();
    this.store.remove();
    log({ level: "warn", msg: "migration aborted", migrationId: this.id, reason });
  }

  /** Run `fn` after `ms` unless the migration is attached, aborted or dropped first. */
  expireAfter(ms: number, fn: () => void): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.session) fn();
    }, ms);
  }

  /** Cancel pending timers (agent shutdown of a finished migration). */
  drop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.closeTunnel();
  }

  /** Close the tunnel, if one is open. */
  closeTunnel(): void {
    this.tunnel?.close();
    this.tunnel = undefined;
  }

  /** Release after a finished restore: delete the store. */
  release(log: LogSink): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.session = undefined;
    this.closeTunnel();
    this.store.remove();
    log({ level: "info", msg: "migration released", migrationId: this.id, status: this.status });
  }
}
