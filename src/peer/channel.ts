/**
 * One migration's channel on the source: page batches and image files go out as numbered chunks
 * inside a window of unacknowledged bytes (backpressure), kept until acknowledged so they can be
 * resent after a reconnect; then the restore request.
 *
 * @module
 */
import {
  BatchCompressor,
  type CompressionStats,
  type CompressMode,
  LinkRateSampler,
} from "./compression.ts";
import type { WireLayout } from "./link.ts";
import type { LogSink } from "./log.ts";
import { PeerError } from "./errors.ts";
import {
  encodeFileParts,
  encodePagesParts,
  type HashesFrame,
  isValidFileName,
  MAX_BATCH_PAGES,
  MAX_FILE_BYTES,
  MAX_FILE_CHUNK,
} from "./frames.ts";
import { HASH_BYTES, PAGE_SIZE } from "../native/page_hash.ts";
import { type ControlOf, encodeControl, RestoreRequestSchema } from "./protocol.ts";
import { ResendBuffer } from "./resend_buffer.ts";
import type {
  ResolveAction,
  ResolveAnswer,
  RestoreRequest,
  RestoreResult,
} from "./agent_context.ts";
import type { MigrationChannel, PageBatch } from "./migration_channel.ts";
import type { LazyCheckReport } from "../engine/contract.ts";
import { Signal } from "./signal.ts";
import type { TunnelRegistry } from "./tunnel_handler.ts";

export type { MigrationChannel, PageBatch } from "./migration_channel.ts";

/** The client's link-facing half, as a channel sees it. */
export interface ClientLinkSide {
  /** Send on the current link; resolves false when there is none (the channel keeps the chunk). */
  send(m: string | Uint8Array): Promise<boolean>;
  /** Send a chunk laid out by `layout` on the current link; false when there is none. */
  sendWire(wire: Uint8Array): Promise<boolean>;
  /** How the transport lays a binary message out on its wire. */
  readonly layout: WireLayout;
  /** The client's log. */
  readonly log: LogSink;
}

/** Collaborators a channel needs from its client. */
export interface ChannelHooks {
  /** Window size in bytes. */
  windowBytes: number;
  /** Fetch the peer's hash listing of `pid`. */
  requestHashes(pid: number): Promise<HashesFrame[]>;
  /** Drop this channel from the client's table. */
  forget(): void;
  /** Page-batch compression (only "off" unless the peer announced the "lz4" codec). @default "off" */
  compress?: CompressMode;
  /** Where tunnels of this migration register (tunnel.ts). */
  tunnels?: TunnelRegistry;
  /** Ask the agent to resolve this migration (on a fresh link when the current one is down). */
  resolve(action: ResolveAction): Promise<ResolveAnswer>;
}

/** How long a restore may take on the peer. */
const RESTORE_TIMEOUT_MS = 15 * 60_000;

/** How long flush and window waits may go without any ack before failing. */
const STALL_MS = 120_000;

/** @internal the implementation behind {@linkcode MigrationChannel}. */
export class MigrationChannelImpl implements MigrationChannel {
  bytesSent = 0;
  bytesStored = 0;
  #seq = 0;
  #acked = 0;
  #window = new ResendBuffer();
  #error: Error | undefined;
  #done = false;
  #changed = new Signal();
  #restoreWaiter: ((r: ControlOf<"restoreResult">) => void) | undefined;
  readonly #compressor: BatchCompressor;
  /** Link-rate sampling for compression "auto". */
  readonly #rate: LinkRateSampler;

  constructor(
    readonly id: string,
    readonly stream: number,
    readonly expectedBytes: number,
    readonly link: ClientLinkSide,
    readonly hooks: ChannelHooks,
  ) {
    this.#compressor = new BatchCompressor(hooks.compress ?? "off");
    this.#rate = new LinkRateSampler(this.#compressor);
  }

  get compression(): CompressionStats {
    return this.#compressor.stats;
  }

  /** Whether the channel still needs its link (not failed, aborted or finished). */
  get active(): boolean {
    return !this.#error && !this.#done;
  }

