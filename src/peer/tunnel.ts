/**
 * Tunnels: TCP connections between the two nodes' local programs (CRIU's page server on the source,
 * `criu lazy-pages` on the destination) carried inside a migration's authenticated channel, so no
 * byte of the migration crosses the link outside it. Each side has a loopback endpoint on an
 * ephemeral port:
 *
 * - the destination (agent) listens on 127.0.0.1 (`acceptTunnel`, tunnel_agent.ts, offered to the
 *   restore handler as `ctx.openTunnel`); each connection a local program makes is announced to
 *   the source (`tunnelOpen`);
 * - the source (this module, {@linkcode openTunnel}) answers each announced connection by
 *   connecting to 127.0.0.1:`localPort`, where its own program listens. The source never connects
 *   anywhere else: the agent names a connection, not a target.
 *
 * Bytes travel as tunnel frames (frame kind 4: numbered per connection and direction, with an
 * integrity hash over header and data) over the same pinned TLS link as the pages: on QUIC the
 * source's frames share the bulk stream with page batches and the agent's go on the control
 * stream; on WebSocket everything shares the one connection. Each direction of each connection has
 * a 4 MiB window (tunnel_pipe.ts). A link drop resets the tunnel's connections: they are not
 * resumed.
 *
 * @example
 * ```ts
 * const tunnel = await openTunnel({ channel });          // source, after openMigration
 * // start the page server on 127.0.0.1:tunnel.localPort, ask the agent to restore lazily
 * await tunnel.close();
 * ```
 *
 * @module
 */
import { PeerError } from "./errors.ts";
import type { MigrationChannel } from "./channel.ts";
import type { TunnelHandler } from "./tunnel_handler.ts";
import { MigrationChannelImpl } from "./channel.ts";
import { encodeControl } from "./protocol.ts";
import { TunnelPipe } from "./tunnel_pipe.ts";

/** Most connections one tunnel carries at once. */
export const MAX_TUNNEL_CONNS = 8;

/** What a tunnel carried, for results and logs. */
export interface TunnelStats {
  /** Connections carried. */
  connections: number;
  /** Bytes from this side's local program to the peer's. */
  bytesOut: number;
  /** Bytes from the peer's program to this side's. */
  bytesIn: number;
}

/** One side of a tunnel. */
export interface Tunnel {
  /**
   * The loopback port of this side's endpoint: on the source, where the local program must listen
   * (each carried connection is connected there); on the destination, where local programs
   * connect.
   */
  readonly localPort: number;
  /** What it carried so far. */
  readonly stats: TunnelStats;
  /** Resolves when every carried connection so far has ended (for a program that is done). */
  idle(): Promise<void>;
  /** Reset its connections and stop (idempotent). */
  close(): Promise<void>;
}

/** Options of {@linkcode openTunnel}. */
export interface OpenTunnelOptions {
  /** The migration's channel (from {@linkcode PeerClient.openMigration}). */
  channel: MigrationChannel;
  /** Closes the tunnel when aborted. */
  signal?: AbortSignal;
  /** The loopback port the local program listens on. @default a free ephemeral port */
  localPort?: number;
}

/**
 * Source side: carry the connections the destination's endpoint accepts for `channel`'s
 * migration to 127.0.0.1:`localPort`. Throws {@linkcode PeerError} "rejected" for a channel that
 * cannot carry tunnels (not a peer channel) or a migration that already has one.
 */
export function openTunnel(opts: OpenTunnelOptions): Promise<Tunnel> {
  try {
    return Promise.resolve(sourceTunnel(opts));
  } catch (e) {
    return Promise.reject(e);
  }
}

