/**
 * Recovery of interrupted migrations on the source (`u2cm recover`, and every `u2cm agent` and
 * `u2cm migrate` start). Each unfinished record is ended in the one consistent state its journal
 * and the destination's answer allow, never by guessing:
 *
 * - not committed (`precopy`, `frozen`, `restoring`): the source owns the workload. It is resumed
 *   here at once (the destination never runs a copy without the source's resume), and the
 *   destination is told to discard its copy; until it confirms, the record stays pending.
 * - `committed`: the destination owns it. When it holds the restored copy, the frozen source copy
 *   is ended and the destination resumes its copy. A destination that holds nothing (and so never
 *   will) leaves the workload to the source, which is resumed. An unreachable destination leaves
 *   the workload frozen (stopped on both sides) until the peers see each other again.
 * - A container target (its runtime and ID are journalled): where the source runs again, a
 *   container its runtime holds checkpointed is restored here from that checkpoint; where the
 *   destination takes over, the source's checkpointed container is removed.
 *
 * @module
 */
import { containerRunsAgain, removeSourceContainer } from "../container/recover_container.ts";
import {
  FINISHED_PHASES,
  listMigrations,
  type MigrationRecord,
  ownerAlive,
  recordPath,
  writeRecord,
} from "./journal.ts";
import { processesWithArg, signalAll, signalSame, startTimes, waitDead } from "../tracker/proc.ts";
import { removeScratch } from "./scratch.ts";
import { liftThrottle } from "./throttle.ts";
import type { MigrationPhase } from "./types.ts";
import type { LazyCheckReport } from "./contract.ts";

/** What the destination says about a migration (see destination.ts). */
export interface PeerAnswer {
  /** Its state there: unknown, receiving, restoring, ready, resumed, discarded. */
  state: string;
  /** Why it could not do what was asked. */
  error?: string;
  /** A query's answer: what the destination's check of the pages placed lazily saw. */
  lazy?: LazyCheckReport;
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
  try {
    return await recoverRecord(o, rec);
  } finally {
    // (a runc container's checkpoint is in it: removed only after it may have been restored)
    await removeScratch(rec.scratchDir);
  }
}

async function recoverRecord(
  o: RecoverOptions,
  rec: MigrationRecord,
): Promise<RecoveredMigration> {
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
  if (rec.phase !== "committed") await criuDone(rec);
  if (rec.phase !== "committed") {
    // The source owns the workload: the destination never runs a copy without the source's
    // resume, so the source runs again here even when the destination cannot be reached.
    liftThrottle(rec.id);
    // A lazy dump's page server serves nobody once the destination discards its copy.
    if (rec.helpers) signalSame(rec.helpers.pids, rec.helpers.starts, "SIGKILL");
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
    if (rec.phase !== "precopy" && rec.container) {
      await containerRunsAgain(rec.container, rec.scratchDir);
    }
    const ok = cleared !== undefined;
    const error = rec.error ?? "u2cm exited mid-migration; source resumed on recovery";
    save({ phase: "rolled-back", peerCleared: ok, error });
    return result(
      "rolled-back",
      "source",
      !ok,
      ok
        ? "source resumed; the destination dropped its copy"
        : `source resumed; the destination is unreachable (${lastUnreachable}): ` +
          "it is told to drop its copy later",
    );
  }
  const held = await ask(o, rec, "query");
  if (held === undefined) {
    save({ error: "committed; the destination is unreachable: the workload stays frozen" });
    return result(
      "committed",
      "frozen",
      true,
      `destination unreachable (${lastUnreachable}): workload stays frozen`,
    );
  }
  if (held.state === "unknown" || held.state === "discarded") {
    signalSame(rec.sourcePids, rec.sourceStarts, "SIGCONT");
    if (rec.container) await containerRunsAgain(rec.container, rec.scratchDir);
    const error = `committed, but the destination holds no copy (${held.state}); source resumed`;
    save({ phase: "rolled-back", peerCleared: true, error });
    return result("rolled-back", "source", false, error);
  }
  if (rec.lazyFill !== undefined && (held.state === "ready" || held.state === "resumed")) {
    return await recoverFill(o, rec, held, save, result);
  }
  if (held.state === "ready" || held.state === "resumed") {
    // End the source copy (gone before the destination's runs), then resume it there.
    signalSame(rec.sourcePids, rec.sourceStarts, "SIGKILL");
    await waitDead(rec.sourcePids, rec.sourceStarts ?? startTimes(rec.sourcePids));
    if (rec.container) await removeSourceContainer(rec.container).catch(() => {});
    const answer = await ask(o, rec, "resume");
    if (answer?.state === "resumed") {
      save({ phase: "done", error: undefined });
      return result("done", "destination", false, "source copy ended; destination resumed it");
    }
    save({ error: "committed; source ended; the destination did not resume yet: frozen" });
    return result("committed", "frozen", true, "destination did not confirm the resume yet");
  }
  save({ error: `committed; the destination is ${held.state}: waiting` });
  return result("committed", "frozen", true, `destination is ${held.state}; try again`);
}