  async sendPages(batch: PageBatch): Promise<void> {
    this.#check();
    const n = batch.addresses.length;
    if (!Number.isInteger(batch.pid) || batch.pid < 1) {
      throw new PeerError("rejected", `bad pid ${batch.pid}`);
    }
    if (batch.data.length !== n * PAGE_SIZE) {
      throw new PeerError("rejected", `batch has ${batch.data.length} bytes for ${n} pages`);
    }
    if (batch.hashes && batch.hashes.length !== n * HASH_BYTES) {
      throw new PeerError(
        "rejected",
        `batch has ${batch.hashes.length} bytes of hashes for ${n} pages`,
      );
    }
    for (let at = 0; at < n; at += MAX_BATCH_PAGES) {
      const end = Math.min(n, at + MAX_BATCH_PAGES);
      await this.#waitWindow();
      const data = batch.data.subarray(at * PAGE_SIZE, end * PAGE_SIZE);
      const parts = encodePagesParts({
        stream: this.stream,
        seq: this.#seq + 1,
        pid: batch.pid,
        addresses: batch.addresses.slice(at, end),
        data,
        hashes: batch.hashes?.subarray(at * HASH_BYTES, end * HASH_BYTES),
        packed: this.#compressor.pack(data),
      });
      await this.#queue(parts);
    }
    await this.#waitWindow();
  }

