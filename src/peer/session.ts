/**
 * One authenticated connection on the agent: authenticates the peer, then reads control messages
 * and frames in order and hands them to its {@linkcode SessionHandler}; when the connection ends,
 * its migrations detach (waiting for the source to resume) or are released. Any malformed or
 * out-of-order input closes the connection (logged); nothing is written for it.
 *
 * @module
 */
import { type AcceptedPeer, authenticateClient } from "./auth.ts";
import type { AgentContext } from "./agent_context.ts";
import { PeerError, ProtocolError } from "./errors.ts";
import { decodeFrame, FrameKind } from "./frames.ts";
import type { Link } from "./link.ts";
import type { IncomingMigration } from "./migration.ts";
import { decodeControl, encodeControl } from "./protocol.ts";
import { SessionHandler } from "./session_handler.ts";

export type {
  AgentContext,
  ResolveAction,
  ResolveAnswer,
  ResolveHandler,
  RestoreHandler,
  RestoreRequest,
  RestoreResult,
} from "./agent_context.ts";

let sessionCounter = 0;

/** Serve one link until it closes. Never throws. */
export async function runSession(link: Link, ctx: AgentContext): Promise<void> {
  const session = { id: `${Deno.pid}-${++sessionCounter}` };
  const log = ctx.log;
  let peer: AcceptedPeer;
  try {
    peer = await authenticateClient(link, {
      identity: ctx.identity,
      findPeer: ctx.findPeer,
      nonces: ctx.nonces,
      capabilities: ctx.capabilities,
      session: session.id,
    });
  } catch (e) {
    const reason = (e as Error).message;
    log({ level: "warn", msg: "authentication failed", remote: link.remoteAddress, reason });
    await link.send(
      encodeControl({ type: "error", code: "auth", message: "authentication failed" }),
    )
      .catch(() => {});
    link.close(4401, "authentication failed");
    return;
  }
  log({
    level: "info",
    msg: "peer authenticated",
    peer: peer.name,
    remote: link.remoteAddress,
    transport: link.transport,
    session: session.id,
  });
  const streams = new Map<number, IncomingMigration>();
  const handler = new SessionHandler(link, ctx, peer, streams);
  try {
    for (let i = 0; i < Number.MAX_SAFE_INTEGER; i++) {
      // A restore runs while the loop goes on reading: tunnel traffic (post-copy pages) is served
      // at once, anything else waits for the restore to finish, as before.
      const m = await link.next(handler.busy ? 2 ** 31 - 1 : ctx.idleTimeoutMs);
      if (m === null) break;
      if (typeof m === "string") {
        const msg = decodeControl(m);
        if (msg.type !== "tunnelAck" && msg.type !== "tunnelClose") await handler.busy;
        await handler.control(msg);
      } else {
        const frame = decodeFrame(m);
        if (frame.kind !== FrameKind.Tunnel) await handler.busy;
        await handler.frame(frame);
      }
      // A burst ends with whatever message came last: acknowledge what it left unacknowledged.
      if (link.queued === 0) await handler.ackPending();
    }
  } catch (e) {
    const reason = (e as Error).message;
    const level = e instanceof ProtocolError || (e instanceof PeerError && e.code === "protocol")
      ? "warn"
      : "info";
    log({ level, msg: "closing connection", peer: peer.name, session: session.id, reason });
    if (e instanceof ProtocolError || e instanceof PeerError) {
      await link.send(
        encodeControl({ type: "error", code: "protocol", message: reason.slice(0, 1000) }),
      )
        .catch(() => {});
    }
    link.close(4400, "protocol error");
  } finally {
    const why = await Promise.race([link.closed, Promise.resolve("session ended")]);
    for (const mig of streams.values()) {
      if (mig.session !== handler) continue;
      if (mig.status === "restored") {
        // Done: drop the store, but remember the result a while for a source that lost it.
        mig.release(log);
        mig.expireAfter(ctx.resumeTimeoutMs, () => {
          if (ctx.migrations.get(mig.id) === mig) ctx.migrations.delete(mig.id);
        });
      } else if (mig.status === "receiving") {
        log({
          level: "warn",
          msg: "migration detached; waiting for the source to resume",
          migrationId: mig.id,
          timeoutMs: ctx.resumeTimeoutMs,
          why,
        });
        mig.detach(ctx.resumeTimeoutMs, () => {
          mig.abort(`source did not resume within ${ctx.resumeTimeoutMs} ms`, log);
          ctx.migrations.delete(mig.id);
        });
      }
    }
    link.close();
  }
}
