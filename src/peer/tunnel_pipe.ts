/**
 * One TCP connection carried through a tunnel (tunnel.ts): bytes read from the local socket go to
 * the peer as numbered, integrity-hashed tunnel frames; the peer's frames are written to the local
 * socket in order. Each direction has a window: a sender keeps at most `windowBytes` unacknowledged
 * bytes out, the receiver acknowledges what it wrote to its socket, and a peer that overruns the
 * window (or skips a chunk) gets the connection reset, so memory stays bounded whatever it sends.
 * A local end-of-file travels as FLAG_FIN and half-closes the other side's socket.
 *
 * @example
 * ```ts
 * const pipe = new TunnelPipe({ conn: 1, stream: 1, socket: Deno.connect({ port }), send });
 * pipe.start();
 * ```
 *
 * @module
 */
import { encodeTunnel, MAX_TUNNEL_CHUNK, type TunnelFrame } from "./frames.ts";
import { Signal } from "./signal.ts";

/** Default window per direction. */
export const TUNNEL_WINDOW_BYTES = 4 * 1024 * 1024;

/** How a pipe talks to its peer. */
export interface PipeSender {
  /** Send an encoded tunnel frame; false when the link is down. */
  frame(bytes: Uint8Array): Promise<boolean>;
  /** Acknowledge `bytes` written to the local socket so far; false when the link is down. */
  ack(bytes: number): Promise<boolean>;
  /** Tell the peer the connection is reset. */
  reset(reason: string): Promise<boolean>;
}

/** Options of a {@linkcode TunnelPipe}. */
export interface TunnelPipeOptions {
  /** The connection's id within the tunnel. */
  conn: number;
  /** The migration's stream number (frames carry it). */
  stream: () => number;
  /** The local socket (or its connect in progress). */
  socket: Promise<Deno.Conn>;
  /** The peer. */
  send: PipeSender;
  /** Window per direction. @default TUNNEL_WINDOW_BYTES */
  windowBytes?: number;
  /** Called once when the connection is finished or reset. */
  onEnd?: (reason: string, clean: boolean) => void;
}

/** See the module doc. */
export class TunnelPipe {
  /** Bytes read locally and sent. */
  bytesOut = 0;
  /** Bytes received and written locally. */
  bytesIn = 0;
  readonly conn: number;
  #opts: TunnelPipeOptions;
  #window: number;
  #socket: Deno.Conn | undefined;
  #outSeq = 0;
  #acked = 0;
  #inSeq = 0;
  #pendingIn = 0;
  #ackedIn = 0;
  #writes: Promise<void>;
  #changed = new Signal();
  #sentFin = false;
  #gotFin = false;
  #wroteFin = false;
  #ended = false;

  /** @param opts see {@linkcode TunnelPipeOptions} */
  constructor(opts: TunnelPipeOptions) {
    this.#opts = opts;
    this.conn = opts.conn;
    this.#window = opts.windowBytes ?? TUNNEL_WINDOW_BYTES;
    this.#writes = opts.socket.then((s) => {
      this.#socket = s;
      if (this.#ended) s.close();
    }, (e) => this.reset(`cannot connect: ${(e as Error).message}`));
  }

  /** Whether the connection is over. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Start carrying the local socket's bytes to the peer. */
  start(): void {
    this.#pump().catch((e) => this.reset(`local read failed: ${(e as Error).message}`));
  }

  /** A frame from the peer: write its bytes to the local socket, in order. */
  onFrame(f: TunnelFrame): void {
    if (this.#ended) return;
    if (f.seq !== this.#inSeq + 1 || this.#gotFin) {
      this.reset(
        `tunnel chunk ${f.seq} arrived after ${this.#inSeq}${this.#gotFin ? " and FIN" : ""}`,
      );
      return;
    }
    this.#inSeq = f.seq;
    this.#pendingIn += f.data.length;
    if (this.#pendingIn > this.#window) {
      this.reset(`the peer overran the tunnel window (${this.#pendingIn} bytes pending)`);
      return;
    }
    if (f.fin) this.#gotFin = true;
    const data = f.data, fin = f.fin;
    this.#writes = this.#writes.then(() => this.#write(data, fin)).catch((e) =>
      this.reset(`local write failed: ${(e as Error).message}`)
    );
  }

  /** The peer wrote `bytes` of ours to its socket. */
  onAck(bytes: number): void {
    if (bytes > this.bytesOut || bytes < this.#acked) {
      this.reset(`the peer acknowledged ${bytes} bytes of ${this.bytesOut} sent`);
      return;
    }
    this.#acked = bytes;
    this.#changed.notify();
  }

  /** Reset the connection (tell the peer unless it told us). */
  reset(reason: string, fromPeer = false): void {
    if (this.#ended) return;
    if (!fromPeer) this.#opts.send.reset(reason.slice(0, 1000)).catch(() => {});
    this.#end(reason, false);
  }

  async #pump(): Promise<void> {
    await this.#opts.socket.catch(() => undefined);
    for (let guard = 0; guard < Number.MAX_SAFE_INTEGER && !this.#ended; guard++) {
      while (!this.#ended && this.bytesOut - this.#acked >= this.#window) {
        await this.#changed.wait(1000);
      }
      const socket = this.#socket;
      if (this.#ended || !socket) return;
      const buf = new Uint8Array(MAX_TUNNEL_CHUNK);
      const n = await socket.read(buf);
      if (this.#ended) return;
      const fin = n === null;
      const data = fin ? new Uint8Array(0) : buf.subarray(0, n);
      const frame = encodeTunnel({
        stream: this.#opts.stream(),
        seq: ++this.#outSeq,
        conn: this.conn,
        data,
        fin,
      });
      this.bytesOut += data.length;
      if (!await this.#opts.send.frame(frame)) return this.reset("the link is down");
      if (fin) {
        this.#sentFin = true;
        return this.#maybeDone();
      }
    }
  }

  async #write(data: Uint8Array, fin: boolean): Promise<void> {
    const socket = this.#socket;
    if (this.#ended || !socket) return;
    for (let o = 0; o < data.length;) o += await socket.write(data.subarray(o));
    this.#pendingIn -= data.length;
    this.bytesIn += data.length;
    // Acknowledge in steps of a quarter window (the sender only waits once its window is full).
    if (this.bytesIn - this.#ackedIn >= this.#window / 4 || fin) {
      this.#ackedIn = this.bytesIn;
      if (!await this.#opts.send.ack(this.bytesIn)) return this.reset("the link is down");
    }
    if (fin) {
      await (socket as Deno.TcpConn).closeWrite?.().catch(() => {});
      this.#wroteFin = true;
      this.#maybeDone();
    }
  }

  #maybeDone(): void {
    if (this.#sentFin && this.#wroteFin) this.#end("finished", true);
  }

  #end(reason: string, clean: boolean): void {
    if (this.#ended) return;
    this.#ended = true;
    try {
      this.#socket?.close();
    } catch { /* already closed */ }
    this.#changed.notify();
    this.#opts.onEnd?.(reason, clean);
  }
}
