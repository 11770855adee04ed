/**
 * Process facts a migration needs: a tree's pids, the pid namespace mapping (host pid ↔ pid
 * inside the tree's own namespace, from `NSpid:` in /proc/PID/status), and waiting for a pid to
 * vanish before it may be reused.
 *
 * @module
 */

/** The `NSpid:` list of a process: its pid in each pid namespace, outermost first. */
export function nsPids(pid: number): number[] {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const line = /^NSpid:\s*(.*)$/m.exec(status);
  if (!line) return [pid];
  return line[1].trim().split(/\s+/).map(Number);
}

/** The process state letter (R, S, T, Z, …), or undefined when the process is gone. */
export function processState(pid: number): string | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  } catch {
    return undefined;
  }
}

/** Whether the process exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  const s = processState(pid);
  return s !== undefined && s !== "Z" && s !== "X";
}

/** Host pids of the tree rooted at `root` (root first, then descendants breadth-first). */
export function treePids(root: number): number[] {
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0 && out.length < 100_000) {
    const pid = queue.shift()!;
    out.push(pid);
    let tasks: string[] = [];
    try {
      tasks = [...Deno.readDirSync(`/proc/${pid}/task`)].map((e) => e.name);
    } catch {
      continue;
    }
    for (const tid of tasks) {
      try {
        const children = Deno.readTextFileSync(`/proc/${pid}/task/${tid}/children`).trim();
        if (children) queue.push(...children.split(/\s+/).map(Number));
      } catch { /* thread gone */ }
    }
  }
  return out;
}

/**
 * Map each host pid of the tree rooted at `root` to its pid inside the root's pid namespace —
 * the pids CRIU writes into pstree.img and image names. Equal when the tree shares the host's.
 */
export function pidNamespaceMap(root: number): Map<number, number> {
  const depth = nsPids(root).length;
  const map = new Map<number, number>();
  for (const pid of treePids(root)) {
    try {
      const ns = nsPids(pid);
      map.set(pid, ns[depth - 1] ?? pid);
    } catch { /* exited meanwhile */ }
  }
  return map;
}

/** Wait until /proc/PID is gone (reaped), up to `timeoutMs`; returns whether it vanished. */
export async function waitGone(pid: number, timeoutMs = 10_000): Promise<boolean> {
  const until = performance.now() + timeoutMs;
  for (let i = 0; i < 100_000 && performance.now() < until; i++) {
    try {
      Deno.statSync(`/proc/${pid}`);
    } catch {
      return true;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

/** Send `signal` to every pid; errors for gone processes are ignored. */
export function signalAll(pids: number[], signal: Deno.Signal): void {
  for (const pid of pids) {
    try {
      Deno.kill(pid, signal);
    } catch { /* gone */ }
  }
}

/**
 * Bytes of memory the tree rooted at `root` holds: the sum over its processes of the
 * proportional set size (a page shared by n processes counts 1/n for each, so shared memory is
 * counted once), or of the resident size where smaps_rollup is unreadable.
 */
export function treeMemoryBytes(root: number): number {
  let total = 0;
  for (const pid of treePids(root)) {
    try {
      const rollup = Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`);
      const pss = /^Pss:\s+(\d+) kB$/m.exec(rollup);
      if (pss) {
        total += Number(pss[1]) * 1024;
        continue;
      }
    } catch { /* fall back to statm */ }
    try {
      total += Number(Deno.readTextFileSync(`/proc/${pid}/statm`).split(" ")[1]) * 4096;
    } catch { /* exited */ }
  }
  return total;
}

/** This kernel's boot id: two processes see the same one exactly when they share a kernel. */
export function bootId(): string {
  return Deno.readTextFileSync("/proc/sys/kernel/random/boot_id").trim();
}
