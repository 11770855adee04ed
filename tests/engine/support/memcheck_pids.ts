/**
 * Counting the running copies of the memcheck workload (to check "alive on exactly one node").
 *
 * @module
 */

/** PF_EXITING in the flags field of /proc/PID/stat: the task is in do_exit. */
const PF_EXITING = 0x4;

/**
 * Pids of running `comm` processes whose stdout is `out`: not stopped ('T', 't'), not a zombie,
 * and not dying (no SIGKILL pending, not exiting) — a process that will never run its own code
 * again is no copy of the workload. With `rootsOnly`, only those whose parent is not one of them
 * (one per copy of a tree).
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
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      parents.set(pid, Number(fields[1]));
      if ("TtZXx".includes(fields[0])) continue;
      if (Number(fields[6]) & PF_EXITING) continue;
      if (killPending(Deno.readTextFileSync(`/proc/${pid}/status`))) continue;
      pids.push(pid);
    } catch { /* gone or not ours */ }
  }
  return rootsOnly ? pids.filter((p) => !parents.has(parents.get(p)!)) : pids;
}

/** Whether SIGKILL is pending for the thread or its process (SigPnd / ShdPnd bit 8). */
function killPending(status: string): boolean {
  for (const key of ["SigPnd", "ShdPnd"]) {
    const m = new RegExp(`^${key}:\\s*([0-9a-f]+)$`, "m").exec(status);
    if (m && (BigInt(`0x${m[1]}`) & (1n << 8n)) !== 0n) return true;
  }
  return false;
}
