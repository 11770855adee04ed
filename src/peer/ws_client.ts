/**
 * A small RFC 6455 WebSocket client over a TLS connection pinned to the agent's certificate. Deno's
 * built-in WebSocket cannot pin a self-signed certificate (it verifies chains and host names), so
 * the client does the opening handshake and the framing itself (ws_codec.ts, ws_client_link.ts).
 *
 * Pinning: once the agent's certificate (PEM) is known, Deno's TLS verifies the connection against
 * it as the only trust anchor (as QUIC does); before that, node:tls shows the certificate it saw
 * and its SHA-256 fingerprint must equal the pinned one. Either way the signed handshake (auth.ts)
 * then binds that fingerprint.
 *
 * @example
 * ```ts
 * const link = await connectWsLink({ hostname: "10.0.0.2", port: 7070, timeoutMs: 5000 });
 * await link.send("hello");
 * ```
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { type ByteStream, openByteStream } from "./byte_stream.ts";
import { PeerError } from "./errors.ts";
import type { Link, WireLayout } from "./link.ts";
import { WsClientLink } from "./ws_client_link.ts";
import { Opcode, wsFrame } from "./ws_codec.ts";

/** The URL path agents serve the peer protocol on. */
export const WS_PATH = "/u2cm/v1";

/** Options of {@linkcode connectWsLink}. */
export interface WsConnectOptions {
  /** Agent host. */
  hostname: string;
  /** Agent port. */
  port: number;
  /** Connect and handshake timeout. @default 10000 */
  timeoutMs?: number;
  /** Refuse the connection unless the server certificate has this SHA-256 fingerprint (hex). */
  pinnedFingerprint?: string;
  /**
   * The pinned certificate itself (PEM, learnt on an earlier connection): verify against it with
   * Deno's TLS (the fast path). Needs `pinnedFingerprint`, its fingerprint.
   */
  pinnedCertPem?: string;
  /** Largest message accepted. @default 2 MiB */
  maxMessageBytes?: number;
  /** Milliseconds between keepalive pings. @default 1000 */
  pingIntervalMs?: number;
  /** Close the link after this long without receiving anything. @default 8000 */
  deadAfterMs?: number;
  /** Use plain TCP instead of TLS (only for the raw-throughput benchmark baseline). */
  insecurePlainText?: boolean;
}

/** Binary messages as masked client frames: the client links' {@linkcode WireLayout}. */
export const wsWireLayout: WireLayout = (parts, reuse) => wsFrame(Opcode.Binary, parts, reuse);

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** Open a WebSocket link to an agent; rejects with {@linkcode PeerError} on failure. */
export async function connectWsLink(opts: WsConnectOptions): Promise<Link> {
  const { hostname, port, timeoutMs = 10_000 } = opts;
  const pem = opts.pinnedFingerprint ? opts.pinnedCertPem : undefined;
  const stream = await openByteStream({
    hostname,
    port,
    timeoutMs,
    certPem: opts.insecurePlainText ? undefined : pem,
    plainText: opts.insecurePlainText,
  });
  try {
    // Deno's TLS verified the pinned certificate itself; node:tls shows what it saw.
    const fingerprint = opts.insecurePlainText
      ? undefined
      : pem
      ? opts.pinnedFingerprint
      : stream.certFingerprint;
    if (opts.pinnedFingerprint && fingerprint !== opts.pinnedFingerprint) {
      throw new PeerError(
        "pin-mismatch",
        `the TLS certificate of ${hostname}:${port} has fingerprint ${fingerprint}, but ` +
          `${opts.pinnedFingerprint} is pinned: someone else answers at that address, or the peer ` +
          "was re-initialised (re-pin it with 'u2cm peer add --replace')",
      );
    }
    // Chunks that arrive after the handshake answer and before the link listens (the agent's
    // first message, often) are kept here, in order, for the link: never dropped.
    const late: Uint8Array[] = [];
    const leftover = await handshake(stream, hostname, port, timeoutMs, late);
    return new WsClientLink(stream, {
      remoteCertFingerprint: fingerprint,
      remoteCertPem: opts.insecurePlainText ? undefined : pem ?? stream.certPem,
      remoteAddress: `${hostname}:${port}`,
      maxMessageBytes: opts.maxMessageBytes ?? 2 * 1024 * 1024,
      pingIntervalMs: opts.pingIntervalMs ?? 1000,
      deadAfterMs: opts.deadAfterMs ?? 8000,
      leftover,
      late,
    });
  } catch (e) {
    stream.destroy();
    throw e;
  }
}

async function handshake(
  stream: ByteStream,
  hostname: string,
  port: number,
  timeoutMs: number,
  late: Uint8Array[],
): Promise<Uint8Array> {
  const key = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64");
  const host = hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
  const response = await new Promise<Buffer>((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let finished = false;
    const timer = setTimeout(
      () => done(new Error(`no handshake answer in ${timeoutMs} ms`)),
      timeoutMs,
    );
    const done = (err?: Error) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      if (err) reject(new PeerError("unreachable", `WebSocket handshake failed: ${err.message}`));
      else resolve(buf);
    };
    stream.listen({
      data: (chunk) => {
        if (finished) return void late.push(chunk);
        buf = Buffer.concat([buf, chunk]);
        if (buf.indexOf("\r\n\r\n") >= 0) done();
        else if (buf.length > 16384) done(new Error("handshake answer too long"));
      },
      closed: (why) => done(new Error(`connection closed during the handshake (${why})`)),
    });
    stream.write(new TextEncoder().encode(
      `GET ${WS_PATH} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    ));
  });
  const end = response.indexOf("\r\n\r\n");
  const head = response.subarray(0, end).toString("latin1").split("\r\n");
  if (!/^HTTP\/1\.1 101\b/.test(head[0] ?? "")) {
    throw new PeerError("unreachable", `agent refused the WebSocket upgrade: ${head[0]}`);
  }
  const accept = head.find((l) => /^sec-websocket-accept:/i.test(l))?.split(":")[1]?.trim();
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-1", new TextEncoder().encode(key + GUID)),
  );
  if (accept !== Buffer.from(digest).toString("base64")) {
    throw new PeerError("protocol", "WebSocket handshake answer has a wrong Sec-WebSocket-Accept");
  }
  return new Uint8Array(response.subarray(end + 4));
}
