/**
 * The migration journal on the source: one JSON record per migration under
 * `<state dir>/migrations/<id>.json`, rewritten atomically and fsync'd at every phase change. The
 * record with phase `committed` is the commit point: before it the source owns the workload,
 * after it the destination does. Recovery (recover.ts) reads these records.
 *
 * @module
 */
import { processStartTime } from "../tracker/proc.ts";
import type { EngineName, MigrationPhase } from "./types.ts";

/** Journal records kept per state directory (older finished ones are pruned). */
export const KEEP_RECORDS = 50;

/** One migration's record. */
export interface MigrationRecord {
  /** Migration id. */
  id: string;
  /** Source root pid. */
  pid: number;
  /** Every host pid of the source tree (at the last phase change). */
  sourcePids: number[];
  /** Start times (clock ticks since boot) of `sourcePids`, to never signal a reused pid. */
  sourceStarts?: number[];
  /** Destination peer name. */
  peer: string;
  /** Engine: as requested (`auto`) until the final phase says which parts ran. */
  engine: EngineName | "auto";
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
  /** The scratch directory u2cm created for the dumps (removed at the end and by recovery). */
  scratchDir?: string;
  /** Processes the final phase left running (a lazy dump's page server) and their start times. */
  helpers?: { pids: number[]; starts: number[] };
  /**
   * A verified lazy local restore: pages the destination places (each checked) after its resume.
   * Until it reports them all matched, the stopped source copy is kept: a refused page leaves
   * the workload to the source (recover.ts).
   */
  lazyFill?: number;
  /** Whether the destination confirmed it dropped everything of a rolled-back migration. */
  peerCleared?: boolean;
  /** CRIU logs of a failed migration, kept under the state dir. */
  logs?: string[];
  /**
   * A container target: the runtime, its ID, and the runtime's environment (podman's config
   * files), so recovery can restore a checkpointed container or remove a committed one.
   */
  container?: ContainerJournal;
}

/** What the journal keeps of a container target. */
export interface ContainerJournal {
  /** The runtime. */
  runtime: "podman" | "runc";
  /** Container ID. */
  id: string;
  /** Environment the runtime ran with (CONTAINERS_STORAGE_CONF, CONTAINERS_CONF, PATH). */
  env: Record<string, string>;
  /**
   * runc: its binary and state dir, the bundle, and the log a container restored here writes
   * to (the checkpoint is `<scratch>/final/checkpoint`).
   */
  runc?: { bin: string; root: string; bundle: string; logFile: string };
}

/** Phases after which a migration needs nothing more from anyone. */
export const FINISHED_PHASES: readonly MigrationPhase[] = ["done", "failed"];

/** A journal entry for one migration. */
export class MigrationJournal {
  readonly #path: string;
  #record: MigrationRecord;

  /**
   * @param stateDir the state directory
   * @param record the initial record (phase usually `precopy`)
   */
  constructor(
    readonly stateDir: string,
    record: Omit<MigrationRecord, "startedAt" | "updatedAt">,
  ) {
    Deno.mkdirSync(`${stateDir}/migrations`, { recursive: true, mode: 0o700 });
    this.#path = recordPath(stateDir, record.id);
    const now = new Date().toISOString();
    this.#record = {
      ...record,
      startedAt: now,
      updatedAt: now,
      owner: record.owner ?? { pid: Deno.pid, start: processStartTime(Deno.pid) ?? 0 },
    };
    writeRecord(this.#path, this.#record);
    pruneRecords(stateDir);
  }

  /** The current record. */
  get record(): MigrationRecord {
    return this.#record;
  }

  /**
   * Record a change: written and renamed into place before returning, and with `durable` also
   * fsync'd (file and directory), so it survives a power failure.
   *
   * @param change the fields to change
   * @param durable fsync before returning @default true
   */
  update(change: Partial<Omit<MigrationRecord, "id" | "startedAt">>, durable = true): void {
    this.#record = { ...this.#record, ...change, updatedAt: new Date().toISOString() };
    writeRecord(this.#path, this.#record, durable);
  }
}

/** The record file of migration `id`. */
export function recordPath(stateDir: string, id: string): string {
  return `${stateDir}/migrations/${id}.json`;
}

/**
 * Write `record` to `path` atomically (a renamed temporary file), and with `durable` also fsync
 * the file and its directory.
 */
export function writeRecord(path: string, record: unknown, durable = true): void {
  const tmp = `${path}.tmp`;
  const file = Deno.openSync(tmp, { write: true, create: true, truncate: true, mode: 0o600 });
  try {
    const bytes = new TextEncoder().encode(JSON.stringify(record, null, 2) + "\n");
    for (let off = 0; off < bytes.length;) off += file.writeSync(bytes.subarray(off));
    if (durable) file.syncSync();
  } finally {
    file.close();
  }
  Deno.renameSync(tmp, path);
  if (!durable) return;
  const dir = Deno.openSync(path.slice(0, path.lastIndexOf("/")), { read: true });
  try {
    dir.syncSync();
  } finally {
    dir.close();
  }
}

/** Every migration record in `stateDir`, oldest first. */
export function listMigrations(stateDir: string): MigrationRecord[] {
  const out: MigrationRecord[] = [];
  try {
    for (const e of Deno.readDirSync(`${stateDir}/migrations`)) {
      if (!e.isFile || !e.name.endsWith(".json")) continue;
      try {
        out.push(JSON.parse(Deno.readTextFileSync(`${stateDir}/migrations/${e.name}`)));
      } catch { /* half-written or foreign file */ }
    }
  } catch { /* no migrations yet */ }
  return out.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
}

/** Whether the u2cm process that owns `record` still runs (then it is not interrupted). */
export function ownerAlive(record: MigrationRecord): boolean {
  return record.owner !== undefined &&
    processStartTime(record.owner.pid) === record.owner.start;
}

/** Delete the oldest finished records beyond {@linkcode KEEP_RECORDS}. */
export function pruneRecords(stateDir: string, keep = KEEP_RECORDS): void {
  const all = listMigrations(stateDir);
  const excess = all.length - keep;
  if (excess <= 0) return;
  const finished = all.filter((r) =>
    FINISHED_PHASES.includes(r.phase) || (r.phase === "rolled-back" && r.peerCleared === true)
  );
  for (const r of finished.slice(0, excess)) {
    try {
      Deno.removeSync(recordPath(stateDir, r.id));
    } catch { /* gone */ }
  }
}
