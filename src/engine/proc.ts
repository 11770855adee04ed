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

/** Start times (clock ticks since boot, field 22 of /proc/PID/stat) of `pids`; 0 when gone. */
export function startTimes(pids: number[]): number[] {
  return pids.map((pid) => {
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
    } catch {
      return 0;
    }
  });
}

/**
 * Send `signal` to each of `pids` that is still the process it was: its start time equals the
 * recorded one (a pid reused since is left alone). Without recorded times every pid is signalled.
 */
export function signalSame(
  pids: number[],
  starts: number[] | undefined,
  signal: Deno.Signal,
): void {
  if (!starts) return signalAll(pids, signal);
  const now = startTimes(pids);
  signalAll(pids.filter((_, i) => now[i] !== 0 && now[i] === starts[i]), signal);
}

/**
 * Wait until none of `pids` (with their recorded start times) is alive any more — exited,
 * a zombie, or a pid since reused — up to `timeoutMs`; returns whether they all died.
 */
export async function waitDead(
  pids: number[],
  starts: number[],
  timeoutMs = 10_000,
): Promise<boolean> {
  const until = performance.now() + timeoutMs;
  for (let i = 0; i < 100_000 && performance.now() < until; i++) {
    const now = startTimes(pids);
    const alive = pids.filter((p, k) => now[k] !== 0 && now[k] === starts[k] && isAlive(p));
    if (alive.length === 0) return true;
    await new Promise((r) => setTimeout(r, 5));
  }
  return false;
}
