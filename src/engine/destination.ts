/**
 * The destination's half of the two-phase commit. A restore request restores the tree stopped
 * and records it `ready` (fsync'd) before answering; the tree runs only when its source, having
 * recorded the commit, says `resume`. The record under `<state dir>/incoming/<id>.json` says which
 * phase this side reached, so a restarted agent keeps a ready copy stopped until the source
 * decides, resumes a copy it had been told to resume, and discards everything else.
 *
 * @module
 */
import { processStartTime, processState, signalAll, treePids } from "../tracker/proc.ts";
import type { RestoreContext, RestoreResult } from "./channel.ts";
import { KEEP_RECORDS, writeRecord } from "./journal.ts";
import { lazyCheckDone, lazyCheckResumed } from "./lazy_check.ts";
import { releaseLocalFill } from "./local_page_server.ts";
import { restoreMigration, type RestoreOptions } from "./restore.ts";

/** Phases of an incoming migration's record. */
export type IncomingPhase = "restoring" | "ready" | "resumed" | "discarded";

/** What a source may ask about one of its migrations. */
export type ResolveAction = "query" | "resume" | "discard";

/** What the destination holds of a migration ("unknown": nothing, and it never will). */
export type DestinationState = IncomingPhase | "unknown";

/** The destination's record of one incoming migration. */
export interface IncomingRecord {
  /** Migration id. */
  id: string;
  /** Public key of the source node that owns it. */
  owner: string;
  /** Phase reached. */
  phase: IncomingPhase;
  /** The tmpfs directory the restore used (removed after it and by recovery). */
  scratch?: string;
  /** The restored tree: host pids and their start times. */
  pids?: number[];
  /** Start times of `pids`. */
  starts?: number[];
  /** ISO time of the last change. */
  updatedAt: string;
  /** Why it was discarded. */
  reason?: string;
  /**
   * A verified lazy local restore's fill (local_page_server.ts): `pending` until every lazy page
   * was placed and matched, `refused` once a page was refused (the copy was ended; a query then
   * answers `discarded`, so the source knows the workload is its own again).
   */
  fill?: "pending" | "refused";
}

/** The answer to a resolve request. */
export interface ResolveAnswer {
  /** What this side holds now. */
  state: DestinationState;
  /** The restored root's pid, when there is a copy. */
  pid?: number;
  /** Why the action could not be done. */
  error?: string;
}

/** Options of {@linkcode Destination}. */
export interface DestinationOptions {
  /** The state directory (`incoming/` and `logs/` go there). */
  stateDir: string;
  /** Base directory of restore scratch dirs. @default $U2CM_RESTORE_TMP, else /dev/shm */
  scratchBase?: string;
  /** The restore itself. @default restoreMigration */
  restore?: (ctx: RestoreContext, options: RestoreOptions) => Promise<RestoreResult>;
  /** Post-restore check of the stopped tree (see {@linkcode RestoreOptions.verify}). */
  verify?: RestoreOptions["verify"];
}

/**
 * The destination side of migrations into this node.
 *
 * @example
 * ```ts
 * const dest = new Destination({ stateDir: "/var/lib/u2cm" });
 * const ready = await dest.restore({ ...ctx, owner: sourceKey }); // stopped, recorded ready
 * await dest.resolve(ctx.migrationId, sourceKey, "resume"); // after the source's commit
 * ```
 */
export class Destination {
  readonly #dir: string;

  /** @param options the state directory and hooks */
  constructor(readonly options: DestinationOptions) {
    this.#dir = `${options.stateDir}/incoming`;
    Deno.mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
    Deno.mkdirSync(`${options.stateDir}/logs`, { recursive: true, mode: 0o700 });
  }

