/**
 * The source side of the channel: {@linkcode connectPeer} opens an authenticated link to a pinned
 * peer's agent; {@linkcode PeerClient.openMigration} gives the engine a {@linkcode MigrationChannel}
 * for pages, image files and the restore request. A dropped link is re-established and every
 * migration resumes from its last acknowledged chunk, within `resumeTimeoutMs`; past that the
 * channel fails with {@linkcode PeerError} "closed" and the agent drops its store.
 *
 * @example
 * ```ts
 * const client = await connectPeer({ stateDir: "/var/lib/u2cm", peer: "edge-b" });
 * const ch = await client.openMigration("m1", 64 << 20);
 * await ch.sendPages({ pid: 42, addresses: [0x7f0000000000], data: new Uint8Array(4096) });
 * await ch.flush();
 * await client.close();
 * ```
 *
 * @module
 */
import { PeerError, ProtocolError } from "./errors.ts";
import { decodeFrame, FrameKind, type HashesFrame } from "./frames.ts";
import { type Identity, loadIdentity } from "./identity.ts";
import type { Link, WireLayout } from "./link.ts";
import { type LogSink, silentLog } from "./log.ts";
import { type ClientLinkSide, type MigrationChannel, MigrationChannelImpl } from "./channel.ts";
import { findPeer, type Peer } from "./peers.ts";
import { quicWireLayout } from "./quic.ts";
import { ClientAnswers } from "./client_answers.ts";
import { resumeChannels } from "./client_resume.ts";
import { openPeerLink } from "./client_link.ts";
import { TunnelRoutes } from "./tunnel_handler.ts";
import type { ResolveAction, ResolveAnswer } from "./agent_context.ts";
import type { ContainerCheck, ContainerCheckAnswer } from "./container_check.ts";
import {
  type Capabilities,
  type Control,
  decodeControl,
  encodeControl,
  MIGRATION_ID_RE,
} from "./protocol.ts";
import { wsWireLayout } from "./ws_client.ts";
import { SealedLink } from "./bulk_client.ts";
import { sendOn, sendWireOn } from "./client_send.ts";
import type { ConnectPeerOptions, OpenMigrationOptions, PeerClient } from "./client_api.ts";
import { sealedWireLayout } from "./sealed_records.ts";

export type { MigrationChannel, PageBatch } from "./channel.ts";
export type { ConnectPeerOptions, OpenMigrationOptions, PeerClient } from "./client_api.ts";

/**
 * Connect to pinned peer `opts.peer` and authenticate both ways. Throws {@linkcode PeerError}:
 * "identity", "unknown-peer", "unreachable", "pin-mismatch", "auth", "timeout".
 */
export async function connectPeer(opts: ConnectPeerOptions): Promise<PeerClient> {
  const identity = await loadIdentity(opts.stateDir);
  const peer = findPeer(opts.stateDir, opts.peer);
  const client = new PeerClientImpl(identity, peer, opts);
  await client.connect();
  return client;
}

class PeerClientImpl implements PeerClient, ClientLinkSide {
  remote!: Capabilities;
  readonly log: LogSink;
  readonly transport: "ws" | "quic";
  #link: Link | undefined;
  /** Whether chunks are laid out for a sealed bulk stream (decided by the first link). */
  #sealed = false;
  #channels = new Map<number, MigrationChannelImpl>();
  #nextStream = 1;
  #closing = false;
  #reconnecting: Promise<void> | undefined;
  #prepareWaiters = new Map<string, (m: Control) => void>();
  #tunnels = new TunnelRoutes((m) => this.send(m));
  #answers = new ClientAnswers();

  constructor(readonly identity: Identity, readonly peer: Peer, readonly opts: ConnectPeerOptions) {
    this.log = opts.log ?? silentLog;
    this.transport = opts.transport ?? "ws";
  }

  /** How chunks are laid out: for QUIC records, sealed bulk records, or WebSocket frames. */
  get layout(): WireLayout {
    return this.transport === "quic"
      ? quicWireLayout
      : this.#sealed
      ? sealedWireLayout
      : wsWireLayout;
  }

  /** Whether binary frames travel on a sealed bulk stream (see bulk_client.ts). */
  get sealedBulk(): boolean {
    return this.#link instanceof SealedLink;
  }

  /** First connection: open, authenticate, and make it the current link. */
  async connect(): Promise<void> {
    this.#link = await this.#open();
    this.#sealed = this.#link instanceof SealedLink;
  }

