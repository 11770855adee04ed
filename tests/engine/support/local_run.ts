/**
 * An in-process migration's fixture: a memcheck workload (ticked a few times), a destination
 * and a work directory, and a {@linkcode LocalChannel} to that destination; {@linkcode
 * stopLocalRun} kills whatever copies of the workload still run and removes all of it.
 *
 * @example
 * ```ts
 * const r = await startLocalRun({ id: "m1", memcheck: ["--mib", "32"] });
 * try {
 *   await runMigration({ id: "m1", pid: r.w.pid, channel: r.channel, policy, workDir: r.work }, plan);
 * } finally {
 *   await stopLocalRun(r);
 * }
 * ```
 *
 * @module
 */
import { LocalChannel, type LocalChannelOptions } from "../../../src/engine/local_channel.ts";
import { type Memcheck, requireCriuBinary, startMemcheck } from "../../criu/support.ts";
import { runningCopies } from "./memcheck_pids.ts";

/** A started fixture. */
export interface LocalRun {
  /** The workload (its source copy). */
  w: Memcheck;
  /** The destination's directory (the channel's). */
  dest: string;
  /** The source's work directory. */
  work: string;
  /** The in-process channel to the destination. */
  channel: LocalChannel;
}

/** Options of {@linkcode startLocalRun}. */
export interface LocalRunOptions {
  /** The migration id the channel serves. */
  id: string;
  /** memcheck's arguments. @default 32 MiB, 64 pages written a tick, 10 % hot */
  memcheck?: string[];
  /** The destination's restore (a test's fault or check around it). @default restoreMigration */
  onRestore?: LocalChannelOptions["onRestore"];
}

/** Start memcheck, wait for its fifth tick, and open a channel to a fresh destination. */
export async function startLocalRun(options: LocalRunOptions): Promise<LocalRun> {
  requireCriuBinary();
  const args = options.memcheck ?? ["--mib", "32", "--write-pages", "64", "--hot-percent", "10"];
  const w = await startMemcheck(args);
  try {
    await w.waitFor(/^tick 5 /);
  } catch (e) {
    await w.stop();
    Deno.removeSync(w.dir, { recursive: true });
    throw e;
  }
  const dest = Deno.makeTempDirSync({ prefix: "u2cm-dest-" });
  const work = Deno.makeTempDirSync({ prefix: "u2cm-work-" });
  const channel = new LocalChannel({
    dir: dest,
    migrationId: options.id,
    onRestore: options.onRestore,
  });
  return { w, dest, work, channel };
}

/** Close the channel, kill every running copy of the workload, remove the directories. */
export async function stopLocalRun(r: LocalRun): Promise<void> {
  r.channel.close();
  for (const pid of runningCopies(r.w.out)) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* gone */ }
  }
  await r.w.stop();
  for (const d of [r.dest, r.work, r.w.dir]) Deno.removeSync(d, { recursive: true });
}
