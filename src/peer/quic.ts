/**
 * The QUIC transport (Deno.QuicEndpoint / Deno.connectQuic, `--unstable-net`; deno.json enables
 * it). One connection carries a control stream (bidirectional: control messages both ways, hash
 * listings back) and a bulk stream (unidirectional, client → agent: page and file frames), so a
 * large batch never delays an acknowledgement. Each stream starts with the 4-byte preamble "U2Q1"
 * and carries records: u32 length (LE), u8 kind (0 text, 1 binary), payload.
 *
 * The agent's certificate is verified against the pinned PEM (trust anchor) under the server name
 * `u2cm-agent` it was issued for; the signed handshake then binds its fingerprint as on WebSocket.
 *
 * @module
 */
import { PeerError } from "./errors.ts";
import { Inbox, type Link, type LinkMessage } from "./link.ts";

/** ALPN protocol id of the peer protocol over QUIC. */
export const QUIC_ALPN = "u2cm/1";
/** Server name in every agent certificate. */
export const AGENT_SERVER_NAME = "u2cm-agent";

const PREAMBLE = new Uint8Array([0x55, 0x32, 0x51, 0x31]); // "U2Q1"

function quicApi(): { Endpoint: typeof Deno.QuicEndpoint; connect: typeof Deno.connectQuic } {
  const d = Deno as unknown as {
    QuicEndpoint?: typeof Deno.QuicEndpoint;
    connectQuic?: typeof Deno.connectQuic;
  };
  if (typeof d.QuicEndpoint !== "function" || typeof d.connectQuic !== "function") {
    throw new PeerError(
      "rejected",
      "the QUIC transport needs Deno's --unstable-net (run through deno.json, or use --transport ws)",
    );
  }
  return { Endpoint: d.QuicEndpoint, connect: d.connectQuic };
}

/** Options of {@linkcode serveQuic}. */
export interface ServeQuicOptions {
  hostname: string;
  port: number;
  cert: string;
  key: string;
  onLink: (link: Link) => void;
  maxMessageBytes: number;
  /** Drop a silent connection after this long. @default 10000 */
  idleTimeoutMs?: number;
}

/** Listen for QUIC connections; each becomes a link once its control stream opens. */
export function serveQuic(
  opts: ServeQuicOptions,
): Promise<{ port: number; close(): Promise<void> }> {
  const { Endpoint } = quicApi();
  const endpoint = new Endpoint({ hostname: opts.hostname, port: opts.port });
  const listener = endpoint.listen({
    cert: opts.cert,
    key: opts.key,
    alpnProtocols: [QUIC_ALPN],
    keepAliveInterval: 1000,
    maxIdleTimeout: opts.idleTimeoutMs ?? 10_000,
  });
  const links = new Set<QuicLink>();
  (async () => {
    for await (const incoming of listener) {
      (async () => {
        const conn = await incoming.accept();
        const remote = `${conn.remoteAddr.hostname}:${conn.remoteAddr.port}`;
        const control = await firstStream(conn.incomingBidirectionalStreams);
        if (!control) return conn.close({ closeCode: 1, reason: "no control stream" });
        const link = new QuicLink(conn, control.writable, remote, opts.maxMessageBytes);
        links.add(link);
        link.closed.then(() => links.delete(link));
        link.readStream(control.readable);
        // The bulk stream may open later (or never, for a control-only client).
        firstStream(conn.incomingUnidirectionalStreams).then((bulk) => {
          if (bulk) link.readStream(bulk);
        });
        opts.onLink(link);
      })().catch(() => {});
    }
  })().catch(() => {});
  return Promise.resolve({
    port: endpoint.addr.port,
    close: () => {
      for (const l of links) l.close(0, "agent shutting down");
      listener.stop();
      endpoint.close();
      return Promise.resolve();
    },
  });
}

/** Options of {@linkcode connectQuicLink}. */
export interface QuicConnectOptions {
  hostname: string;
  port: number;
  /** The agent's certificate (PEM), the only trust anchor used. */
  certPem: string;
  /** Its SHA-256 fingerprint, reported as the link's remote certificate. */
  certFingerprint: string;
  timeoutMs: number;
  maxMessageBytes: number;
  /** Close after this long without hearing from the agent. @default 8000 */
  deadAfterMs?: number;
}

/** Connect to an agent over QUIC and open the control and bulk streams. */
export async function connectQuicLink(opts: QuicConnectOptions): Promise<Link> {
  const { connect } = quicApi();
  let conn: Deno.QuicConn;
  try {
    conn = await withTimeout(
      Promise.resolve(connect({
        hostname: opts.hostname,
        port: opts.port,
        serverName: AGENT_SERVER_NAME,
        caCerts: [opts.certPem],
        alpnProtocols: [QUIC_ALPN],
        keepAliveInterval: 1000,
        maxIdleTimeout: opts.deadAfterMs ?? 8000,
      })),
      opts.timeoutMs,
    );
  } catch (e) {
    const msg = (e as Error).message;
    throw new PeerError(
      /certificate|UnknownIssuer|BadSignature/i.test(msg) ? "pin-mismatch" : "unreachable",
      `QUIC connection to ${opts.hostname}:${opts.port} failed: ${msg}`,
    );
  }
  const control = await conn.createBidirectionalStream();
  const bulk = await conn.createUnidirectionalStream();
  const link = new QuicLink(
    conn,
    control.writable,
    `${opts.hostname}:${opts.port}`,
    opts.maxMessageBytes,
    bulk,
    opts.certFingerprint,
  );
  await link.writePreambles();
  link.readStream(control.readable, false);
  return link;
}

