/**
 * The source's window of sent, unacknowledged chunks: each kept as laid out for the wire until the
 * agent acknowledges it (so it can be resent verbatim after a reconnect), the bytes in flight that
 * backpressure counts, and the buffers acknowledged chunks leave behind, reused for the next ones
 * instead of allocating (and zero-filling) a fresh megabyte per chunk.
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

interface Pending {
  seq: number;
  wire: Uint8Array;
}

/** See the module doc. */
export class ResendBuffer {
  #unacked: Pending[] = [];
  #inflight = 0;
  #sentUpTo = 0;
  #spare: ArrayBuffer[] = [];

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
      if (buffer.byteLength >= REUSE_MIN_BYTES && this.#spare.length < SPARE_BUFFERS) {
        this.#spare.push(buffer);
      }
    }
    return before - this.#inflight;
  }

  /** A spare buffer of at least `size` + 16 bytes (for large chunks), or undefined. */
  spare(size: number): ArrayBuffer | undefined {
    if (size < REUSE_MIN_BYTES) return undefined;
    const i = this.#spare.findIndex((b) => b.byteLength >= size + 16);
    return i < 0 ? undefined : this.#spare.splice(i, 1)[0];
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

  /** Forget everything (the channel failed). */
  clear(): void {
    this.#unacked = [];
    this.#spare = [];
    this.#inflight = 0;
  }
}