  /** Restore a migration stopped; `ok` only once the tree is recorded ready. */
  async restore(ctx: RestoreContext & { owner: string }): Promise<RestoreResult> {
    const base = this.options.scratchBase ?? Deno.env.get("U2CM_RESTORE_TMP") ?? "/dev/shm";
    let scratch: string | undefined;
    try {
      scratch = await Deno.makeTempDir({ dir: base, prefix: `u2cm-restore-${ctx.migrationId}-` });
    } catch { /* no tmpfs: the restore uses the migration directory */ }
    let rec: IncomingRecord = {
      id: ctx.migrationId,
      owner: ctx.owner,
      phase: "restoring",
      scratch,
      updatedAt: new Date().toISOString(),
    };
    try {
      this.#write(rec, false); // a lost `restoring` record only loses a restore never reported
    } catch (e) {
      await removeDir(scratch);
      return { ok: false, error: `could not record the restore: ${(e as Error).message}` };
    }
    const run = this.options.restore ?? restoreMigration;
    const result = await run(ctx, {
      scratch,
      verify: this.options.verify,
      keepLog: `${this.options.stateDir}/logs/${ctx.migrationId}-restore.log`,
    });
    const restored = performance.now();
    await removeDir(scratch);
    if (!result.ok || result.pid === undefined) {
      this.#discard(rec, result.error ?? "restore failed");
      return result;
    }
    const pids = treePids(result.pid);
    rec = { ...rec, scratch: undefined, pids, starts: pids.map((p) => processStartTime(p) ?? 0) };
    const filling = (result.verified?.lazyPages ?? 0) > 0;
    if (filling) rec = { ...rec, fill: "pending" };
    try {
      // Not fsync'd (it is on the downtime path, ~2–9 ms): the record only has to outlive this
      // agent, and the page cache keeps it across the agent's crash; a power failure or kernel
      // crash ends the restored copy with it, so a durable `ready` of a copy that is gone would
      // only be discarded at the restart (`the ready copy vanished`), as a lost one is.
      this.#write({ ...rec, phase: "ready" }, false);
      if (filling) this.#watchFill(ctx.migrationId);
    } catch (e) {
      this.#discard(rec, `could not record the ready copy: ${(e as Error).message}`);
      return { ok: false, error: `could not record the ready copy: ${(e as Error).message}` };
    }
    // Pruning reads every record: after the answer, not inside the source's freeze.
    setTimeout(() => {
      try {
        this.#prune();
      } catch { /* the state directory went meanwhile: nothing to prune */ }
    }, 0);
    const steps = result.verified?.stepsMs;
    if (steps) steps.record_ms = Math.round((performance.now() - restored) * 10) / 10;
    return result;
  }

  /** Answer a source about migration `id` (only its owner may ask). */
  resolve(id: string, owner: string, action: ResolveAction): ResolveAnswer {
    const rec = this.#read(id);
    if (!rec) return { state: "unknown" };
    if (rec.owner !== owner) return { state: "unknown", error: "not this peer's migration" };
    const pid = rec.pids?.[0];
    if (action === "resume") {
      if (rec.phase === "ready" || rec.phase === "resumed") {
        // Not fsync'd: after a power failure the copy is gone anyway, and after a crash the page
        // cache holds it; a `ready` record of a running copy is only ever told to resume.
        if (rec.phase === "ready") this.#write({ ...rec, phase: "resumed" }, false);
        releaseLocalFill(id); // a verified lazy local restore's fill goes on now
        resumeTree(rec);
        // Post-copy: the rest of its memory is fetched ahead of its faults from now on.
        lazyCheckResumed(id);
        return { state: "resumed", pid };
      }
      return { state: rec.phase, error: `cannot resume a migration that is ${rec.phase}` };
    }
    if (rec.fill === "refused") {
      // The copy here was ended on a refused page: for the source, nothing is held.
      return { state: "discarded", error: rec.reason ?? "a lazy page was refused" };
    }
    if (action === "discard") {
      if (rec.phase === "resumed") {
        return { state: "resumed", pid, error: "the copy here runs: the source committed" };
      }
      if (rec.phase !== "discarded") this.#discard(rec, "the source rolled back");
      return { state: "discarded" };
    }
    return { state: rec.phase, pid };
  }

