/**
 * A small RFC 6455 WebSocket client over a TLS socket whose certificate is checked against a pinned
 * SHA-256 fingerprint on the live connection. Deno's built-in WebSocket cannot pin a self-signed
 * certificate by fingerprint (it verifies chains and host names), so the client does the opening
 * handshake and the framing itself: masked frames out, fragmented frames in, ping/pong, close.
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
import tls from "node:tls";
import { PeerError } from "./errors.ts";
import { Inbox, type Link, type LinkMessage } from "./link.ts";

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
  /** Largest message accepted. @default 2 MiB */
  maxMessageBytes?: number;
  /** Milliseconds between keepalive pings. @default 1000 */
  pingIntervalMs?: number;
  /** Close the link after this long without receiving anything. @default 8000 */
  deadAfterMs?: number;
  /** Use plain TCP instead of TLS (only for the raw-throughput benchmark baseline). */
  insecurePlainText?: boolean;
}

/** Bytes queued in the socket before `send` waits for it to drain. */
const SEND_BUFFER_BYTES = 8 * 1024 * 1024;

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** Open a WebSocket link to an agent; rejects with {@linkcode PeerError} on failure. */
export async function connectWsLink(opts: WsConnectOptions): Promise<Link> {
  const { hostname, port, timeoutMs = 10_000 } = opts;
  const socket = await openSocket(opts, timeoutMs);
  try {
    const fingerprint = opts.insecurePlainText
      ? undefined
      : peerFingerprint(socket as tls.TLSSocket);
    if (opts.pinnedFingerprint && fingerprint !== opts.pinnedFingerprint) {
      throw new PeerError(
        "pin-mismatch",
        `the TLS certificate of ${hostname}:${port} has fingerprint ${fingerprint}, but ` +
          `${opts.pinnedFingerprint} is pinned: someone else answers at that address, or the peer ` +
          "was re-initialised (re-pin it with 'u2cm peer add --replace')",
      );
    }
    const leftover = await handshake(socket, hostname, port, timeoutMs);
    const link = new WsClientLink(socket, fingerprint, `${hostname}:${port}`, opts, leftover);
    link.remoteCertPem = opts.insecurePlainText ? undefined : peerCertPem(socket);
    return link;
  } catch (e) {
    socket.destroy();
    throw e;
  }
}

type Socket = tls.TLSSocket | import("node:net").Socket;