class QuicLink implements Link {
  readonly transport = "quic" as const;
  readonly closed: Promise<string>;
  #conn: Deno.QuicConn;
  #control: WritableStreamDefaultWriter<Uint8Array>;
  #bulk: WritableStreamDefaultWriter<Uint8Array> | undefined;
  #inbox = new Inbox();
  #resolveClosed!: (reason: string) => void;
  #isClosed = false;

  constructor(
    conn: Deno.QuicConn,
    control: WritableStream<Uint8Array>,
    readonly remoteAddress: string,
    readonly maxMessageBytes: number,
    bulk?: WritableStream<Uint8Array>,
    readonly remoteCertFingerprint?: string,
  ) {
    this.#conn = conn;
    this.#control = control.getWriter();
    this.#bulk = bulk?.getWriter();
    this.closed = new Promise((r) => this.#resolveClosed = r);
    conn.closed.then(
      (info) => this.#finish(`closed (${info.closeCode}${info.reason ? ` ${info.reason}` : ""})`),
      (e) => this.#finish(`connection lost: ${(e as Error).message}`),
    );
  }

  get queued(): number {
    return this.#inbox.size;
  }

  async writePreambles(): Promise<void> {
    await this.#control.write(PREAMBLE);
    await this.#bulk?.write(PREAMBLE);
  }

  async send(message: LinkMessage): Promise<void> {
    if (this.#isClosed) throw new PeerError("closed", "the QUIC link is closed");
    const text = typeof message === "string";
    const body = text ? new TextEncoder().encode(message) : message;
    const record = new Uint8Array(5 + body.length);
    new DataView(record.buffer).setUint32(0, body.length, true);
    record[4] = text ? 0 : 1;
    record.set(body, 5);
    const writer = !text && this.#bulk ? this.#bulk : this.#control;
    try {
      await writer.ready;
      writer.write(record).catch((e) => this.#finish(`write failed: ${(e as Error).message}`));
    } catch (e) {
      this.#finish(`write failed: ${(e as Error).message}`);
      throw new PeerError("closed", "the QUIC link is closed");
    }
  }

  next(timeoutMs: number): Promise<LinkMessage | null> {
    return this.#inbox.next(timeoutMs);
  }

  close(code = 0, reason = ""): void {
    if (this.#isClosed) return;
    try {
      this.#conn.close({ closeCode: code, reason: reason.slice(0, 100) });
    } catch { /* already closed */ }
    this.#finish(`closed locally${reason ? `: ${reason}` : ""}`);
  }

  /** Read records from `stream` into the inbox (checking the preamble unless told not to). */
  async readStream(stream: ReadableStream<Uint8Array>, preamble = true): Promise<void> {
    const reader = stream.getReader();
    let buf: Uint8Array = new Uint8Array(0);
    let needPreamble = preamble;
    try {
      for (let guard = 0; guard < Number.MAX_SAFE_INTEGER; guard++) {
        const { value, done } = await reader.read();
        if (done) break;
        buf = buf.length ? concat(buf, value) : value;
        if (needPreamble) {
          if (buf.length < 4) continue;
          if (!PREAMBLE.every((b, i) => buf[i] === b)) return this.close(2, "bad stream preamble");
          buf = buf.subarray(4);
          needPreamble = false;
        }
        while (buf.length >= 5) {
          const len = new DataView(buf.buffer, buf.byteOffset, 5).getUint32(0, true);
          if (len > this.maxMessageBytes) return this.close(3, `record of ${len} bytes too large`);
          if (buf.length < 5 + len) break;
          const kind = buf[4];
          const body = buf.slice(5, 5 + len);
          buf = buf.subarray(5 + len);
          let m: LinkMessage;
          if (kind === 0) {
            try {
              m = new TextDecoder("utf-8", { fatal: true }).decode(body);
            } catch {
              return this.close(4, "text record is not UTF-8");
            }
          } else if (kind === 1) m = body;
          else return this.close(4, `unknown record kind ${kind}`);
          if (!this.#inbox.push(m)) return this.close(5, "peer overran the inbox");
        }
      }
    } catch (e) {
      this.#finish(`stream error: ${(e as Error).message}`);
    }
  }

  #finish(reason: string): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    this.#inbox.close();
    this.#resolveClosed(reason);
  }
}

async function firstStream<T>(streams: ReadableStream<T>): Promise<T | undefined> {
  const reader = streams.getReader();
  try {
    const { value } = await reader.read();
    return value;
  } catch {
    return undefined;
  } finally {
    reader.releaseLock();
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
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