/**
 * A committed verified lazy local restore (`lazyFill`): the stopped source copy is kept until the
 * destination reports every lazy page placed and matched. Refused: the destination ended its
 * copy, the source runs again. Complete: the source copy is ended. Otherwise it stays pending.
 */
async function recoverFill(
  o: RecoverOptions,
  rec: MigrationRecord,
  held: PeerAnswer,
  save: (change: Partial<MigrationRecord>) => void,
  result: (
    phase: MigrationPhase,
    workload: RecoveredMigration["workload"],
    pending: boolean,
    detail: string,
  ) => RecoveredMigration,
): Promise<RecoveredMigration> {
  if (held.state === "ready") {
    // Never resumed: resume it there, keep the source until its fill is verified.
    const answer = await ask(o, rec, "resume");
    if (answer?.state !== "resumed") {
      save({ error: "committed; the destination did not resume yet: frozen" });
      return result("committed", "frozen", true, "destination did not confirm the resume yet");
    }
    held = (await ask(o, rec, "query")) ?? answer;
  }
  const fill = held.lazy;
  if (fill?.mismatch) {
    signalSame(rec.sourcePids, rec.sourceStarts, "SIGCONT");
    const error = `committed, but the destination refused a page of the lazy restore ` +
      `(${fill.mismatch}) and ended its copy; source resumed`;
    save({ phase: "rolled-back", peerCleared: true, error });
    return result("rolled-back", "source", false, error);
  }
  if (fill?.closed && fill.checkedPages === rec.lazyFill) {
    signalSame(rec.sourcePids, rec.sourceStarts, "SIGKILL");
    await waitDead(rec.sourcePids, rec.sourceStarts ?? startTimes(rec.sourcePids));
    save({ phase: "done", error: undefined });
    return result("done", "destination", false, "lazy fill verified; source copy ended");
  }
  const why = fill
    ? `${fill.checkedPages} of ${rec.lazyFill} lazy pages placed so far`
    : "the destination has no report of its lazy fill";
  save({ error: `committed; ${why}: the source copy is kept stopped` });
  return result("committed", "destination", true, `${why}; try again`);
}

/** Why the last `ask` could not reach its peer (for the record's detail). */
let lastUnreachable = "";

/** How long recovery lets a CRIU dump the dead `migrate` started finish, in ms. */
const DUMP_GRACE_MS = 60_000;

/**
 * Wait until no CRIU of this migration (an argument inside its scratch directory) runs: a dump
 * that outlived its `migrate` still freezes the tree and leaves it stopped when it ends, so the
 * source is resumed only after it. One still running after the grace period is killed.
 */
async function criuDone(rec: MigrationRecord): Promise<void> {
  if (!rec.scratchDir) return;
  const prefix = `${rec.scratchDir}/`;
  const until = performance.now() + DUMP_GRACE_MS;
  for (let i = 0; i < 100_000 && performance.now() < until; i++) {
    if (processesWithArg(prefix).length === 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  signalAll(processesWithArg(prefix), "SIGKILL");
}

async function ask(
  o: RecoverOptions,
  rec: MigrationRecord,
  action: "query" | "resume" | "discard",
): Promise<PeerAnswer | undefined> {
  try {
    return await o.resolve(rec.peer, rec.id, action);
  } catch (e) {
    lastUnreachable = (e as Error).message;
    return undefined;
  }
}
