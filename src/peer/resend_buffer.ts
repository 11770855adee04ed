/**
 * The source's window of sent, unacknowledged chunks: each kept as laid out for the wire until the
 * agent acknowledges it (so it can be resent verbatim after a reconnect), the bytes in flight that
 * backpressure counts, and the buffers acknowledged chunks leave behind, reused for the next ones
 * instead of allocating (and zero-filling) a fresh megabyte per chunk. The spare buffers are
 * shared by every window of the process and kept for {@linkcode SPARE_IDLE_MS} after their last
 * use: the next migration (the next round's client, the next benchmark run) starts on memory
 * already touched. On this VM the first touch of fresh memory costs about 1 ms per MiB: some 64 ms
 * of CPU for a 64 MiB window's first fill, where the source spends 450–550 ms per 256 MiB. A
 * buffer is only reused once its chunk is acknowledged, i.e. the agent received it whole.
 *
 * @example
 * ```ts
 * const window = new ResendBuffer();
 * window.push(1, wsWireLayout(parts, window.spare(size)));
 * window.ack(1); // its buffer is now a spare
 * ```
 *
 * @module
 */

/** Chunks at least this large are laid out in reused buffers. */
const REUSE_MIN_BYTES = 64 * 1024;

/** Acknowledged buffers kept for reuse (a 64 MiB window holds about 64 chunks of 1 MiB). */
const SPARE_BUFFERS = 72;

/** How long spare buffers outlive their last use. */
export const SPARE_IDLE_MS = 10_000;

/** The process's spare buffers (see the module doc). */
class SparePool {
  #buffers: ArrayBuffer[] = [];
  #lastUse = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /** Buffers kept. */
  get size(): number {
    return this.#buffers.length;
  }

  put(buffer: ArrayBuffer): void {
    if (this.#buffers.length >= SPARE_BUFFERS) return;
    this.#buffers.push(buffer);
    this.#touch();
  }

  take(size: number): ArrayBuffer | undefined {
    const i = this.#buffers.findIndex((b) => b.byteLength >= size + 16);
    if (i < 0) return undefined;
    this.#touch();
    return this.#buffers.splice(i, 1)[0];
  }

  /** Drop every buffer. */
  clear(): void {
    this.#buffers = [];
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #touch(): void {
    this.#lastUse = Date.now();
    if (this.#timer === undefined) this.#arm(SPARE_IDLE_MS);
  }

  #arm(ms: number): void {
    const timer = setTimeout(() => {
      this.#timer = undefined;
      const idle = Date.now() - this.#lastUse;
      if (idle >= SPARE_IDLE_MS) this.#buffers = [];
      else this.#arm(SPARE_IDLE_MS - idle);
    }, ms);
    Deno.unrefTimer(Number(timer)); // never keeps the process alive
    this.#timer = timer;
  }
}

/** @internal the process's spare buffers (tests look at and clear it). */
export const sparePool: SparePool = new SparePool();

interface Pending {
  seq: number;
  wire: Uint8Array;
}

/** See the module doc. */
export class ResendBuffer {
  #unacked: Pending[] = [];
  #inflight = 0;
  #sentUpTo = 0;

  /** Wire bytes sent (or waiting to be) and not acknowledged. */
  get inflight(): number {
    return this.#inflight;
  }

  /** Keep chunk `seq` (sequence numbers rise by one per chunk). */
  push(seq: number, wire: Uint8Array): void {
    this.#unacked.push({ seq, wire });
    this.#inflight += wire.length;
  }

  /** Chunks up to `seq` are stored by the agent: drop them; returns the wire bytes released. */
  ack(seq: number): number {
    const before = this.#inflight;
    while (this.#unacked.length && this.#unacked[0].seq <= seq) {
      const { wire } = this.#unacked.shift()!;
      this.#inflight -= wire.length;
      const buffer = wire.buffer as ArrayBuffer;
      if (buffer.byteLength >= REUSE_MIN_BYTES) sparePool.put(buffer);
    }
    return before - this.#inflight;
  }

  /** A spare buffer of at least `size` + 16 bytes (for large chunks), or undefined. */
  spare(size: number): ArrayBuffer | undefined {
    return size < REUSE_MIN_BYTES ? undefined : sparePool.take(size);
  }

  /** The current link took every chunk up to `seq`. */
  markSent(seq: number): void {
    this.#sentUpTo = Math.max(this.#sentUpTo, seq);
  }

  /** After a reconnect: the new link has taken nothing beyond `seq` (what the agent holds). */
  resetSent(seq: number): void {
    this.#sentUpTo = seq;
  }

  /** The first kept chunk the current link has not taken, if any. */
  nextUnsent(): { seq: number; wire: Uint8Array } | undefined {
    return this.#unacked.find((p) => p.seq > this.#sentUpTo);
  }

  /**
   * Forget everything (the channel failed). Unacknowledged buffers are not reused: a link may
   * still be writing them.
   */
  clear(): void {
    this.#unacked = [];
    this.#inflight = 0;
  }
}
