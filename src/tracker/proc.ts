/**
 * The one /proc module: a process's state, parent, session and start time (`stat`), its pids in
 * each pid namespace (`status` NSpid), its children and tree, its memory map and memory use, and
 * signalling and waiting for processes. The tracker, the engines (source and destination), the
 * journal and the process-tree listing all read /proc through it.
 *
 * @example
 * ```ts
 * import { isAlive, pidNamespaceMap, treePids } from "./proc.ts";
 * const pids = treePids(1234); // root first, then descendants
 * console.log(isAlive(1234), pidNamespaceMap(1234));
 * ```
 *
 * @module
 */

/** Raised when the pid to track does not exist. */
export class NoSuchProcessError extends Error {
  /** @param pid the missing pid */
  constructor(readonly pid: number) {
    super(`no process with pid ${pid}`);
    this.name = "NoSuchProcessError";
  }
}

/** Raised when the caller may not read the target's memory. */
export class TrackerPermissionError extends Error {
  /**
   * @param pid the target
   * @param detail what was refused
   */
  constructor(readonly pid: number, detail: string) {
    super(`not permitted to read the memory of pid ${pid}: ${detail}`);
    this.name = "TrackerPermissionError";
  }
}

/** One line of /proc/PID/maps. */
export interface MapsEntry {
  /** First byte address. */
  start: number;
  /** One past the last byte. */
  end: number;
  /** e.g. `rw-p`. */
  perms: string;
  /** File offset. */
  offset: number;
  /** Inode number (0 when anonymous). */
  inode: number;
  /** Path or pseudo-name, empty when anonymous. */
  path: string;
}

/** Parse the text of /proc/PID/maps. */
export function parseMaps(text: string): MapsEntry[] {
  const entries: MapsEntry[] = [];
  for (const line of text.split("\n")) {
    if (line.length === 0) continue;
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) ([0-9a-f]+) \S+ (\d+)\s*(.*)$/.exec(line);
    if (!m) continue;
    entries.push({
      start: parseInt(m[1], 16),
      end: parseInt(m[2], 16),
      perms: m[3],
      offset: parseInt(m[4], 16),
      inode: Number(m[5]),
      path: m[6],
    });
  }
  return entries;
}

/** Read /proc/PID/maps; undefined when the process is gone. */
export function readMaps(pid: number): MapsEntry[] | undefined {
  try {
    return parseMaps(Deno.readTextFileSync(`/proc/${pid}/maps`));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || isEsrch(e)) return undefined;
    if (e instanceof Deno.errors.PermissionDenied) {
      throw new TrackerPermissionError(pid, "/proc/PID/maps is not readable");
    }
    throw e;
  }
}

/** The fields of /proc/PID/stat u2cm uses. */
export interface ProcStat {
  /** State letter (R, S, D, T, t, Z, X, …). */
  state: string;
  /** Parent pid. */
  ppid: number;
  /** Process group. */
  pgrp: number;
  /** Session id. */
  session: number;
  /** Start time in clock ticks since boot (field 22). */
  startTime: number;
}

/**
 * Parse the text of /proc/PID/stat ("pid (comm) state ppid pgrp session …"; comm may hold
 * spaces and parentheses, so fields are counted from the last ')').
 */
export function parseStat(text: string): ProcStat {
  const close = text.lastIndexOf(")");
  const f = text.slice(close + 2).split(" ");
  return {
    state: f[0],
    ppid: Number(f[1]),
    pgrp: Number(f[2]),
    session: Number(f[3]),
    startTime: Number(f[19]),
  };
}

/** /proc/PID/stat of `pid` (under `proc`, default /proc), or undefined when it is gone. */
export function readStat(pid: number, proc = "/proc"): ProcStat | undefined {
  try {
    return parseStat(Deno.readTextFileSync(`${proc}/${pid}/stat`));
  } catch {
    return undefined;
  }
}

/**
 * The start time of a process (clock ticks since boot, /proc/PID/stat field 22), which together
 * with the pid names one process across pid reuse; undefined when it is gone.
 */
export function processStartTime(pid: number): number | undefined {
  return readStat(pid)?.startTime;
}

/** The process state letter (R, S, T, Z, …), or undefined when the process is gone. */
export function processState(pid: number): string | undefined {
  return readStat(pid)?.state;
}

/** Whether the process is a zombie or dead (still in /proc but without memory), or gone. */
export function isDefunct(pid: number): boolean {
  const s = processState(pid);
  return s === undefined || s === "Z" || s === "X";
}

/** Whether the process exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  return !isDefunct(pid);
}

/** One `Name: value` field of /proc/PID/status text, or undefined. */
export function statusField(status: string, name: string): string | undefined {
  return new RegExp(`^${name}:\\s*(.*)$`, "m").exec(status)?.[1];
}

/** The `NSpid:` list of a process: its pid in each pid namespace, outermost first. */
export function nsPids(pid: number): number[] {
  const line = statusField(Deno.readTextFileSync(`/proc/${pid}/status`), "NSpid");
  if (line === undefined) return [pid];
  return line.trim().split(/\s+/).map(Number);
}

/** The direct children of every thread of `pid` (/proc/PID/task/TID/children). */
export function childrenOf(pid: number): number[] {
  const children: number[] = [];
  let tasks: Iterable<Deno.DirEntry>;
  try {
    tasks = Deno.readDirSync(`/proc/${pid}/task`);
  } catch {
    return children;
  }
  try {
    for (const task of tasks) {
      try {
        const text = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/children`);
        for (const word of text.split(" ")) if (word.trim()) children.push(Number(word));
      } catch {
        // the thread exited meanwhile
      }
    }
  } catch {
    // the process exited while its tasks were listed
  }
  return children;
}

/**
 * The tree under each of `roots` (roots included, when alive), breadth first, each pid once.
 */
export function processTree(roots: Iterable<number>): number[] {
  const seen = new Set<number>();
  const queue: number[] = [];
  for (const pid of roots) {
    if (!seen.has(pid) && processStartTime(pid) !== undefined) {
      seen.add(pid);
      queue.push(pid);
    }
  }
  for (let i = 0; i < queue.length && queue.length < 100_000; i++) {
    for (const child of childrenOf(queue[i])) {
      if (!seen.has(child)) {
        seen.add(child);
        queue.push(child);
      }
    }
  }
  return queue;
}

/** Host pids of the tree rooted at `root` (root first, then descendants breadth-first). */
export function treePids(root: number): number[] {
  const tree = processTree([root]);
  return tree.length > 0 ? tree : [root];
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
  return pids.map((pid) => processStartTime(pid) ?? 0);
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
    // A killed tree is gone within milliseconds; on the downtime path each wait counts.
    await new Promise((r) => setTimeout(r, 1));
  }
  return false;
}

/** Pids of processes with an argument that starts with `prefix` (e.g. a CRIU `-D` inside a dir). */
export function processesWithArg(prefix: string): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const argv = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).split("\0");
      if (argv.some((a) => a.startsWith(prefix))) out.push(Number(e.name));
    } catch { /* gone */ }
  }
  return out;
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

function isEsrch(e: unknown): boolean {
  return (e as { code?: string })?.code === "ESRCH" || String(e).includes("No such process");
}
