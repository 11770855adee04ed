/**
 * The client's end of a sealed bulk stream (bulk_server.ts): over the authenticated TLS link it
 * gives the agent a fresh token and AES-256-GCM key, opens a TCP connection to the agent's
 * announced `bulkPort`, presents the token and proves the key with an empty first record; once the
 * agent confirms, the returned {@linkcode SealedLink} sends binary frames (page batches, file
 * chunks) as sealed records on it, and everything else — control messages, tunnel traffic, what
 * the agent sends — on the TLS link as before. Either connection failing closes both; the client
 * then resumes its migrations on a new link as after any drop.
 *
 * @example
 * ```ts
 * const sealed = await openBulk(link, { hostname: "10.0.0.2", port: caps.bulkPort!, aead, timeoutMs: 5000 });
 * await sealed.sendRecord(frameBytes);
 * ```
 *
 * @module
 */
import { type Aead, KEY_BYTES, type Sealer } from "./aead.ts";
import { PeerError } from "./errors.ts";
import { base64url } from "./keys.ts";
import type { Link, LinkMessage } from "./link.ts";
import { decodeControl, encodeControl } from "./protocol.ts";
import { BULK_PREAMBLE, CLIENT_LABEL, SealedWriter, TOKEN_BYTES } from "./sealed_records.ts";

/** Bytes queued on the bulk stream before a send waits for it to drain. */
const SEND_BUFFER_BYTES = 8 * 1024 * 1024;
/** Bytes sealed under one key before the link is closed (and resumed under a fresh key). */
const MAX_BYTES_PER_KEY = 64 * 2 ** 30;

/** Options of {@linkcode openBulk}. */
export interface OpenBulkOptions {
  /** The agent's host (the one the link went to). */
  hostname: string;
  /** The agent's announced `bulkPort`. */
  port: number;
  /** The AEAD (aead.ts). */
  aead: Aead;
  /** Connect and attach timeout. */
  timeoutMs: number;
}

/**
 * Attach a sealed bulk stream to the authenticated `link` (nothing else may read `link` until
 * this settles). Rejects with {@linkcode PeerError} "unreachable" when the stream cannot be
 * opened or the agent does not confirm it in time; the caller then closes `link` (an answer may
 * still be on its way) and connects again without a bulk stream.
 */
export async function openBulk(link: Link, opts: OpenBulkOptions): Promise<SealedLink> {
  const token = crypto.getRandomValues(new Uint8Array(TOKEN_BYTES));
  const key = crypto.getRandomValues(new Uint8Array(KEY_BYTES));
  const tokenText = base64url(token);
  await link.send(encodeControl({ type: "bulkOpen", token: tokenText, key: base64url(key) }));
  let conn: Deno.TcpConn | undefined;
  try {
    conn = await withTimeout(
      Deno.connect({ hostname: opts.hostname, port: opts.port }),
      opts.timeoutMs,
    );
    conn.setNoDelay(true);
    const hello = new Uint8Array(BULK_PREAMBLE.length + TOKEN_BYTES);
    hello.set(BULK_PREAMBLE);
    hello.set(token, BULK_PREAMBLE.length);
    for (let o = 0; o < hello.length;) o += await conn.write(hello.subarray(o));
  } catch (e) {
    try {
      conn?.close();
    } catch { /* closed */ }
    throw new PeerError(
      "unreachable",
      `cannot open the bulk stream to ${opts.hostname}:${opts.port}: ${(e as Error).message}`,
    );
  }
  const sealed = new SealedLink(link, conn, opts.aead.sealer(key, CLIENT_LABEL));
  sealed.prove();
  let ok = false;
  try {
    ok = await attachAnswer(link, tokenText, opts.timeoutMs);
  } finally {
    if (!ok) sealed.dropBulk();
  }
  if (!ok) throw new PeerError("unreachable", "the agent did not attach the bulk stream");
  return sealed;
}

