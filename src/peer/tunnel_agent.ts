/**
 * The destination's side of a tunnel (see tunnel.ts): a listener on 127.0.0.1 at an ephemeral port;
 * each connection a local program makes (CRIU's lazy-pages daemon) is announced to the source
 * with `tunnelOpen` and carried by a {@linkcode TunnelPipe}. At most {@linkcode MAX_TUNNEL_CONNS}
 * connections at once; more are refused.
 *
 * @example
 * ```ts
 * const tunnel = await acceptTunnel({ migrationId: "m1", stream: () => 1, send: (m) => link.send(m) });
 * // run `criu lazy-pages --page-server --address 127.0.0.1 --port ${tunnel.localPort}`
 * ```
 *
 * @module
 */
import type { TunnelFrame } from "./frames.ts";
import type { LinkMessage } from "./link.ts";
import { encodeControl } from "./protocol.ts";
import { MAX_TUNNEL_CONNS, type Tunnel, type TunnelStats } from "./tunnel.ts";
import { TunnelPipe } from "./tunnel_pipe.ts";

/** Options of {@linkcode acceptTunnel}. */
export interface AcceptTunnelOptions {
  /** The migration. */
  migrationId: string;
  /** Its stream number on the source's current link. */
  stream: () => number;
  /** Send on the source's current link (rejects when it is down). */
  send: (m: LinkMessage) => Promise<void>;
  /** Closes the tunnel when aborted. */
  signal?: AbortSignal;
}

/** An agent-side tunnel: a {@linkcode Tunnel} plus the entry points the session feeds. */
export interface AgentTunnel extends Tunnel {
  /** A data frame from the source. */
  onFrame(f: TunnelFrame): void;
  /** The source wrote `bytes` of connection `conn`. */
  onAck(conn: number, bytes: number): void;
  /** The source reset connection `conn`. */
  onClose(conn: number, reason: string): void;
}

/** Listen on 127.0.0.1 (ephemeral port) and carry each connection to the source. */
export function acceptTunnel(opts: AcceptTunnelOptions): Promise<AgentTunnel> {
  opts.signal?.throwIfAborted();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const localPort = (listener.addr as Deno.NetAddr).port;
  const pipes = new Map<number, TunnelPipe>();
  const ended = { bytesIn: 0, bytesOut: 0 };
  const idleWaiters = new Set<() => void>();
  let connections = 0;
  let closed = false;
  const sendOk = (m: LinkMessage) => opts.send(m).then(() => true, () => false);
  const control = (m: Parameters<typeof encodeControl>[0]) => sendOk(encodeControl(m));
  (async () => {
    for await (const socket of listener) {
      if (closed || pipes.size >= MAX_TUNNEL_CONNS) {
        socket.close();
        continue;
      }
      const conn = ++connections;
      socket.setNoDelay(true);
      const pipe: TunnelPipe = new TunnelPipe({
        conn,
        stream: opts.stream,
        socket: Promise.resolve(socket),
        send: {
          frame: sendOk,
          ack: (bytes) =>
            control({ type: "tunnelAck", migrationId: opts.migrationId, conn, bytes }),
          reset: (reason) =>
            control({ type: "tunnelClose", migrationId: opts.migrationId, conn, reason }),
        },
        onEnd: () => {
          pipes.delete(conn);
          ended.bytesIn += pipe.bytesIn;
          ended.bytesOut += pipe.bytesOut;
          if (pipes.size === 0) { for (const w of [...idleWaiters]) w(); }
        },
      });
      pipes.set(conn, pipe);
      // Announce first: the source sets up its end before our bytes arrive (they queue there).
      if (!await control({ type: "tunnelOpen", migrationId: opts.migrationId, conn })) {
        pipe.reset("the link to the source is down", true);
        continue;
      }
      pipe.start();
    }
  })().catch(() => {});
  const close = () => {
    if (closed) return Promise.resolve();
    closed = true;
    try {
      listener.close();
    } catch { /* already closed */ }
    for (const p of [...pipes.values()]) p.reset("tunnel closed");
    return Promise.resolve();
  };
  opts.signal?.addEventListener("abort", () => close(), { once: true });
  return Promise.resolve({
    localPort,
    get stats(): TunnelStats {
      let { bytesIn, bytesOut } = ended;
      for (const p of pipes.values()) {
        [bytesIn, bytesOut] = [bytesIn + p.bytesIn, bytesOut + p.bytesOut];
      }
      return { connections, bytesIn, bytesOut };
    },
    idle: () =>
      pipes.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => {
        const done = () => {
          idleWaiters.delete(done);
          resolve();
        };
        idleWaiters.add(done);
      }),
    close,
    onFrame: (f) => pipes.get(f.conn)?.onFrame(f),
    onAck: (conn, bytes) => pipes.get(conn)?.onAck(bytes),
    onClose: (conn, reason) => pipes.get(conn)?.reset(`the source reset it: ${reason}`, true),
  });
}
