/**
 * A link: one message-oriented connection between a client and an agent, whatever the transport
 * (WebSocket over TLS, QUIC). Messages are text (control) or bytes (frames). Incoming messages wait
 * in a bounded inbox that the session reads in order.
 *
 * @module
 */
import { PeerError } from "./errors.ts";

/** One message: control text or a binary frame. */
export type LinkMessage = string | Uint8Array;

/** A connection carrying messages both ways. */
export interface Link {
  /** Queue one message; resolves when the transport can take more (backpressure). */
  send(message: LinkMessage): Promise<void>;
  /** The next message, or null once the link is closed. Throws {@linkcode PeerError} "timeout". */
  next(timeoutMs: number): Promise<LinkMessage | null>;
  /** Messages received and not yet read. */
  readonly queued: number;
  /** Close the link (idempotent). */
  close(code?: number, reason?: string): void;
  /** Resolves once closed, with the reason. */
  readonly closed: Promise<string>;
  /** SHA-256 of the remote TLS certificate as seen on this connection (client side). */
  readonly remoteCertFingerprint?: string;
  /** The remote TLS certificate (PEM) as seen on this connection, when the transport shows it. */
  readonly remoteCertPem?: string;
  /** Transport name, for logs. */
  readonly transport: "ws" | "quic";
  /** Remote address, for logs. */
  readonly remoteAddress: string;
  /**
   * Send a binary message already laid out for this transport's wire by its {@linkcode WireLayout}
   * (client links only). The link keeps `wire` until written; the caller may reuse its buffer once
   * the peer acknowledged the message.
   */
  sendWire?(wire: Uint8Array): Promise<void>;
  /**
   * Where a sealed bulk stream attached to this link delivers its frames (agent links of the
   * WebSocket transport; bulk_server.ts).
   */
  bulkSink?(): BulkSink;
}

/** The agent session's side of one sealed bulk stream (bulk_server.ts). */
export interface BulkSink {
  /** A binary frame arrived; false when the inbox is full (the stream is dropped). */
  push(frame: Uint8Array): boolean;
  /** The stream ended or failed after it attached (the session closes its link). */
  fail(reason: string): void;
  /** Settles when the session's link closed (the bulk connection is then closed too). */
  readonly closed: Promise<unknown>;
}

/**
 * Lays a binary message (the concatenation of `parts`) out as the bytes one transport puts on its
 * wire (a masked WebSocket frame, a QUIC record), writing into `reuse` when it is large enough.
 * Such bytes are valid on any link of that transport, so they can be kept for a resend.
 */
export type WireLayout = (parts: Uint8Array[], reuse?: ArrayBuffer) => Uint8Array;

/** Limits of an {@linkcode Inbox}. */
export interface InboxLimits {
  /** Most messages waiting. @default 4096 */
  maxMessages?: number;
  /** Most bytes waiting (twice the default window of a migration). @default 128 MiB */
  maxBytes?: number;
}

/**
 * The receiving half shared by the transports: a bounded FIFO of messages with timed reads. When a
 * peer overruns it the inbox reports an overflow so the transport closes the connection.
 */
export class Inbox {
  #queue: LinkMessage[] = [];
  #head = 0;
  #bytes = 0;
  #waiter: ((m: LinkMessage | null) => void) | undefined;
  #closed = false;
  #maxMessages: number;
  #maxBytes: number;

  /** @param limits bounds on waiting messages */
  constructor(limits: InboxLimits = {}) {
    this.#maxMessages = limits.maxMessages ?? 4096;
    this.#maxBytes = limits.maxBytes ?? 128 * 1024 * 1024;
  }

  /** Add a message; false when the inbox is over its bounds (caller closes the link). */
  push(message: LinkMessage): boolean {
    if (this.#closed) return true;
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = undefined;
      w(message);
      return true;
    }
    const size = typeof message === "string" ? message.length : message.length;
    if (
      this.#queue.length - this.#head >= this.#maxMessages || this.#bytes + size > this.#maxBytes
    ) {
      return false;
    }
    this.#queue.push(message);
    this.#bytes += size;
    return true;
  }

  /** Messages waiting. */
  get size(): number {
    return this.#queue.length - this.#head;
  }

  /** Mark closed: pending and later reads return null once drained. */
  close(): void {
    this.#closed = true;
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = undefined;
      w(null);
    }
  }

  /** The next message, null when closed and drained; throws PeerError "timeout". */
  next(timeoutMs: number): Promise<LinkMessage | null> {
    if (this.#head < this.#queue.length) {
      const m = this.#queue[this.#head];
      this.#queue[this.#head++] = "";
      this.#bytes -= typeof m === "string" ? m.length : m.length;
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
      return Promise.resolve(m);
    }
    if (this.#closed) return Promise.resolve(null);
    if (this.#waiter) return Promise.reject(new Error("Inbox.next called concurrently"));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiter = undefined;
        reject(new PeerError("timeout", `no message within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiter = (m) => {
        clearTimeout(timer);
        resolve(m);
      };
    });
  }
}