async function openSocket(opts: WsConnectOptions, timeoutMs: number): Promise<Socket> {
  const { hostname, port } = opts;
  const net = await import("node:net");
  return await new Promise<Socket>((resolve, reject) => {
    const fail = (e: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(
        new PeerError("unreachable", `cannot connect to ${hostname}:${port}: ${e.message}`),
      );
    };
    const timer = setTimeout(() => fail(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    const ready = () => {
      clearTimeout(timer);
      socket.off("error", fail);
      resolve(socket);
    };
    // The certificate is self-signed: it is checked by fingerprint (and through the signed
    // handshake transcript), not by a CA chain.
    const socket: Socket = opts.insecurePlainText
      ? net.connect({ host: hostname, port }, ready)
      : tls.connect(
        { host: hostname, port, rejectUnauthorized: false, servername: "u2cm-agent" },
        ready,
      );
    socket.once("error", fail);
  });
}

function peerFingerprint(socket: tls.TLSSocket): string {
  const cert = socket.getPeerCertificate(false);
  const fp = cert?.fingerprint256;
  if (!fp) throw new PeerError("pin-mismatch", "the agent presented no TLS certificate");
  return fp.replaceAll(":", "").toLowerCase();
}

function peerCertPem(socket: Socket): string | undefined {
  const raw = (socket as tls.TLSSocket).getPeerCertificate?.(true)?.raw;
  if (!raw) return undefined;
  const b64 = Buffer.from(raw).toString("base64").match(/.{1,64}/g)!.join("\n");
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

async function handshake(
  socket: Socket,
  hostname: string,
  port: number,
  timeoutMs: number,
): Promise<Uint8Array> {
  const key = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64");
  const host = hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
  socket.write(
    `GET ${WS_PATH} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  const response = await new Promise<Buffer>((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(
      () => done(new Error(`no handshake answer in ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.indexOf("\r\n\r\n") >= 0) done();
      else if (buf.length > 16384) done(new Error("handshake answer too long"));
    };
    const onEnd = () => done(new Error("connection closed during the handshake"));
    const done = (err?: Error) => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("error", done);
      if (err) reject(new PeerError("unreachable", `WebSocket handshake failed: ${err.message}`));
      else resolve(buf);
    };
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("error", done);
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

class WsClientLink implements Link {
  readonly transport = "ws" as const;
  /** The agent's certificate (PEM) as presented on this connection. */
  remoteCertPem: string | undefined;
  readonly closed: Promise<string>;
  #socket: Socket;
  #inbox = new Inbox();
  #resolveClosed!: (reason: string) => void;
  #isClosed = false;
  #parser: FrameParser;
  #lastHeard = Date.now();
  #pinger: ReturnType<typeof setInterval>;
  #drainWaiters: (() => void)[] = [];

  constructor(
    socket: Socket,
    readonly remoteCertFingerprint: string | undefined,
    readonly remoteAddress: string,
    opts: WsConnectOptions,
    leftover: Uint8Array,
  ) {
    this.#socket = socket;
    this.closed = new Promise((r) => this.#resolveClosed = r);
    this.#parser = new FrameParser(opts.maxMessageBytes ?? 2 * 1024 * 1024, {
      message: (m) => {
        if (!this.#inbox.push(m)) this.#fail("inbox overflow");
      },
      ping: (p) => this.#writeFrame(0xA, p),
      close: () => this.#fail("closed by the agent"),
      error: (why) => this.#fail(why),
    });
    socket.setNoDelay?.(true);
    socket.on("data", (chunk: Buffer) => {
      this.#lastHeard = Date.now();
      this.#parser.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    });
    socket.on("drain", () => {
      const waiters = this.#drainWaiters;
      this.#drainWaiters = [];
      for (const w of waiters) w();
    });
    socket.on("close", () => this.#fail("connection closed"));
    socket.on("error", (e: Error) => this.#fail(`connection error: ${e.message}`));
    const deadAfter = opts.deadAfterMs ?? 8000;
    this.#pinger = setInterval(() => {
      if (Date.now() - this.#lastHeard > deadAfter) {
        this.#fail(`nothing heard from the agent for ${deadAfter} ms`);
      } else this.#writeFrame(0x9, new Uint8Array(0));
    }, opts.pingIntervalMs ?? 1000);
    if (leftover.length) this.#parser.push(leftover);
  }

  async send(message: LinkMessage): Promise<void> {
    if (this.#isClosed) throw new PeerError("closed", "the link to the agent is closed");
    if (typeof message === "string") this.#writeFrame(0x1, new TextEncoder().encode(message));
    else this.#writeFrame(0x2, message);
    // Let a few frames queue in the socket (node's own high-water mark is only 16 KiB), then wait.
    if (this.#socket.writableLength > SEND_BUFFER_BYTES) {
      await new Promise<void>((resolve) => {
        this.#drainWaiters.push(resolve);
        this.closed.then(() => resolve());
      });
    }
  }

  get queued(): number {
    return this.#inbox.size;
  }

  next(timeoutMs: number): Promise<LinkMessage | null> {
    return this.#inbox.next(timeoutMs);
  }

  close(code = 1000, reason = ""): void {
    if (this.#isClosed) return;
    const body = new Uint8Array(2 + Math.min(reason.length, 120));
    new DataView(body.buffer).setUint16(0, code);
    body.set(new TextEncoder().encode(reason.slice(0, 120)).subarray(0, body.length - 2), 2);
    this.#writeFrame(0x8, body);
    this.#socket.end();
    this.#fail(`closed locally${reason ? `: ${reason}` : ""}`);
  }

  #fail(reason: string): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    clearInterval(this.#pinger);
    this.#inbox.close();
    this.#socket.destroy();
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
    this.#resolveClosed(reason);
  }

  /** Write one masked frame; false when the socket's buffer is full. */
  #writeFrame(opcode: number, payload: Uint8Array): boolean {
    if (this.#socket.destroyed) return true;
    const n = payload.length;
    const headLen = n < 126 ? 2 : n < 65536 ? 4 : 10;
    const head = new Uint8Array(headLen);
    const view = new DataView(head.buffer);
    head[0] = 0x80 | opcode;
    if (n < 126) head[1] = 0x80 | n;
    else if (n < 65536) {
      head[1] = 0x80 | 126;
      view.setUint16(2, n);
    } else {
      head[1] = 0x80 | 127;
      view.setUint32(2, Math.floor(n / 0x1_0000_0000));
      view.setUint32(6, n >>> 0);
    }
    // Lay the payload at byte 16 of the buffer so it is word-aligned for masking.
    const start = 16 - headLen - 4;
    const frame = new Uint8Array(new ArrayBuffer(16 + n), start, headLen + 4 + n);
    frame.set(head.subarray(0, headLen));
    const mask = frame.subarray(headLen, headLen + 4);
    crypto.getRandomValues(mask);
    maskInto(payload, mask, frame.subarray(headLen + 4));
    const ok = this.#socket.write(frame);
    return ok;
  }
}

/** XOR `payload` with the 4-byte `mask` into `out` (same length), a word at a time. */
export function maskInto(payload: Uint8Array, mask: Uint8Array, out: Uint8Array): void {
  const n = payload.length;
  let i = 0;
  if (payload.byteOffset % 4 === 0 && out.byteOffset % 4 === 0) {
    const words = n >>> 2;
    const src = new Uint32Array(payload.buffer, payload.byteOffset, words);
    const dst = new Uint32Array(out.buffer, out.byteOffset, words);
    const m = mask[0] | (mask[1] << 8) | (mask[2] << 16) | (mask[3] << 24);
    for (let w = 0; w < words; w++) dst[w] = src[w] ^ m;
    i = words * 4;
  }
  for (; i < n; i++) out[i] = payload[i] ^ mask[i & 3];
}

interface ParserEvents {
  message(m: LinkMessage): void;
  ping(payload: Uint8Array): void;
  close(): void;
  error(why: string): void;
}

/** Incremental parser of unmasked server frames, reassembling fragmented messages. */
class FrameParser {
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #fragments: Uint8Array[] = [];
  #fragmentBytes = 0;
  #fragmentOpcode = 0;
  #failed = false;

  constructor(readonly maxMessageBytes: number, readonly events: ParserEvents) {}

  push(chunk: Uint8Array): void {
    if (this.#failed) return;
    this.#pending.push(chunk.slice());
    this.#pendingBytes += chunk.length;
    for (let guard = 0; guard < 1_000_000 && !this.#failed; guard++) {
      if (!this.#parseOne()) break;
    }
  }

  #parseOne(): boolean {
    if (this.#pendingBytes < 2) return false;
    const head = this.#peek(Math.min(this.#pendingBytes, 14));
    const fin = (head[0] & 0x80) !== 0;
    const opcode = head[0] & 0x0f;
    if ((head[1] & 0x80) !== 0 || (head[0] & 0x70) !== 0) return this.#error("bad frame bits");
    let len = head[1] & 0x7f;
    let headLen = 2;
    if (len === 126) {
      if (head.length < 4) return false;
      len = (head[2] << 8) | head[3];
      headLen = 4;
    } else if (len === 127) {
      if (head.length < 10) return false;
      const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
      len = view.getUint32(2) * 0x1_0000_0000 + view.getUint32(6);
      headLen = 10;
    }
    if (len > this.maxMessageBytes) return this.#error(`frame of ${len} bytes is too large`);
    if (this.#pendingBytes < headLen + len) return false;
    this.#take(headLen);
    const payload = this.#take(len);
    switch (opcode) {
      case 0x0:
      case 0x1:
      case 0x2: {
        if (opcode !== 0 && this.#fragments.length) return this.#error("interleaved message");
        if (opcode === 0 && !this.#fragments.length) return this.#error("stray continuation");
        if (opcode !== 0) this.#fragmentOpcode = opcode;
        if (fin && !this.#fragments.length) {
          this.#emit(opcode, payload);
          return true;
        }
        this.#fragments.push(payload);
        this.#fragmentBytes += payload.length;
        if (this.#fragmentBytes > this.maxMessageBytes) return this.#error("message too large");
        if (fin) {
          const whole = concat(this.#fragments, this.#fragmentBytes);
          this.#fragments = [];
          this.#fragmentBytes = 0;
          this.#emit(this.#fragmentOpcode, whole);
        }
        return true;
      }
      case 0x8:
        this.events.close();
        return false;
      case 0x9:
        this.events.ping(payload);
        return true;
      case 0xA:
        return true;
      default:
        return this.#error(`unknown opcode ${opcode}`);
    }
  }

  #emit(opcode: number, payload: Uint8Array): void {
    if (opcode === 0x1) {
      let text: string;
      try {
        text = new TextDecoder("utf-8", { fatal: true }).decode(payload);
      } catch {
        this.#error("text message is not UTF-8");
        return;
      }
      this.events.message(text);
    } else this.events.message(payload);
  }

  #error(why: string): false {
    this.#failed = true;
    this.events.error(`malformed WebSocket stream: ${why}`);
    return false;
  }

  #peek(n: number): Uint8Array {
    if (this.#pending[0].length >= n) return this.#pending[0].subarray(0, n);
    const out = new Uint8Array(n);
    let o = 0;
    for (const c of this.#pending) {
      const k = Math.min(c.length, n - o);
      out.set(c.subarray(0, k), o);
      o += k;
      if (o === n) break;
    }
    return out;
  }

  #take(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0);
    this.#pendingBytes -= n;
    const first = this.#pending[0];
    if (first.length > n) {
      this.#pending[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    if (first.length === n) {
      this.#pending.shift();
      return first;
    }
    const out = new Uint8Array(n);
    let o = 0;
    while (o < n) {
      const c = this.#pending[0];
      const k = Math.min(c.length, n - o);
      out.set(c.subarray(0, k), o);
      o += k;
      if (k === c.length) this.#pending.shift();
      else this.#pending[0] = c.subarray(k);
    }
    return out;
  }
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
