/**
 * The agent's answers to a source's requests that need no state of the session beyond its link:
 * attaching a sealed bulk stream, a container pre-check, a page-hash listing, a restore result.
 * session_handler.ts decides when to answer; these lay the answers out and send them.
 *
 * @example
 * ```ts
 * await sendRestoreResult(link, mig, { ok: false, error: "this agent has no restore handler" });
 * ```
 *
 * @module
 */
import type { AcceptedPeer } from "./auth.ts";
import type { AgentContext, RestoreResult } from "./agent_context.ts";
import { encodeHashes, MAX_HASH_ENTRIES } from "./frames.ts";
import type { Link } from "./link.ts";
import type { IncomingMigration } from "./migration.ts";
import { HASH_BYTES } from "../native/page_hash.ts";
import { fromBase64url } from "./keys.ts";
import { type ControlOf, encodeControl } from "./protocol.ts";

/** What an answer needs of its session. */
export interface AnswerContext {
  /** The session's link. */
  link: Link;
  /** The agent. */
  ctx: AgentContext;
  /** The authenticated source. */
  peer: AcceptedPeer;
}

/**
 * Attach the client's sealed bulk stream to this link: its frames then arrive in this link's
 * inbox like the WebSocket's. Answers whether the stream came and proved the key in time.
 */
export async function answerBulkOpen(a: AnswerContext, msg: ControlOf<"bulkOpen">): Promise<void> {
  const { bulk } = a.ctx;
  const sink = a.link.bulkSink?.();
  const ok = bulk && sink
    ? await bulk.expect(fromBase64url(msg.token), fromBase64url(msg.key), sink)
    : false;
  a.ctx.log({ level: ok ? "debug" : "warn", msg: "bulk stream", peer: a.peer.name, ok });
  await a.link.send(encodeControl({ type: "bulkAttached", token: msg.token, ok }));
}

/** Answer a container pre-check through the engine's hook (none: containers not taken). */
export async function answerContainerCheck(
  a: AnswerContext,
  msg: ControlOf<"containerCheck">,
): Promise<void> {
  const answer = a.ctx.onContainerCheck
    ? await a.ctx.onContainerCheck(msg.check, a.peer.publicKey).catch((e) => ({
      runtimeOk: false,
      imagePresent: false,
      problems: [`container check failed: ${String((e as Error).message).slice(0, 900)}`],
    }))
    : { runtimeOk: false, imagePresent: false, problems: ["this agent takes no containers"] };
  a.ctx.log({
    level: answer.problems.length ? "warn" : "info",
    msg: "container check",
    migrationId: msg.migrationId,
    container: msg.check.name,
    ...answer,
  });
  await a.link.send(encodeControl({
    type: "containerChecked",
    migrationId: msg.migrationId,
    reqId: msg.reqId,
    answer: {
      ...answer,
      problems: answer.problems.slice(0, 64).map((p) => p.slice(0, 1000)),
    },
  }));
}

/** Send `mig`'s page-hash listing of `msg.pid` as hash frames, the last one flagged. */
export async function answerHashes(
  link: Link,
  mig: IncomingMigration,
  msg: ControlOf<"hashes">,
): Promise<void> {
  const entries = mig.store.entries(msg.pid);
  for (let at = 0, guard = 0; guard < 1_000_000; guard++) {
    const part = entries.slice(at, at + MAX_HASH_ENTRIES);
    at += part.length;
    const hashes = new Uint8Array(part.length * HASH_BYTES);
    part.forEach((e, i) => hashes.set(e.hash, i * HASH_BYTES));
    await link.send(encodeHashes({
      stream: mig.stream,
      seq: msg.reqId,
      pid: msg.pid,
      addresses: Float64Array.from(part, (e) => e.addr),
      hashes,
      last: at >= entries.length,
    }));
    if (at >= entries.length) break;
  }
}

/** Send `mig`'s restore result `r` on `link` (bounded as the schema wants it). */
export async function sendRestoreResult(
  link: Link,
  mig: IncomingMigration,
  r: RestoreResult,
): Promise<void> {
  await link.send(encodeControl({
    type: "restoreResult",
    migrationId: mig.id,
    ok: r.ok,
    ...(r.pid !== undefined ? { pid: r.pid } : {}),
    ...(r.error !== undefined ? { error: r.error.slice(0, 4000) } : {}),
    ...(r.restoreMs !== undefined ? { restoreMs: r.restoreMs } : {}),
    ...(r.verified !== undefined ? { verified: r.verified } : {}),
  }));
}