  async sendFile(name: string, data: Uint8Array): Promise<void> {
    this.#check();
    if (!isValidFileName(name)) {
      throw new PeerError("rejected", `image file name ${JSON.stringify(name)} is not allowed`);
    }
    if (data.length > MAX_FILE_BYTES) {
      throw new PeerError("rejected", `file '${name}' is too large`);
    }
    for (let at = 0, first = true; first || at < data.length; first = false) {
      const end = Math.min(data.length, at + MAX_FILE_CHUNK);
      await this.#waitWindow();
      await this.#queue(encodeFileParts({
        stream: this.stream,
        seq: this.#seq + 1,
        name,
        offset: at,
        total: data.length,
        data: data.subarray(at, end),
      }));
      at = end;
    }
    await this.#waitWindow();
  }

  async remoteHashes(pid: number): Promise<Map<number, Uint8Array>> {
    this.#check();
    const frames = await this.hooks.requestHashes(pid);
    const out = new Map<number, Uint8Array>();
    for (const f of frames) {
      for (let i = 0; i < f.addresses.length; i++) {
        out.set(f.addresses[i], f.hashes.slice(i * HASH_BYTES, (i + 1) * HASH_BYTES));
      }
    }
    return out;
  }

  async flush(): Promise<void> {
    for (let last = this.#acked, since = Date.now(); this.#acked < this.#seq;) {
      this.#check();
      await this.#changed.wait(1000);
      if (this.#acked !== last) [last, since] = [this.#acked, Date.now()];
      else if (Date.now() - since > STALL_MS) {
        throw this.fail(new PeerError("timeout", `no acknowledgement for ${STALL_MS} ms`));
      }
    }
    this.#check();
  }

  async restore(request: RestoreRequest): Promise<RestoreResult> {
    const parsed = RestoreRequestSchema.safeParse(request);
    if (!parsed.success) {
      throw new PeerError(
        "rejected",
        `restore request is not a bounded JSON object: ${parsed.error.issues[0]?.message}`,
      );
    }
    await this.flush();
    const result = new Promise<ControlOf<"restoreResult">>((resolve) =>
      this.#restoreWaiter = resolve
    );
    await this.#sendControl(
      encodeControl({ type: "restore", migrationId: this.id, request: parsed.data }),
    );
    const deadline = Date.now() + RESTORE_TIMEOUT_MS;
    for (;;) {
      this.#check();
      if (Date.now() > deadline) {
        throw this.fail(
          new PeerError("timeout", `no restore result within ${RESTORE_TIMEOUT_MS} ms`),
        );
      }
      const r = await Promise.race([result, this.#changed.wait(1000).then(() => undefined)]);
      if (r) {
        this.#restoreWaiter = undefined;
        if (r.ok) {
          this.#done = true;
          this.hooks.forget();
        }
        return {
          ok: r.ok,
          ...(r.pid !== undefined ? { pid: r.pid } : {}),
          ...(r.error !== undefined ? { error: r.error } : {}),
          ...(r.restoreMs !== undefined ? { restoreMs: r.restoreMs } : {}),
          ...(r.verified !== undefined ? { verified: r.verified } : {}),
        };
      }
    }
  }

  async resume(): Promise<void> {
    if (!this.#done) throw new PeerError("rejected", `migration '${this.id}' is not restored`);
    const answer = await this.hooks.resolve("resume");
    if (answer.state !== "resumed") {
      throw new PeerError(
        "rejected",
        `peer did not resume '${this.id}': ${answer.error ?? answer.state}`,
      );
    }
  }

  /** After post-copy: what the destination's check of the arriving pages saw, if it checked. */
  async postCopyReport(): Promise<LazyCheckReport | undefined> {
    return (await this.hooks.resolve("query")).lazy;
  }

  async abort(reason: string): Promise<boolean> {
    if (!this.#done) {
      await this.link.send(
        encodeControl({ type: "abort", migrationId: this.id, reason: reason.slice(0, 1000) }),
      );
      this.fail(new PeerError("aborted", `migration '${this.id}' aborted: ${reason}`));
      this.hooks.forget();
    }
    this.#done = true;
    try {
      const answer = await this.hooks.resolve("discard");
      return answer.state === "discarded" || answer.state === "unknown";
    } catch {
      return false;
    }
  }

  async stopCopy(phase: "start" | "end"): Promise<void> {
    this.#check();
    await this.#sendControl(encodeControl({ type: "stopCopy", migrationId: this.id, phase }));
  }

  async progress(p: { round?: number; phase?: string }): Promise<void> {
    this.#check();
    await this.#sendControl(encodeControl({
      type: "progress",
      migrationId: this.id,
      bytesSent: this.bytesSent,
      ...(p.round !== undefined ? { round: p.round } : {}),
      ...(p.phase !== undefined ? { phase: p.phase.slice(0, 32) } : {}),
    }));
  }

  /** @internal an ack from the agent: chunks up to `seq` are stored. */
  onAck(seq: number, bytesStored: number): void {
    if (seq > this.#seq) return;
    this.bytesStored = bytesStored;
    this.#rate.acked(this.#window.ack(seq));
    if (seq > this.#acked) this.#acked = seq;
    this.#changed.notify();
  }

  /** @internal the restore result arrived. */
  onRestoreResult(r: ControlOf<"restoreResult">): void {
    this.#restoreWaiter?.(r);
  }

  /** @internal after a reconnect: the agent holds chunks up to `seq`; the rest must be resent. */
  resumeFrom(seq: number): void {
    this.onAck(seq, this.bytesStored);
    this.#window.resetSent(seq);
  }

  /**
   * @internal send, in order, every unacknowledged chunk not yet handed to the current link;
   * returns how many were sent — synchronously 0 when there is nothing to send.
   */
  resendUnsent(send: (m: Uint8Array) => Promise<boolean>): number | Promise<number> {
    if (!this.active || !this.#window.nextUnsent()) return 0;
    return this.#resend(send);
  }

  async #resend(send: (m: Uint8Array) => Promise<boolean>): Promise<number> {
    let sent = 0;
    for (let guard = 0; guard < 1_000_000 && this.active; guard++) {
      const next = this.#window.nextUnsent();
      if (!next) break;
      if (!await send(next.wire)) {
        throw new PeerError("closed", "the link dropped while resending");
      }
      this.#window.markSent(next.seq);
      sent++;
    }
    return sent;
  }

  /** @internal fail the channel: every pending and later call rejects with `err`. */
  fail(err: Error): Error {
    this.#error ??= err;
    this.#window.clear();
    this.#changed.notify();
    return this.#error;
  }

  #check(): void {
    if (this.#error) throw this.#error;
    if (this.#done) throw new PeerError("closed", `migration '${this.id}' is finished`);
  }

  async #waitWindow(): Promise<void> {
    if (this.#window.inflight < this.hooks.windowBytes) return this.#check();
    this.#rate.waitStart();
    try {
      await this.#waitWindowLoop();
    } finally {
      this.#rate.waitEnd();
    }
  }

  async #waitWindowLoop(): Promise<void> {
    for (
      let since = Date.now(), last = this.#acked;
      this.#window.inflight >= this.hooks.windowBytes;
    ) {
      this.#check();
      await this.#changed.wait(1000);
      if (this.#acked !== last) [last, since] = [this.#acked, Date.now()];
      else if (Date.now() - since > STALL_MS) {
        throw this.fail(new PeerError("timeout", `no acknowledgement for ${STALL_MS} ms`));
      }
    }
    this.#check();
  }

  /**
   * Lay the chunk out for the wire, in a buffer an acknowledged chunk left behind when one fits,
   * and send it. It stays in the resend buffer until acknowledged.
   */
  async #queue(parts: Uint8Array[]): Promise<void> {
    const seq = ++this.#seq;
    let size = 0;
    for (const p of parts) size += p.length;
    const wire = this.link.layout(parts, this.#window.spare(size));
    this.#window.push(seq, wire);
    this.bytesSent += size;
    // false = link down: the chunk waits in the window until the client resumes and resends it.
    this.#rate.waitStart();
    const sent = await this.link.sendWire(wire).finally(() => this.#rate.waitEnd());
    if (sent) this.#window.markSent(seq);
  }

  async #sendControl(text: string): Promise<void> {
    for (let i = 0; i < 600; i++) {
      this.#check();
      if (await this.link.send(text)) return;
      await this.#changed.wait(100);
    }
    throw this.fail(new PeerError("closed", "the link stayed down"));
  }
}
