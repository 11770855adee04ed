/**
 * Counting the running copies of the memcheck workload (to check "alive on exactly one node").
 *
 * @module
 */
import { isAlive } from "../../../src/engine/proc.ts";

/** Pids of running (not stopped, not zombie) memcheck processes whose stdout is `out`. */
export function runningCopies(out: string): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const pid = Number(e.name);
    try {
      if (!Deno.readTextFileSync(`/proc/${pid}/comm`).startsWith("memcheck")) continue;
      if (Deno.readLinkSync(`/proc/${pid}/fd/1`) !== out) continue;
      const state = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1]?.[0];
      if (isAlive(pid) && state !== "T" && state !== "t") pids.push(pid);
    } catch { /* gone or not ours */ }
  }
  return pids;
}