  /** Open and authenticate a link and start reading it (it is not yet the current link). */
  async #open(): Promise<Link> {
    const { link, capabilities } = await openPeerLink({
      identity: this.identity,
      peer: this.peer,
      stateDir: this.opts.stateDir,
      transport: this.transport,
      timeoutMs: this.opts.timeoutMs,
      deadAfterMs: this.opts.deadAfterMs,
      log: this.log,
      bulk: this.opts.bulk,
    });
    this.remote = capabilities;
    this.log({
      level: "info",
      msg: "connected to peer",
      peer: this.peer.name,
      transport: link.transport,
    });
    this.#readLoop(link);
    return link;
  }

  async openMigration(
    id: string,
    expectedBytes: number,
    options: OpenMigrationOptions = {},
  ): Promise<MigrationChannel> {
    if (!MIGRATION_ID_RE.test(id)) {
      throw new PeerError(
        "rejected",
        `migration id '${id}' is invalid: letters, digits, '_', '-' (≤ 64)`,
      );
    }
    if (!Number.isSafeInteger(expectedBytes) || expectedBytes < 0) {
      throw new PeerError("rejected", `expected size ${expectedBytes} is not a byte count`);
    }
    const stream = this.#nextStream++;
    const channel: MigrationChannelImpl = new MigrationChannelImpl(
      id,
      stream,
      expectedBytes,
      this,
      {
        windowBytes: this.opts.windowBytes ?? 64 * 2 ** 20,
        requestHashes: (pid) => this.#requestHashes(channel, pid),
        forget: () => this.#channels.delete(stream),
        resolve: (action) => this.resolve(id, action),
        compress: this.remote.codecs?.includes("lz4") ? options.compress ?? "off" : "off",
        tunnels: this.#tunnels,
      },
    );
    const link = this.#link;
    if (!link) throw new PeerError("closed", "the link to the peer is down (resuming)");
    const reply = await this.#prepare(link, id, stream, expectedBytes, false, options.pagesImage);
    if (reply.type === "abort") {
      throw new PeerError("refused", `peer refused migration '${id}': ${reply.reason}`);
    }
    this.#channels.set(stream, channel);
    return channel;
  }

  async close(): Promise<void> {
    this.#closing = true;
    this.#link?.close(1000, "client closing");
    for (const ch of this.#channels.values()) {
      ch.fail(new PeerError("closed", "the peer client was closed"));
    }
    this.#channels.clear();
    await this.#link?.closed;
  }

  async resolve(id: string, action: ResolveAction): Promise<ResolveAnswer> {
    if (!MIGRATION_ID_RE.test(id)) {
      throw new PeerError("rejected", `migration id '${id}' is invalid`);
    }
    await this.#reconnecting?.catch(() => {});
    if (!this.#link && !this.#closing) this.#link = await this.#open();
    const link = this.#link;
    if (!link) throw new PeerError("closed", "the peer client was closed");
    const reqId = this.#answers.nextId();
    const reply = this.#answers.resolved(reqId, this.opts.timeoutMs ?? 10_000, id);
    if (!await sendOn(link, encodeControl({ type: "resolve", migrationId: id, reqId, action }))) {
      this.#answers.fail(
        reqId,
        new PeerError("closed", "the link dropped before the request went out"),
      );
    }
    const r = await reply;
    return {
      state: r.state,
      ...(r.pid !== undefined ? { pid: r.pid } : {}),
      ...(r.error !== undefined ? { error: r.error } : {}),
      ...(r.lazy !== undefined ? { lazy: r.lazy } : {}),
    };
  }

  async checkContainer(id: string, check: ContainerCheck): Promise<ContainerCheckAnswer> {
    if (!MIGRATION_ID_RE.test(id)) {
      throw new PeerError("rejected", `migration id '${id}' is invalid`);
    }
    const link = this.#link;
    if (!link) throw new PeerError("closed", "the link to the peer is down (resuming)");
    const reqId = this.#answers.nextId();
    const reply = this.#answers.containerChecked(reqId, this.opts.timeoutMs ?? 30_000);
    const msg = encodeControl({ type: "containerCheck", migrationId: id, reqId, check });
    if (!await sendOn(link, msg)) {
      this.#answers.fail(
        reqId,
        new PeerError("closed", "the link dropped before the check went out"),
      );
    }
    return (await reply).answer;
  }

  send(m: string | Uint8Array): Promise<boolean> {
    const link = this.#link;
    return link ? sendOn(link, m) : Promise.resolve(false);
  }

  sendWire(wire: Uint8Array): Promise<boolean> {
    const link = this.#link;
    return link ? sendWireOn(link, wire, this.#sealed) : Promise.resolve(false);
  }

  #prepare(
    link: Link,
    id: string,
    stream: number,
    expectedBytes: number,
    resume: boolean,
    pagesImage?: boolean,
  ): Promise<Control> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#prepareWaiters.delete(id);
        reject(new PeerError("timeout", `peer did not answer the prepare of '${id}'`));
      }, this.opts.timeoutMs ?? 10_000);
      this.#prepareWaiters.set(id, (m) => {
        clearTimeout(timer);
        resolve(m);
      });
      sendOn(
        link,
        encodeControl({
          type: "prepare",
          migrationId: id,
          stream,
          expectedBytes,
          resume,
          ...(pagesImage ? { pagesImage } : {}),
        }),
      )
        .then((ok) => {
          if (!ok) {
            clearTimeout(timer);
            this.#prepareWaiters.delete(id);
            reject(new PeerError("closed", "the link dropped during prepare"));
          }
        });
    });
  }

  async #requestHashes(channel: MigrationChannelImpl, pid: number): Promise<HashesFrame[]> {
    const reqId = this.#answers.nextId();
    const listing = this.#answers.hashes(reqId, 60_000);
    if (!await this.send(encodeControl({ type: "hashes", migrationId: channel.id, pid, reqId }))) {
      this.#answers.fail(reqId, new PeerError("closed", "link down"));
    }
    return await listing;
  }

  async #readLoop(link: Link): Promise<void> {
    try {
      for (let i = 0; i < Number.MAX_SAFE_INTEGER; i++) {
        const m = await link.next(2 ** 31 - 1);
        if (m === null) break;
        if (typeof m === "string") this.#onControl(decodeControl(m));
        else this.#onFrame(m);
      }
    } catch (e) {
      const reason = (e as Error).message;
      this.log({ level: "warn", msg: "bad message from agent", peer: this.peer.name, reason });
      link.close(4400, e instanceof ProtocolError ? "protocol error" : "client error");
    }
    const why = await link.closed;
    if (this.#link === link) this.#link = undefined;
    this.#answers.linkClosed(why);
    this.#tunnels.linkDown(why);
    if (this.#closing) return;
    const active = [...this.#channels.values()].filter((c) => c.active);
    if (active.length === 0) return;
    this.log({ level: "warn", msg: "link to peer dropped; resuming", peer: this.peer.name, why });
    this.#reconnecting ??= this.#resume(active).finally(() => this.#reconnecting = undefined);
  }

  async #resume(channels: MigrationChannelImpl[]): Promise<void> {
    await resumeChannels({
      channels,
      open: () => this.#open(),
      prepare: (link, ch) => this.#prepare(link, ch.id, ch.stream, ch.expectedBytes, true),
      forget: (ch) => this.#channels.delete(ch.stream),
      switchTo: (link) => this.#link = link,
      sendWire: (link, wire) => sendWireOn(link, wire, this.#sealed),
      closing: () => this.#closing,
      timeoutMs: this.opts.resumeTimeoutMs ?? 30_000,
      peerName: this.peer.name,
      log: this.log,
    });
  }

  #onControl(msg: Control): void {
    switch (msg.type) {
      case "ack": {
        const waiter = this.#prepareWaiters.get(msg.migrationId);
        if (waiter) {
          this.#prepareWaiters.delete(msg.migrationId);
          waiter(msg);
          return;
        }
        this.#channels.get(msg.stream)?.onAck(msg.seq, msg.bytesStored);
        return;
      }
      case "abort": {
        const waiter = this.#prepareWaiters.get(msg.migrationId);
        if (waiter) {
          this.#prepareWaiters.delete(msg.migrationId);
          waiter(msg);
          return;
        }
        for (const ch of this.#channels.values()) {
          if (ch.id === msg.migrationId) {
            ch.fail(new PeerError("aborted", `peer aborted migration '${ch.id}': ${msg.reason}`));
            this.#channels.delete(ch.stream);
          }
        }
        return;
      }
      case "resolved":
        this.#answers.onResolved(msg);
        return;
      case "containerChecked":
        this.#answers.onContainerChecked(msg);
        return;
      case "restoreResult":
        for (const ch of this.#channels.values()) {
          if (ch.id === msg.migrationId) ch.onRestoreResult(msg);
        }
        return;
      case "tunnelOpen":
      case "tunnelAck":
      case "tunnelClose":
        return this.#tunnels.control(msg);
      case "error":
        this.log({
          level: "warn",
          msg: "agent reported an error",
          peer: this.peer.name,
          code: msg.code,
          message: msg.message,
        });
        return;
      default:
        throw new ProtocolError(`'${msg.type}' is not a message a client accepts`);
    }
  }

  #onFrame(bytes: Uint8Array): void {
    const frame = decodeFrame(bytes);
    if (frame.kind === FrameKind.Tunnel) return this.#tunnels.frame(frame);
    if (frame.kind !== FrameKind.Hashes) {
      throw new ProtocolError("agents send only hash listings and tunnel frames");
    }
    this.#answers.onHashes(frame);
  }
}