  /**
   * After a restart: discard restores that never became ready, resume copies the source had
   * committed, keep ready copies stopped for their source to decide. Returns the ready ones.
   */
  recover(): IncomingRecord[] {
    const waiting: IncomingRecord[] = [];
    for (const rec of this.#list()) {
      if (rec.phase === "restoring") this.#discard(rec, "the agent restarted mid-restore");
      else if (rec.fill === "pending" && (rec.phase === "ready" || rec.phase === "resumed")) {
        // Its lazy pages were served by this agent's page server, gone with it: the copy's
        // memory can never be completed (the source kept its own stopped copy).
        this.#discard(rec, "the agent restarted before the lazy fill was verified");
      } else if (rec.phase === "resumed") resumeTree(rec);
      else if (rec.phase === "ready") {
        if (aliveCopy(rec)) waiting.push(rec);
        else this.#write({ ...rec, phase: "discarded", reason: "the ready copy vanished" });
      }
    }
    this.#prune();
    return waiting;
  }

  /** Every incoming record. */
  list(): IncomingRecord[] {
    return this.#list();
  }

  /** Record the end of a lazy fill: done (the field goes), or refused. */
  #watchFill(id: string): void {
    lazyCheckDone(id)?.then((stats) => {
      const now = this.#read(id);
      if (!now || now.fill !== "pending") return;
      try {
        if (stats.mismatch) {
          killTree(now); // already ended by the restore's check; never leave it running
          this.#write({ ...now, fill: "refused", reason: `refused: ${stats.mismatch}` });
        } else this.#write({ ...now, fill: undefined });
      } catch { /* the record stays pending: a restart discards the copy */ }
    });
  }

  #discard(rec: IncomingRecord, reason: string): void {
    if (rec.pids) killTree(rec);
    else if (rec.scratch) killFromPidfile(`${rec.scratch}/restored.pid`);
    releaseLocalFill(rec.id); // its daemon then sees the tree gone and ends its session
    if (rec.scratch) killFromPidfile(`${rec.scratch}/lazy-pages.pid`); // a local lazy restore's
    if (rec.scratch) removeDirSync(rec.scratch);
    this.#write({ ...rec, phase: "discarded", reason, scratch: undefined });
  }

  #write(rec: IncomingRecord, durable = true): void {
    const path = `${this.#dir}/${rec.id}.json`;
    writeRecord(path, { ...rec, updatedAt: new Date().toISOString() }, durable);
  }

  #read(id: string): IncomingRecord | undefined {
    if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(id)) return undefined;
    try {
      return JSON.parse(Deno.readTextFileSync(`${this.#dir}/${id}.json`));
    } catch {
      return undefined;
    }
  }

  #list(): IncomingRecord[] {
    const out: IncomingRecord[] = [];
    for (const e of Deno.readDirSync(this.#dir)) {
      if (!e.isFile || !e.name.endsWith(".json")) continue;
      const rec = this.#read(e.name.slice(0, -5));
      if (rec) out.push(rec);
    }
    return out.sort((a, b) => a.updatedAt.localeCompare(b.updatedAt));
  }

  #prune(): void {
    const done = this.#list().filter((r) => r.phase === "discarded" || r.phase === "resumed");
    for (const r of done.slice(0, Math.max(0, done.length - KEEP_RECORDS))) {
      try {
        Deno.removeSync(`${this.#dir}/${r.id}.json`);
      } catch { /* gone */ }
    }
  }
}

/** The pids of `rec` that are still the processes it recorded. */
function ownPids(rec: IncomingRecord): number[] {
  return (rec.pids ?? []).filter((p, i) => processStartTime(p) === rec.starts?.[i]);
}

function aliveCopy(rec: IncomingRecord): boolean {
  return ownPids(rec).some((p) => processState(p) !== "Z");
}

function resumeTree(rec: IncomingRecord): void {
  signalAll(ownPids(rec), "SIGCONT");
}

function killTree(rec: IncomingRecord): void {
  signalAll(ownPids(rec), "SIGKILL");
}

function killFromPidfile(pidfile: string): void {
  try {
    const pid = Number(Deno.readTextFileSync(pidfile).trim());
    // Only a tree CRIU left stopped is ours: a pid reused since then runs.
    if (!Number.isSafeInteger(pid) || pid <= 1 || processState(pid) !== "T") return;
    signalAll(treePids(pid), "SIGKILL");
  } catch { /* no restore got that far */ }
}

async function removeDir(dir: string | undefined): Promise<void> {
  if (dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
}

function removeDirSync(dir: string): void {
  try {
    Deno.removeSync(dir, { recursive: true });
  } catch { /* gone */ }
}
