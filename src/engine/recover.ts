/**
 * Recovery of interrupted migrations on the source (`u2cm recover`, and every `u2cm agent` and
 * `u2cm migrate` start). Each unfinished record is ended in the one consistent state its journal
 * and the destination's answer allow, never by guessing:
 *
 * - not committed (`precopy`, `frozen`, `restoring`): the source owns the workload. It is resumed
 *   here at once (the destination never runs a copy without the source's resume), and the
 *   destination is told to discard its copy; until it confirms, the record stays pending.
 * - `committed`: the destination owns it. It is asked to resume; once it runs the tree there,
 *   the frozen source copy is ended. A destination that holds nothing (and so never will) leaves
 *   the workload to the source, which is resumed. An unreachable destination leaves the workload
 *   frozen (source stopped, destination stopped) until the peers see each other again.
 *
 * @module
 */
import {
  FINISHED_PHASES,
  listMigrations,
  type MigrationRecord,
  ownerAlive,
  recordPath,
  writeRecord,
} from "./journal.ts";
import { signalSame } from "./proc.ts";
import { removeScratch } from "./scratch.ts";
import { liftThrottle } from "./throttle.ts";
import type { MigrationPhase } from "./types.ts";

/** What the destination says about a migration (see destination.ts). */
export interface PeerAnswer {
  /** Its state there: unknown, receiving, restoring, ready, resumed, discarded. */
  state: string;
  /** Why it could not do what was asked. */
  error?: string;
}

/** Asks peer `peer` to query, resume or discard migration `id`; throws when it cannot be reached. */
export type PeerResolver = (
  peer: string,
  id: string,
  action: "query" | "resume" | "discard",
) => Promise<PeerAnswer>;

/** How one migration ended up. */
export interface RecoveredMigration {
  /** Migration id. */
  id: string;
  /** Destination peer. */
  peer: string;
  /** Phase the journal held before recovery. */
  from: MigrationPhase;
  /** Phase it holds now. */
  phase: MigrationPhase;
  /** Where the workload runs now: "source", "destination", or "frozen" (waiting for the peer). */
  workload: "source" | "destination" | "frozen";
  /** Whether anything is left to do (the peer must still be reached). */
  pending: boolean;
  /** What happened, in words. */
  detail: string;
}

/** Options of {@linkcode recoverMigrations}. */
export interface RecoverOptions {
  /** The state directory. */
  stateDir: string;
  /** Reaches the destination peers. */
  resolve: PeerResolver;
}

/**
 * Recover every interrupted migration in `stateDir` (those whose u2cm process is gone).
 *
 * @example
 * ```ts
 * const outcome = await recoverMigrations({ stateDir, resolve });
 * const frozen = outcome.filter((m) => m.workload === "frozen"); // peers out of reach
 * ```
 */
export async function recoverMigrations(options: RecoverOptions): Promise<RecoveredMigration[]> {
  const out: RecoveredMigration[] = [];
  for (const rec of listMigrations(options.stateDir)) {
    if (FINISHED_PHASES.includes(rec.phase) || ownerAlive(rec)) continue;
    if (rec.phase === "rolled-back" && rec.peerCleared !== false) continue;
    out.push(await recoverOne(options, rec));
  }
  return out;
}

async function recoverOne(o: RecoverOptions, rec: MigrationRecord): Promise<RecoveredMigration> {
  const from = rec.phase;
  const save = (change: Partial<MigrationRecord>) =>
    writeRecord(recordPath(o.stateDir, rec.id), {
      ...rec,
      ...change,
      owner: undefined,
      updatedAt: new Date().toISOString(),
    });
  const result = (
    phase: MigrationPhase,
    workload: RecoveredMigration["workload"],
    pending: boolean,
    detail: string,
  ): RecoveredMigration => ({ id: rec.id, peer: rec.peer, from, phase, workload, pending, detail });
  await removeScratch(rec.scratchDir);
  if (rec.phase !== "committed") {
    // The source owns the workload: the destination never runs a copy without the source's
    // resume, so the source runs again here even when the destination cannot be reached.
    liftThrottle(rec.id);
    const cleared = await ask(o, rec, "discard");
    if (cleared?.state === "resumed") {
      // Impossible by the protocol; never make a second running copy over it.
      save({ phase: "committed", error: "the destination runs a copy without a commit record" });
      return result(
        "committed",
        "destination",
        true,
        "destination runs a copy: source left stopped",
      );
    }
    if (rec.phase !== "precopy") signalSame(rec.sourcePids, rec.sourceStarts, "SIGCONT");
    const ok = cleared !== undefined;
    const error = rec.error ?? "u2cm exited mid-migration; source resumed on recovery";
    save({ phase: "rolled-back", peerCleared: ok, error });
    return result(
      "rolled-back",
      "source",
      !ok,
      ok
        ? "source resumed; the destination dropped its copy"
        : "source resumed; the destination is unreachable: told to drop its copy later",
    );
  }
  const answer = await ask(o, rec, "resume");
  if (answer === undefined) {
    save({ error: "committed; the destination is unreachable: the workload stays frozen" });
    return result("committed", "frozen", true, "destination unreachable: workload stays frozen");
  }
  if (answer.state === "resumed") {
    signalSame(rec.sourcePids, rec.sourceStarts, "SIGKILL");
    save({ phase: "done", error: undefined });
    return result("done", "destination", false, "destination resumed the tree; source copy ended");
  }
  if (answer.state === "unknown" || answer.state === "discarded") {
    signalSame(rec.sourcePids, rec.sourceStarts, "SIGCONT");
    const error = `committed, but the destination holds no copy (${answer.state}); source resumed`;
    save({ phase: "rolled-back", peerCleared: true, error });
    return result("rolled-back", "source", false, error);
  }
  save({ error: `committed; the destination is ${answer.state}: waiting` });
  return result("committed", "frozen", true, `destination is ${answer.state}; try again`);
}

async function ask(
  o: RecoverOptions,
  rec: MigrationRecord,
  action: "resume" | "discard",
): Promise<PeerAnswer | undefined> {
  try {
    return await o.resolve(rec.peer, rec.id, action);
  } catch {
    return undefined;
  }
}
