/**
 * The migration journal: one JSON record per migration under `<state dir>/migrations/`, rewritten
 * atomically at every phase change, so a restarted u2cm knows what it was doing — and
 * {@linkcode recoverMigrations} resumes sources left frozen by a migration that died.
 *
 * @module
 */
import { isAlive, processState, signalAll } from "../tracker/proc.ts";
import type { EngineName, MigrationPhase } from "./types.ts";

/** One migration's record. */
export interface MigrationRecord {
  /** Migration id. */
  id: string;
  /** Source root pid. */
  pid: number;
  /** Every host pid of the source tree at the freeze. */
  sourcePids: number[];
  /** Destination peer name. */
  peer: string;
  /** Engine. */
  engine: EngineName;
  /** Policy. */
  policy: string;
  /** Current phase. */
  phase: MigrationPhase;
  /** ISO time of the start. */
  startedAt: string;
  /** ISO time of the last change. */
  updatedAt: string;
  /** Restored pid on the destination, once known. */
  destPid?: number;
  /** Why it failed. */
  error?: string;
  /** The u2cm process running the migration and its start time (clock ticks since boot). */
  owner?: { pid: number; start: number };
}

/** A journal entry for one migration. */
export class MigrationJournal {
  readonly #path: string;
  #record: MigrationRecord;

  /**
   * @param stateDir the state directory
   * @param record the initial record (phase usually `precopy`)
   */
  constructor(stateDir: string, record: Omit<MigrationRecord, "startedAt" | "updatedAt">) {
    Deno.mkdirSync(`${stateDir}/migrations`, { recursive: true });
    this.#path = `${stateDir}/migrations/${record.id}.json`;
    const now = new Date().toISOString();
    this.#record = {
      ...record,
      startedAt: now,
      updatedAt: now,
      owner: { pid: Deno.pid, start: startTime(Deno.pid) ?? 0 },
    };
    this.#write();
  }

  /** The current record. */
  get record(): MigrationRecord {
    return this.#record;
  }

  /** Record a phase change (and any other fields). */
  update(change: Partial<Omit<MigrationRecord, "id" | "startedAt">>): void {
    this.#record = { ...this.#record, ...change, updatedAt: new Date().toISOString() };
    this.#write();
  }

  #write(): void {
    const tmp = `${this.#path}.tmp`;
    Deno.writeTextFileSync(tmp, JSON.stringify(this.#record, null, 2) + "\n");
    Deno.renameSync(tmp, this.#path);
  }
}

/** Every migration record in `stateDir`, oldest first. */
export function listMigrations(stateDir: string): MigrationRecord[] {
  const out: MigrationRecord[] = [];
  try {
    for (const e of Deno.readDirSync(`${stateDir}/migrations`)) {
      if (!e.name.endsWith(".json")) continue;
      try {
        out.push(JSON.parse(Deno.readTextFileSync(`${stateDir}/migrations/${e.name}`)));
      } catch { /* half-written or foreign file */ }
    }
  } catch { /* no migrations yet */ }
  return out.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
}

/**
 * Resume sources left stopped by migrations that died before the destination was asked to
 * restore (phases `precopy` and `frozen`), and mark them rolled back. Migrations that died while
 * `restoring` are left for the operator (the destination may run the tree): they are returned.
 */
export function recoverMigrations(stateDir: string): {
  resumed: MigrationRecord[];
  unresolved: MigrationRecord[];
} {
  const resumed: MigrationRecord[] = [];
  const unresolved: MigrationRecord[] = [];
  for (const r of listMigrations(stateDir)) {
    // A migration whose u2cm process still runs is in progress, not interrupted.
    if (r.owner && startTime(r.owner.pid) === r.owner.start) continue;
    if (r.phase === "precopy" || r.phase === "frozen") {
      const stopped = r.sourcePids.filter((p) => processState(p) === "T");
      signalAll(stopped, "SIGCONT");
      const path = `${stateDir}/migrations/${r.id}.json`;
      const next = {
        ...r,
        phase: "rolled-back" as const,
        error: r.error ?? "u2cm exited mid-migration; source resumed on recovery",
        updatedAt: new Date().toISOString(),
      };
      Deno.writeTextFileSync(path, JSON.stringify(next, null, 2) + "\n");
      resumed.push(next);
    } else if (r.phase === "restoring" && r.sourcePids.some(isAlive)) {
      unresolved.push(r);
    }
  }
  return { resumed, unresolved };
}

/** A process's start time in clock ticks since boot (field 22 of /proc/PID/stat), if it exists. */
function startTime(pid: number): number | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
  } catch {
    return undefined;
  }
}
