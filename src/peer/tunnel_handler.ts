/**
 * How tunnel traffic is routed on the source: the client keeps {@linkcode TunnelRoutes}, a
 * {@linkcode TunnelRegistry} of {@linkcode TunnelHandler}s by migration id, and feeds it the
 * link's tunnel control messages and frames. A connection announced for a migration without a
 * tunnel is refused.
 *
 * @example
 * ```ts
 * const routes = new TunnelRoutes((m) => client.send(m));
 * routes.control(msg); // a tunnelOpen / tunnelAck / tunnelClose from the agent
 * ```
 *
 * @module
 */
import { PeerError } from "./errors.ts";
import type { TunnelFrame } from "./frames.ts";
import { type ControlOf, encodeControl } from "./protocol.ts";

/** Tunnel traffic the client routes to a tunnel (by migration id). */
export interface TunnelHandler {
  /** The migration's stream number. */
  readonly stream: number;
  /** Open a carried connection `conn`. */
  onOpen(conn: number): void;
  /** A data frame. */
  onFrame(f: TunnelFrame): void;
  /** The peer wrote `bytes` of connection `conn`. */
  onAck(conn: number, bytes: number): void;
  /** The peer reset connection `conn`. */
  onClose(conn: number, reason: string): void;
  /** The link dropped. */
  onLinkDown(reason: string): void;
}

/** The client's table of tunnels, by migration id. */
export interface TunnelRegistry {
  /** Route `id`'s tunnel traffic to `handler`; throws when `id` already has a tunnel. */
  register(id: string, handler: TunnelHandler): void;
  /** Stop routing to `handler`. */
  unregister(id: string, handler: TunnelHandler): void;
}

/** See the module doc. */
export class TunnelRoutes implements TunnelRegistry {
  #byId = new Map<string, TunnelHandler>();

  /** @param send send a control message on the current link (false when it is down) */
  constructor(readonly send: (m: string) => Promise<boolean>) {}

  register(id: string, handler: TunnelHandler): void {
    if (this.#byId.has(id)) throw new PeerError("rejected", `migration '${id}' has a tunnel`);
    this.#byId.set(id, handler);
  }

  unregister(id: string, handler: TunnelHandler): void {
    if (this.#byId.get(id) === handler) this.#byId.delete(id);
  }

  /** A tunnel control message from the agent. */
  control(msg: ControlOf<"tunnelOpen" | "tunnelAck" | "tunnelClose">): void {
    const t = this.#byId.get(msg.migrationId);
    if (msg.type === "tunnelOpen") {
      if (t) return t.onOpen(msg.conn);
      // No tunnel for it here: refuse the connection (the agent closes its local end).
      this.send(encodeControl({
        type: "tunnelClose",
        migrationId: msg.migrationId,
        conn: msg.conn,
        reason: "no tunnel for this migration on the source",
      }));
    } else if (msg.type === "tunnelAck") t?.onAck(msg.conn, msg.bytes);
    else t?.onClose(msg.conn, msg.reason);
  }

  /** A tunnel frame from the agent (dropped when its tunnel was closed meanwhile). */
  frame(f: TunnelFrame): void {
    for (const t of this.#byId.values()) if (t.stream === f.stream) return t.onFrame(f);
  }

  /** The link dropped: every tunnel resets its connections. */
  linkDown(why: string): void {
    for (const t of this.#byId.values()) t.onLinkDown(why);
  }
}