/** Wait for the agent's `bulkAttached` for `token` (the first message it sends after bulkOpen). */
async function attachAnswer(link: Link, token: string, timeoutMs: number): Promise<boolean> {
  const m = await link.next(timeoutMs);
  if (typeof m !== "string") throw new PeerError("protocol", "expected the bulk stream's answer");
  const msg = decodeControl(m);
  if (msg.type !== "bulkAttached" || msg.token !== token) {
    throw new PeerError("protocol", `expected the bulk stream's answer, got '${msg.type}'`);
  }
  return msg.ok;
}

/**
 * A link whose binary frames travel sealed on a bulk stream ({@linkcode SealedLink.sendRecord});
 * the rest of {@linkcode Link} is the TLS link's.
 */
export class SealedLink implements Link {
  readonly closed: Promise<string>;
  #inner: Link;
  #conn: Deno.TcpConn;
  #writer: SealedWriter;
  #sealedBytes = 0;
  #dropped = false;

  /**
   * @param inner the authenticated TLS link
   * @param conn the bulk connection, after its preamble and token
   * @param sealer the connection's sealer
   */
  constructor(inner: Link, conn: Deno.TcpConn, sealer: Sealer) {
    this.#inner = inner;
    this.#conn = conn;
    this.#writer = new SealedWriter(conn, sealer, (why) => inner.close(1011, why));
    this.closed = inner.closed;
    inner.closed.then(() => this.dropBulk());
    this.#watchBulk();
  }

  get transport(): "ws" | "quic" {
    return this.#inner.transport;
  }
  get remoteAddress(): string {
    return this.#inner.remoteAddress;
  }
  get remoteCertFingerprint(): string | undefined {
    return this.#inner.remoteCertFingerprint;
  }
  get remoteCertPem(): string | undefined {
    return this.#inner.remoteCertPem;
  }
  get queued(): number {
    return this.#inner.queued;
  }

  /** @internal the empty first record that proves the key. */
  prove(): void {
    this.#writer.write(new Uint8Array(0));
  }

  /** @internal close the bulk connection only. */
  dropBulk(): void {
    this.#dropped = true;
    this.#writer.close();
    try {
      this.#conn.close();
    } catch { /* closed */ }
  }

  /**
   * Send one binary frame (`payload`, which must not change until the agent acknowledged it) as
   * a sealed record on the bulk stream; waits while more than 8 MiB are queued.
   */
  async sendRecord(payload: Uint8Array): Promise<void> {
    if (this.#writer.error) throw new PeerError("closed", this.#writer.error);
    this.#sealedBytes += payload.length;
    if (this.#sealedBytes > MAX_BYTES_PER_KEY) {
      // A fresh key comes with the next link; the channel resumes there.
      this.close(1000, "bulk key used up");
      throw new PeerError("closed", "the bulk stream's key is used up");
    }
    this.#writer.write(payload);
    if (this.#writer.queued > SEND_BUFFER_BYTES) await this.#writer.drained(SEND_BUFFER_BYTES);
    if (this.#writer.error) throw new PeerError("closed", this.#writer.error);
  }

  send(message: LinkMessage): Promise<void> {
    return this.#inner.send(message);
  }

  sendWire(wire: Uint8Array): Promise<void> {
    if (!this.#inner.sendWire) return Promise.reject(new PeerError("closed", "no wire sends"));
    return this.#inner.sendWire(wire);
  }

  next(timeoutMs: number): Promise<LinkMessage | null> {
    return this.#inner.next(timeoutMs);
  }

  close(code?: number, reason?: string): void {
    this.dropBulk();
    this.#inner.close(code, reason);
  }

  /** The agent sends nothing on the bulk stream: its end (or anything arriving) ends the link. */
  async #watchBulk(): Promise<void> {
    let why: string;
    try {
      why = await this.#conn.read(new Uint8Array(1)) === null
        ? "bulk stream closed"
        : "unexpected bytes on the bulk stream";
    } catch {
      why = "bulk stream failed";
    }
    if (!this.#dropped) this.#inner.close(1011, why);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
