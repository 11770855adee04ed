/**
 * The agent's WebSocket-over-TLS listener: Deno.serve with the node's certificate, upgrading
 * requests on {@linkcode WS_PATH} to links handed to `onLink`. Anything else gets 404.
 *
 * @module
 */
import { type BulkSink, Inbox, type Link, type LinkMessage } from "./link.ts";
import { WS_PATH } from "./ws_client.ts";

/** Options of {@linkcode serveWs}. */
export interface ServeWsOptions {
  /** Address to bind. */
  hostname: string;
  /** Port to bind; 0 picks a free one. */
  port: number;
  /** TLS certificate (PEM); omit both for plain ws:// (benchmark baseline only). */
  cert?: string;
  /** TLS private key (PEM). */
  key?: string;
  /** Receives each upgraded connection. */
  onLink: (link: Link) => void;
  /** Largest message a peer may send before the link is closed. @default 2 MiB */
  maxMessageBytes?: number;
  /** Seconds without a pong before the server drops a connection. @default 10 */
  idleTimeoutSeconds?: number;
  /** Receives listener-level errors. */
  onError?: (e: unknown) => void;
}

/** A running listener. */
export interface WsServer {
  /** The bound port. */
  port: number;
  /** Stop listening and close connections. */
  close(): Promise<void>;
}

/** Start listening. */
export function serveWs(opts: ServeWsOptions): Promise<WsServer> {
  const maxMessageBytes = opts.maxMessageBytes ?? 2 * 1024 * 1024;
  const links = new Set<ServerLink>();
  return new Promise((resolve, reject) => {
    try {
      const tlsOpts = opts.cert && opts.key ? { cert: opts.cert, key: opts.key } : {};
      const server = Deno.serve({
        hostname: opts.hostname,
        port: opts.port,
        ...tlsOpts,
        onListen: (addr) => {
          resolve({
            port: (addr as Deno.NetAddr).port,
            close: async () => {
              for (const l of links) l.close(1001, "agent shutting down");
              await server.shutdown();
            },
          });
        },
        onError: (e) => {
          opts.onError?.(e);
          return new Response("internal error", { status: 500 });
        },
      }, (req, info) => {
        const url = new URL(req.url);
        if (url.pathname !== WS_PATH || req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
          return new Response("not found", { status: 404 });
        }
        const remote = info.remoteAddr as Deno.NetAddr;
        const { socket, response } = Deno.upgradeWebSocket(req, {
          idleTimeout: opts.idleTimeoutSeconds ?? 10,
        });
        const link = new ServerLink(socket, `${remote.hostname}:${remote.port}`, maxMessageBytes);
        links.add(link);
        link.closed.then(() => links.delete(link));
        socket.addEventListener("open", () => opts.onLink(link), { once: true });
        return response;
      });
    } catch (e) {
      reject(e);
    }
  });
}

class ServerLink implements Link {
  readonly transport = "ws" as const;
  readonly closed: Promise<string>;
  #socket: WebSocket;
  #inbox = new Inbox();
  #resolveClosed!: (reason: string) => void;
  #maxMessageBytes: number;

  constructor(socket: WebSocket, readonly remoteAddress: string, maxMessageBytes: number) {
    this.#maxMessageBytes = maxMessageBytes;
    this.#socket = socket;
    socket.binaryType = "arraybuffer";
    this.closed = new Promise((r) => this.#resolveClosed = r);
    socket.onmessage = (e) => {
      const data = e.data;
      const size = typeof data === "string" ? data.length : (data as ArrayBuffer).byteLength;
      if (size > maxMessageBytes) {
        this.close(1009, `message of ${size} bytes exceeds ${maxMessageBytes}`);
        return;
      }
      const m: LinkMessage = typeof data === "string" ? data : new Uint8Array(data as ArrayBuffer);
      if (!this.#inbox.push(m)) this.close(1008, "peer overran the agent's inbox");
    };
    socket.onclose = (e) => this.#finish(`closed (${e.code}${e.reason ? ` ${e.reason}` : ""})`);
    socket.onerror = () => this.#finish("connection error");
  }

  async send(message: LinkMessage): Promise<void> {
    if (this.#socket.readyState !== WebSocket.OPEN) return;
    this.#socket.send(message as string | Uint8Array<ArrayBuffer>);
    // Deno's server socket has no drain event: poll the buffered amount, bounded in time.
    for (let i = 0; i < 6000 && this.#socket.bufferedAmount > 4 * 1024 * 1024; i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  get queued(): number {
    return this.#inbox.size;
  }

  bulkSink(): BulkSink {
    return {
      push: (frame) => {
        if (frame.length > this.#maxMessageBytes) return false;
        if (this.#inbox.push(frame)) return true;
        this.close(1008, "peer overran the agent's inbox");
        return false;
      },
      fail: (reason) => this.close(1011, reason),
      closed: this.closed,
    };
  }

  next(timeoutMs: number): Promise<LinkMessage | null> {
    return this.#inbox.next(timeoutMs);
  }

  close(code = 1000, reason = ""): void {
    try {
      if (this.#socket.readyState === WebSocket.OPEN) {
        this.#socket.close(code, reason.slice(0, 120));
      }
    } catch { /* already closing */ }
    this.#finish(`closed locally (${code}${reason ? ` ${reason}` : ""})`);
  }

  #finish(reason: string): void {
    this.#inbox.close();
    this.#resolveClosed(reason);
  }
}
