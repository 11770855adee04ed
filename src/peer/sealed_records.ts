/**
 * The sealed bulk stream's bytes on a TCP connection. The client opens with the preamble "U2S1"
 * and the 16-byte token the agent was given over the authenticated link; then come records, each
 * the u32 (LE) payload length, the AES-256-GCM ciphertext and the tag (aead.ts), the length
 * authenticated with them. The first record is empty (it proves the key). Nonces count records,
 * so a record dropped, replayed, reordered or moved to another connection fails to open.
 *
 * {@linkcode SealedWriter} seals while it copies, into two alternating send buffers, and keeps
 * every record's plaintext untouched (the channel keeps it for a resend). {@linkcode readSealed}
 * reads each record straight into a buffer of its own, opens it in place and hands the payload on:
 * one copy from the kernel, no per-record allocation beyond the payload's own buffer.
 *
 * @example
 * ```ts
 * const writer = new SealedWriter(conn, aead.sealer(key, CLIENT_LABEL));
 * writer.write(new Uint8Array(0)); // the key-proving first record
 * ```
 *
 * @module
 */
import type { Opener, Sealer } from "./aead.ts";
import { TAG_BYTES } from "./aead.ts";
import type { WireLayout } from "./link.ts";

/** The first bytes of a bulk connection. */
export const BULK_PREAMBLE = new Uint8Array([0x55, 0x32, 0x53, 0x31]); // "U2S1"
/** Bytes of the token after the preamble. */
export const TOKEN_BYTES = 16;
/** Nonce label of client → agent records. */
export const CLIENT_LABEL = 0x4b4c5542; // "BULK"

/** Largest records one receive arena holds (see Arena). */
const ARENA_RECORDS = 4;
/** Largest send buffer kept (bigger records get a one-off buffer). */
const KEEP_BUFFER_BYTES = 2 * 2 ** 20;

/** Writes sealed records to a connection in order; see the module doc. */
export class SealedWriter {
  /** Plaintext bytes queued and not yet written. */
  queued = 0;
  #conn: Deno.Conn;
  #sealer: Sealer;
  #queue: Uint8Array[] = [];
  #pumping = false;
  #closed = false;
  #error: string | undefined;
  #buffers: Uint8Array[] = [new Uint8Array(0), new Uint8Array(0)];
  #waiters: { limit: number; resolve: () => void }[] = [];

  /**
   * @param conn the connection (after the preamble and token)
   * @param sealer the connection's sealer
   * @param onError called once when a write fails
   */
  constructor(conn: Deno.Conn, sealer: Sealer, readonly onError: (why: string) => void = () => {}) {
    this.#conn = conn;
    this.#sealer = sealer;
  }

  /** Records sealed so far. */
  get records(): number {
    return this.#sealer.records;
  }

  /** Queue one record carrying `payload` (kept as it is; it must not change until written). */
  write(payload: Uint8Array): void {
    if (this.#closed) return;
    this.#queue.push(payload);
    this.queued += payload.length;
    if (!this.#pumping) this.#pump();
  }

  /** Resolves once at most `limit` bytes are queued, or the writer closed. */
  drained(limit: number): Promise<void> {
    if (this.queued <= limit || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ limit, resolve }));
  }

  /** Why the writer stopped, if it failed. */
  get error(): string | undefined {
    return this.#error;
  }

