/**
 * The client's WebSocket link over a {@linkcode ByteStream}: masked frames out (laid out by
 * ws_codec.ts, or given ready-made through `sendWire`), server frames in through the parser into
 * the bounded inbox, keepalive pings, and a dead-peer timer.
 *
 * @example
 * ```ts
 * const link = await connectWsLink({ hostname: "10.0.0.2", port: 7070 }); // a WsClientLink
 * ```
 *
 * @module
 */
import type { ByteStream } from "./byte_stream.ts";
import { PeerError } from "./errors.ts";
import { Inbox, type Link, type LinkMessage } from "./link.ts";
import { FrameParser, Opcode, wsFrame } from "./ws_codec.ts";

/** Bytes queued in the stream before `send` waits for it to drain. */
const SEND_BUFFER_BYTES = 8 * 1024 * 1024;

/** Settings of a {@linkcode WsClientLink}. */
export interface WsClientLinkOptions {
  /** The certificate fingerprint this connection is bound to. */
  remoteCertFingerprint: string | undefined;
  /** The certificate (PEM), when known. */
  remoteCertPem: string | undefined;
  /** For logs. */
  remoteAddress: string;
  /** Largest message accepted. */
  maxMessageBytes: number;
  /** Milliseconds between keepalive pings. */
  pingIntervalMs: number;
  /** Close after this long without receiving anything. */
  deadAfterMs: number;
  /** Bytes that arrived right behind the handshake answer. */
  leftover: Uint8Array;
  /**
   * Chunks that arrived after the handshake answer was read, before this link listened (taken
   * over, in order, after `leftover`).
   */
  late?: Uint8Array[];
}

/** A WebSocket link of the client (see the module doc). */
export class WsClientLink implements Link {
  readonly transport = "ws" as const;
  readonly closed: Promise<string>;
  readonly remoteCertFingerprint: string | undefined;
  readonly remoteCertPem: string | undefined;
  readonly remoteAddress: string;
  #stream: ByteStream;
  #inbox = new Inbox();
  #resolveClosed!: (reason: string) => void;
  #isClosed = false;
  #parser: FrameParser;
  #lastHeard = Date.now();
  #pinger: ReturnType<typeof setInterval>;

  /**
   * @param stream the connected stream, right after the opening handshake
   * @param opts see {@linkcode WsClientLinkOptions}
   */
  constructor(stream: ByteStream, opts: WsClientLinkOptions) {
    this.#stream = stream;
    this.remoteCertFingerprint = opts.remoteCertFingerprint;
    this.remoteCertPem = opts.remoteCertPem;
    this.remoteAddress = opts.remoteAddress;
    this.closed = new Promise((r) => this.#resolveClosed = r);
    this.#parser = new FrameParser(opts.maxMessageBytes, {
      message: (m) => {
        if (!this.#inbox.push(m)) this.#fail("inbox overflow");
      },
      ping: (p) => this.#write(wsFrame(Opcode.Pong, [p])),
      close: () => this.#fail("closed by the agent"),
      error: (why) => this.#fail(why),
    });
    stream.listen({
      data: (chunk) => {
        this.#lastHeard = Date.now();
        this.#parser.push(chunk);
      },
      closed: (why) => this.#fail(why),
    });
    const deadAfter = opts.deadAfterMs;
    this.#pinger = setInterval(() => {
      if (Date.now() - this.#lastHeard > deadAfter) {
        this.#fail(`nothing heard from the agent for ${deadAfter} ms`);
      } else this.#write(wsFrame(Opcode.Ping, []));
    }, opts.pingIntervalMs);
    if (opts.leftover.length) this.#parser.push(opts.leftover);
    for (const chunk of opts.late?.splice(0) ?? []) this.#parser.push(chunk);
  }

  send(message: LinkMessage): Promise<void> {
    if (typeof message === "string") {
      return this.sendWire(wsFrame(Opcode.Text, [new TextEncoder().encode(message)]));
    }
    return this.sendWire(wsFrame(Opcode.Binary, [message]));
  }

  async sendWire(wire: Uint8Array): Promise<void> {
    if (this.#isClosed) throw new PeerError("closed", "the link to the agent is closed");
    this.#write(wire);
    // Let a few frames queue in the stream, then wait for it to drain.
    if (this.#stream.queued > SEND_BUFFER_BYTES) await this.#stream.drained(SEND_BUFFER_BYTES);
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
    this.#write(wsFrame(Opcode.Close, [body]));
    this.#stream.end();
    this.#fail(`closed locally${reason ? `: ${reason}` : ""}`, false);
  }

  #write(wire: Uint8Array): void {
    if (!this.#isClosed) this.#stream.write(wire);
  }

  #fail(reason: string, destroy = true): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    clearInterval(this.#pinger);
    this.#inbox.close();
    if (destroy) this.#stream.destroy();
    this.#resolveClosed(reason);
  }
}
