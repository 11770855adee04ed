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
import { Inbox, type Link, type LinkMessage, type WireLayout } from "./link.ts";
import {
  PREAMBLE,
  quicRecord,
  readRecords,
  type RecordError,
  RecordReader,
} from "./quic_records.ts";

/** ALPN protocol id of the peer protocol over QUIC. */
export const QUIC_ALPN = "u2cm/1";
/** Server name in every agent certificate. */
export const AGENT_SERVER_NAME = "u2cm-agent";

/** Binary messages as bulk-stream records: the client links' {@linkcode WireLayout}. */
export const quicWireLayout: WireLayout = (parts, reuse) => quicRecord(1, parts, reuse);

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

  send(message: LinkMessage): Promise<void> {
    const text = typeof message === "string";
    const body = text ? new TextEncoder().encode(message) : message;
    return this.#sendRecord(quicRecord(text ? 0 : 1, [body]), !text);
  }

  sendWire(wire: Uint8Array): Promise<void> {
    return this.#sendRecord(wire, true);
  }

  async #sendRecord(record: Uint8Array, bulk: boolean): Promise<void> {
    if (this.#isClosed) throw new PeerError("closed", "the QUIC link is closed");
    const writer = bulk && this.#bulk ? this.#bulk : this.#control;
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
    const onRecord = (kind: number, body: Uint8Array): string | undefined => {
      let m: LinkMessage;
      if (kind === 0) {
        try {
          m = new TextDecoder("utf-8", { fatal: true }).decode(body);
        } catch {
          return "text record is not UTF-8";
        }
      } else if (kind === 1) m = body;
      else return `unknown record kind ${kind}`;
      return this.#inbox.push(m) ? undefined : "peer overran the inbox";
    };
    try {
      // Deno's QUIC streams are byte streams: records are read straight into their own buffers.
      let byob: ReadableStreamBYOBReader | undefined;
      try {
        byob = stream.getReader({ mode: "byob" });
      } catch { /* not a byte stream: chunk by chunk */ }
      const bad = byob
        ? await readRecords(byob, this.maxMessageBytes, preamble, onRecord)
        : await readChunks(stream, new RecordReader(this.maxMessageBytes, preamble), onRecord);
      if (bad) return this.close(bad.code, bad.reason);
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

/** Feed `stream`'s chunks to `records` until it ends or a record is refused. */
async function readChunks(
  stream: ReadableStream<Uint8Array>,
  records: RecordReader,
  onRecord: (kind: number, body: Uint8Array) => string | undefined,
): Promise<RecordError | undefined> {
  const reader = stream.getReader();
  for (let guard = 0; guard < Number.MAX_SAFE_INTEGER; guard++) {
    const { value, done } = await reader.read();
    if (done) return undefined;
    const bad = records.push(value, onRecord);
    if (bad) return bad;
  }
  return undefined;
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

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
