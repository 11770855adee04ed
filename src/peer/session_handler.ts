/**
 * The agent's handling of one authenticated connection's messages: prepares, stores chunks and
 * acknowledges them, answers hash listings, runs restores (while tunnel traffic goes on), routes
 * tunnel traffic, aborts. Anything malformed or out of order throws {@linkcode ProtocolError}; the
 * session (session.ts) then closes the connection.
 *
 * @module
 */
import type { AcceptedPeer } from "./auth.ts";
import {
  type AgentContext,
  answerResolve,
  receivingCount,
  type ResolveAnswer,
  type RestoreResult,
} from "./agent_context.ts";
import { PeerError, ProtocolError } from "./errors.ts";
import { type FileFrame, type Frame, FrameKind, type PagesFrame } from "./frames.ts";
import type { Link } from "./link.ts";
import { IncomingMigration } from "./migration.ts";
import { type Control, type ControlOf, encodeControl } from "./protocol.ts";
import type { Tunnel } from "./tunnel.ts";
import { acceptTunnel } from "./tunnel_agent.ts";
import {
  answerBulkOpen,
  answerContainerCheck,
  answerHashes,
  sendRestoreResult,
} from "./session_answers.ts";

/** Chunks stored between acknowledgements at most (an eighth of the default 64 MiB window). */
const ACK_EVERY = 8;

/** @internal see the module doc. */
export class SessionHandler {
  /** Streams whose migration was refused or aborted here: late frames are dropped. */
  #dropped = new Set<number>();
  /** The restore in progress on this connection, if any. */
  busy: Promise<void> | undefined;

  constructor(
    readonly link: Link,
    readonly ctx: AgentContext,
    readonly peer: AcceptedPeer,
    readonly streams: Map<number, IncomingMigration>,
  ) {}

