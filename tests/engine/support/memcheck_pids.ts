/**
 * Counting the running copies of the memcheck workload (to check "alive on exactly one node").
 *
 * @module
 */
import { isAlive } from "../../../src/tracker/proc.ts";

/**
 * Pids of running (not stopped, not zombie) `comm` processes whose stdout is `out`; with
 * `rootsOnly`, only those whose parent is not one of them (one per copy of a tree).
 */
export function runningCopies(out: string, comm = "memcheck", rootsOnly = false): number[] {
  const pids: number[] = [];
  const parents = new Map<number, number>();
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const pid = Number(e.name);
    try {
      if (!Deno.readTextFileSync(`/proc/${pid}/comm`).startsWith(comm)) continue;
      if (Deno.readLinkSync(`/proc/${pid}/fd/1`) !== out) continue;
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      parents.set(pid, Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
      const state = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1]?.[0];
      if (isAlive(pid) && state !== "T" && state !== "t") pids.push(pid);
    } catch { /* gone or not ours */ }
  }
  return rootsOnly ? pids.filter((p) => !parents.has(parents.get(p)!)) : pids;
}