  /** Stop: queued records are dropped, the sealer freed. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = [];
    this.queued = 0;
    this.#wake();
    if (!this.#pumping) this.#sealer.close();
  }

  async #pump(): Promise<void> {
    this.#pumping = true;
    let inflight: Promise<void> | undefined;
    let which = 0;
    try {
      for (let guard = 0; guard < Number.MAX_SAFE_INTEGER && !this.#closed; guard++) {
        const payload = this.#queue.shift();
        if (!payload) {
          // Wait for the last write; records queued meanwhile are taken on the next turn.
          if (!inflight) break;
          await inflight;
          inflight = undefined;
          continue;
        }
        which ^= 1;
        const need = 4 + payload.length + TAG_BYTES;
        let out = this.#buffers[which];
        if (out.length < need) {
          out = new Uint8Array(Math.max(need, 64 * 1024));
          if (out.length <= KEEP_BUFFER_BYTES) this.#buffers[which] = out;
        }
        // The other buffer may still be on its way to the kernel; this one is free.
        const n = await this.#sealer.sealAsync([payload], out);
        if (inflight) await inflight;
        inflight = writeAll(this.#conn, out.subarray(0, n)).then(() => {
          this.queued -= payload.length;
          this.#wake();
        });
        // Awaited on the next turn; until then a failed write must not go unhandled.
        inflight.catch(() => {});
      }
      await inflight?.catch(() => {}); // closed meanwhile
    } catch (e) {
      this.#fail(`bulk write failed: ${(e as Error).message}`);
    } finally {
      this.#pumping = false;
      if (this.#closed) this.#sealer.close();
    }
  }

  #fail(why: string): void {
    if (this.#closed) return;
    this.#error = why;
    this.close();
    this.onError(why);
  }

  #wake(): void {
    const still: { limit: number; resolve: () => void }[] = [];
    for (const w of this.#waiters) {
      if (this.queued <= w.limit || this.#closed) w.resolve();
      else still.push(w);
    }
    this.#waiters = still;
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let o = 0; o < bytes.length;) o += await conn.write(bytes.subarray(o));
}

/** Where {@linkcode readSealed} delivers. */
export interface SealedSink {
  /** One record's payload (its own buffer); false stops reading (the sink is full). */
  message(payload: Uint8Array): boolean;
  /** The first, empty record opened: the key is right. */
  proven(): void;
}

/**
 * Read and open records from `conn` until it ends, a record fails to open, or one is larger than
 * `maxPayloadBytes`. Resolves with the reason reading stopped ("connection closed" when the peer
 * closed between records). Never throws.
 *
 * @param conn the connection, after the preamble and token
 * @param opener the connection's opener
 * @param maxPayloadBytes the largest payload accepted
 * @param sink where payloads go
 */
export async function readSealed(
  conn: Deno.Conn,
  opener: Opener,
  maxPayloadBytes: number,
  sink: SealedSink,
): Promise<string> {
  const head = new Uint8Array(4);
  let headFill = 0;
  const arena = new Arena(ARENA_RECORDS * (maxPayloadBytes + TAG_BYTES + 4 + 8));
  // Record k is decrypted (off the event loop's thread) while record k + 1 is read; it is
  // delivered as soon as it opened.
  let opening: Promise<void> | undefined;
  let failed: string | undefined;
  const deliver = async (): Promise<string | undefined> => {
    await opening;
    return failed;
  };
  // A record that fails ends the stream at once (a read may be waiting for more).
  const stop = (why: string) => {
    failed ??= why;
    try {
      conn.close();
    } catch { /* closed */ }
  };
  try {
    for (let index = 0; index < Number.MAX_SAFE_INTEGER; index++) {
      // The length first (up to 4 bytes, possibly left over from the previous read).
      while (headFill < 4) {
        const n = await conn.read(head.subarray(headFill));
        if (n === null) {
          return await deliver() ??
            (headFill === 0 ? "connection closed" : "bulk stream cut mid-record");
        }
        headFill += n;
      }
      const len = new DataView(head.buffer).getUint32(0, true);
      if (len > maxPayloadBytes) return `sealed record of ${len} bytes is too large`;
      if (index === 0 && len !== 0) return "the bulk stream did not start with its proof record";
      // Room for the body, the tag and the next record's length: one read can finish a record
      // and start the next.
      const buf = arena.take(len + TAG_BYTES + 4);
      const end = len + TAG_BYTES;
      let fill = 0;
      while (fill < end) {
        const n = await conn.read(buf.subarray(fill));
        if (n === null) return await deliver() ?? "bulk stream cut mid-record";
        fill += n;
      }
      if (await deliver()) return failed!;
      const body = buf.subarray(0, len);
      // openAsync takes `head` (the authenticated length) before it first yields.
      opening = opener.openAsync(head, body, buf.subarray(len, end)).then((ok) => {
        if (!ok) {
          stop("a sealed record failed to open (forged, corrupted, replayed or out of order)");
        } else if (index === 0) sink.proven();
        else if (!sink.message(body)) stop("the receiver's inbox is full");
      }, (e) => stop(`bulk stream error: ${(e as Error).message}`));
      headFill = fill - end;
      head.set(buf.subarray(end, fill));
    }
    return "connection closed";
  } catch (e) {
    await opening;
    return failed ?? `bulk stream error: ${(e as Error).message}`;
  } finally {
    await opening; // the opener is in use until its call returns
    opener.close();
  }
}

/**
 * Record buffers carved out of arenas of four largest records (about 4 MiB). The receiver keeps
 * payloads (the page store adopts them), so each needs memory of its own; on this VM the first
 * touch of fresh memory is the receiver's largest cost, and 1 MiB allocations cost two to three
 * times more per byte than 4 MiB ones (glibc clears recycled heap chunks, then the kernel copies
 * in). An arena lives while any of its payloads does: at most four frames' worth per live page,
 * where a buffer per frame held one.
 */
class Arena {
  #buffer = new Uint8Array(0);
  #at = 0;

  constructor(readonly size: number) {}

  take(n: number): Uint8Array {
    if (n > this.size) return new Uint8Array(n);
    if (this.#at + n > this.#buffer.length) {
      [this.#buffer, this.#at] = [new Uint8Array(this.size), 0];
    }
    const out = this.#buffer.subarray(this.#at, this.#at + n);
    this.#at += (n + 7) & ~7;
    return out;
  }
}

/**
 * Binary messages for a sealed bulk stream, as the channel keeps them: the plain concatenation of
 * `parts`, written into `reuse` when it is large enough (sealing happens as the record is written).
 */
export const sealedWireLayout: WireLayout = (parts, reuse) => {
  let n = 0;
  for (const p of parts) n += p.length;
  const buffer = reuse && reuse.byteLength >= n ? reuse : new ArrayBuffer(n + 16);
  const out = new Uint8Array(buffer, 0, n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};