  async control(msg: Control): Promise<void> {
    switch (msg.type) {
      case "hello":
        this.ctx.log({
          level: "debug",
          msg: "peer capabilities",
          peer: this.peer.name,
          capabilities: msg.capabilities,
        });
        return;
      case "prepare":
        return await this.#prepare(msg);
      case "stopCopy": {
        const mig = this.#owned(msg.migrationId);
        mig.stopCopy[msg.phase] = Date.now();
        this.ctx.log({ level: "info", msg: `stop-and-copy ${msg.phase}`, migrationId: mig.id });
        return;
      }
      case "progress":
        this.ctx.log({
          level: "debug",
          msg: "progress",
          migrationId: msg.migrationId,
          bytesSent: msg.bytesSent,
          round: msg.round,
          phase: msg.phase,
        });
        return;
      case "hashes":
        return await answerHashes(this.link, this.#owned(msg.migrationId), msg);
      case "restore": {
        const mig = this.#owned(msg.migrationId);
        this.busy = this.#restore(mig, msg).catch((e) => {
          this.ctx.log({ level: "warn", msg: "restore request failed", reason: String(e) });
        }).finally(() => this.busy = undefined);
        return;
      }
      case "tunnelAck":
      case "tunnelClose": {
        const tunnel = this.#owned(msg.migrationId).tunnel;
        if (msg.type === "tunnelAck") tunnel?.onAck(msg.conn, msg.bytes);
        else tunnel?.onClose(msg.conn, msg.reason);
        return;
      }
      case "abort":
        await this.#discard(msg.migrationId, `source aborted: ${msg.reason}`);
        return;
      case "resolve":
        return await this.#resolve(msg);
      case "containerCheck":
        return await answerContainerCheck(this, msg);
      case "bulkOpen":
        return await answerBulkOpen(this, msg);
      default:
        throw new ProtocolError(`'${msg.type}' is not a message an agent accepts`);
    }
  }

  /** Drop a migration's store and, through the engine, any restored copy of it. */
  async #discard(id: string, reason: string): Promise<ResolveAnswer> {
    const mig = this.ctx.migrations.get(id);
    if (mig && mig.owner === this.peer.publicKey) {
      if (mig.status !== "aborted") mig.abort(reason, this.ctx.log);
      this.ctx.migrations.delete(mig.id);
      if (this.streams.get(mig.stream) === mig) {
        this.streams.delete(mig.stream);
        this.#dropped.add(mig.stream);
      }
    }
    const answer = await this.ctx.onResolve?.(id, this.peer.publicKey, "discard");
    return answer ?? { state: mig ? "discarded" : "unknown" };
  }

  async #resolve(msg: ControlOf<"resolve">): Promise<void> {
    const answer = msg.action === "discard"
      ? await this.#discard(msg.migrationId, "source rolled back")
      : await answerResolve(this.ctx, this.peer.publicKey, msg.migrationId, msg.action);
    this.ctx.log({
      level: answer.error ? "warn" : "info",
      msg: `resolve ${msg.action}`,
      migrationId: msg.migrationId,
      ...answer,
    });
    await this.link.send(encodeControl({
      type: "resolved",
      migrationId: msg.migrationId,
      reqId: msg.reqId,
      state: answer.state,
      ...(answer.pid !== undefined ? { pid: answer.pid } : {}),
      ...(answer.error !== undefined ? { error: answer.error.slice(0, 1000) } : {}),
      ...(answer.lazy !== undefined ? { lazy: answer.lazy } : {}),
    }));
  }

  async frame(frame: Frame): Promise<void> {
    if (frame.kind === FrameKind.Hashes) {
      throw new ProtocolError("hash listings flow agent → client only");
    }
    const mig = this.streams.get(frame.stream);
    if (!mig && this.#dropped.has(frame.stream)) return; // in flight when its migration ended
    if (!mig || mig.session !== this) {
      throw new ProtocolError(`frame for stream ${frame.stream}, which has no prepared migration`);
    }
    if (frame.kind === FrameKind.Tunnel) return mig.tunnel?.onFrame(frame);
    if (mig.status !== "receiving") throw new ProtocolError(`migration ${mig.id} is ${mig.status}`);
    if (frame.seq <= mig.lastSeq) return await this.#ack(mig); // a resent chunk already stored
    if (frame.seq !== mig.lastSeq + 1) {
      throw new ProtocolError(`chunk ${frame.seq} of ${mig.id} arrived after ${mig.lastSeq}`);
    }
    try {
      if (frame.kind === FrameKind.Pages) this.#storePages(mig, frame);
      else this.#storeFile(mig, frame);
    } catch (e) {
      if (e instanceof PeerError && e.code === "rejected") {
        await this.#refuse(mig, e.message);
        return;
      }
      throw e;
    }
    mig.lastSeq = frame.seq;
    // Acknowledge when the burst is drained, and at least every ACK_EVERY chunks.
    if (this.link.queued === 0 || mig.lastSeq - mig.lastAcked >= ACK_EVERY) await this.#ack(mig);
  }

  /** Acknowledge every migration of this connection with chunks stored but not acknowledged. */
  async ackPending(): Promise<void> {
    for (const mig of this.streams.values()) {
      if (mig.session === this && mig.status === "receiving" && mig.lastSeq > mig.lastAcked) {
        await this.#ack(mig);
      }
    }
  }

  #storePages(mig: IncomingMigration, f: PagesFrame): void {
    mig.store.putPages(f.pid, f.addresses, f.hashes, f.data, true);
  }

  #storeFile(mig: IncomingMigration, f: FileFrame): void {
    mig.store.writeFileChunk(f.name, f.offset, f.total, f.data);
  }

  async #ack(mig: IncomingMigration): Promise<void> {
    mig.lastAcked = mig.lastSeq;
    await this.link.send(encodeControl({
      type: "ack",
      migrationId: mig.id,
      stream: mig.stream,
      seq: mig.lastSeq,
      bytesStored: mig.store.bytesStored,
      pages: mig.store.pageCount,
    }));
  }

  async #refuse(mig: IncomingMigration, reason: string): Promise<void> {
    mig.abort(reason, this.ctx.log);
    this.ctx.migrations.delete(mig.id);
    this.streams.delete(mig.stream);
    this.#dropped.add(mig.stream);
    await this.link.send(encodeControl({ type: "abort", migrationId: mig.id, reason }));
  }

  async #prepare(msg: ControlOf<"prepare">): Promise<void> {
    const { ctx } = this;
    const existing = ctx.migrations.get(msg.migrationId);
    const refuse = (reason: string) =>
      this.link.send(encodeControl({ type: "abort", migrationId: msg.migrationId, reason }));
    if (this.streams.has(msg.stream) && this.streams.get(msg.stream)?.id !== msg.migrationId) {
      throw new ProtocolError(`stream ${msg.stream} is already in use on this connection`);
    }
    if (msg.resume) {
      if (!existing || existing.owner !== this.peer.publicKey || existing.status === "aborted") {
        ctx.log({
          level: "warn",
          msg: "resume refused",
          peer: this.peer.name,
          migrationId: msg.migrationId,
        });
        return await refuse(
          "no such migration to resume on this agent (it was aborted or the agent restarted)",
        );
      }
      existing.attach(this, msg.stream);
      this.streams.set(msg.stream, existing);
      if (existing.result) await sendRestoreResult(this.link, existing, existing.result); // lost in the drop
      ctx.log({
        level: "info",
        msg: "migration resumed",
        migrationId: existing.id,
        lastSeq: existing.lastSeq,
      });
      return await this.#ack(existing);
    }
    if (existing) return await refuse(`migration id '${msg.migrationId}' is already in use`);
    if (receivingCount(ctx.migrations) >= ctx.maxMigrations) {
      return await refuse(`this agent already receives ${ctx.maxMigrations} migrations`);
    }
    const caps = await ctx.capabilities();
    const room = caps.freeDiskBytes + ctx.memoryLimitBytes;
    if (msg.expectedBytes > room) {
      return await refuse(`expected ${msg.expectedBytes} bytes but only ${room} fit on this node`);
    }
    const dir = `${ctx.stateDir}/migrations/${msg.migrationId}`;
    const mig = new IncomingMigration(
      msg.migrationId,
      this.peer.publicKey,
      dir,
      msg.expectedBytes,
      {
        memoryLimitBytes: ctx.memoryLimitBytes,
        quotaBytes: Math.max(2 * msg.expectedBytes, 256 * 2 ** 20),
        pagesImage: msg.pagesImage === true,
      },
    );
    mig.attach(this, msg.stream);
    ctx.migrations.set(mig.id, mig);
    this.streams.set(msg.stream, mig);
    ctx.log({
      level: "info",
      msg: "migration prepared",
      migrationId: mig.id,
      peer: this.peer.name,
      expectedBytes: msg.expectedBytes,
    });
    await this.#ack(mig);
  }

  async #restore(mig: IncomingMigration, msg: ControlOf<"restore">): Promise<void> {
    // The source may have reconnected meanwhile: answer on the link that holds the migration now.
    const send = (r: RestoreResult) =>
      sendRestoreResult((mig.session instanceof SessionHandler ? mig.session : this).link, mig, r);
    if (!this.ctx.onRestore) {
      return await send({ ok: false, error: "this agent has no restore handler installed" });
    }
    if (mig.status !== "receiving") {
      return await send({ ok: false, error: `migration is ${mig.status}` });
    }
    mig.status = "restoring";
    this.ctx.log({ level: "info", msg: "restore requested", migrationId: mig.id });
    const started = performance.now();
    let result: RestoreResult;
    try {
      result = await this.ctx.onRestore({
        migrationId: mig.id,
        dir: mig.dir,
        store: mig.store,
        request: msg.request,
        owner: this.peer.publicKey,
        openTunnel: () => this.#openTunnel(mig),
      });
    } catch (e) {
      result = { ok: false, error: `restore handler failed: ${(e as Error).message}` };
    }
    result.restoreMs ??= performance.now() - started;
    mig.status = result.ok ? "restored" : "receiving";
    if (result.ok) mig.result = result;
    this.ctx.log({
      level: result.ok ? "info" : "warn",
      msg: "restore finished",
      migrationId: mig.id,
      ...result,
    });
    await send(result);
  }

  /** The migration's tunnel endpoint; its traffic goes over whichever link holds it now. */
  async #openTunnel(mig: IncomingMigration): Promise<Tunnel> {
    if (mig.tunnel) return mig.tunnel;
    const tunnel = await acceptTunnel({
      migrationId: mig.id,
      stream: () => mig.stream,
      send: (m) => {
        const session = mig.session;
        if (!(session instanceof SessionHandler)) {
          return Promise.reject(new PeerError("closed", "the source is not connected"));
        }
        return session.link.send(m);
      },
    });
    mig.tunnel = tunnel;
    this.ctx.log({
      level: "info",
      msg: "tunnel open",
      migrationId: mig.id,
      port: tunnel.localPort,
    });
    return tunnel;
  }

  #owned(id: string): IncomingMigration {
    const mig = this.ctx.migrations.get(id);
    if (!mig || mig.owner !== this.peer.publicKey || mig.session !== this) {
      throw new ProtocolError(`migration '${id}' is not prepared on this connection`);
    }
    return mig;
  }
}