function sourceTunnel(opts: OpenTunnelOptions): Tunnel {
  const { channel, signal } = opts;
  signal?.throwIfAborted();
  if (!(channel instanceof MigrationChannelImpl)) {
    throw new PeerError("rejected", "only a peer agent's migration channel carries tunnels");
  }
  const localPort = opts.localPort ?? freeLoopbackPort();
  const registry = channel.hooks.tunnels;
  if (!registry) throw new PeerError("rejected", "this connection carries no tunnels");
  const side = {
    send: (m: string | Uint8Array) => channel.link.send(m),
    register: (h: TunnelHandler) => registry.register(channel.id, h),
    unregister: (h: TunnelHandler) => registry.unregister(channel.id, h),
  };
  const pipes = new Map<number, TunnelPipe>();
  const stats: TunnelStats = { connections: 0, bytesOut: 0, bytesIn: 0 };
  const ended: TunnelStats = { connections: 0, bytesOut: 0, bytesIn: 0 };
  let closed = false;
  const idleSignal = new Set<() => void>();
  const control = (m: Parameters<typeof encodeControl>[0]) => side.send(encodeControl(m));
  const resetConn = (conn: number, reason: string) =>
    control({ type: "tunnelClose", migrationId: channel.id, conn, reason: reason.slice(0, 1000) });
  const handler: TunnelHandler = {
    stream: channel.stream,
    onOpen(conn) {
      if (closed || pipes.has(conn) || pipes.size >= MAX_TUNNEL_CONNS) {
        resetConn(conn, closed ? "the tunnel is closed" : "connection refused").catch(() => {});
        return;
      }
      stats.connections++;
      const pipe: TunnelPipe = new TunnelPipe({
        conn,
        stream: () => channel.stream,
        // Page requests and answers are small and one at a time: no Nagle delay (the agent's
        // end does the same).
        socket: Deno.connect({ hostname: "127.0.0.1", port: localPort }).then((s) => {
          s.setNoDelay(true);
          return s;
        }),
        send: {
          frame: (bytes) => side.send(bytes),
          ack: (bytes) => control({ type: "tunnelAck", migrationId: channel.id, conn, bytes }),
          reset: (reason) => resetConn(conn, reason),
        },
        onEnd: () => {
          pipes.delete(conn);
          ended.bytesIn += pipe.bytesIn;
          ended.bytesOut += pipe.bytesOut;
          if (pipes.size === 0) { for (const w of [...idleSignal]) w(); }
        },
      });
      pipes.set(conn, pipe);
      pipe.start();
    },
    onFrame(f) {
      pipes.get(f.conn)?.onFrame(f);
    },
    onAck(conn, bytes) {
      pipes.get(conn)?.onAck(bytes);
    },
    onClose(conn, reason) {
      pipes.get(conn)?.reset(`the peer reset it: ${reason}`, true);
    },
    onLinkDown(reason) {
      for (const p of [...pipes.values()]) p.reset(`link down: ${reason}`, true);
    },
  };
  side.register(handler);
  const close = () => {
    if (closed) return Promise.resolve();
    closed = true;
    for (const p of [...pipes.values()]) p.reset("tunnel closed");
    side.unregister(handler);
    return Promise.resolve();
  };
  signal?.addEventListener("abort", () => close(), { once: true });
  return {
    localPort,
    get stats(): TunnelStats {
      let bytesIn = ended.bytesIn, bytesOut = ended.bytesOut;
      for (const p of pipes.values()) {
        [bytesIn, bytesOut] = [bytesIn + p.bytesIn, bytesOut + p.bytesOut];
      }
      return { connections: stats.connections, bytesIn, bytesOut };
    },
    idle: () =>
      pipes.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => {
        const done = () => {
          idleSignal.delete(done);
          resolve();
        };
        idleSignal.add(done);
      }),
    close,
  };
}

/** Whether `channel` can carry a tunnel (a peer agent's channel; not an in-process one). */
export function carriesTunnels(channel: unknown): channel is MigrationChannel {
  return channel instanceof MigrationChannelImpl;
}

/** A free TCP port on 127.0.0.1 (bound and released; the caller's program binds it next). */
export function freeLoopbackPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}
