/**
 * Reading a process tree from /proc: who is in it, when each process started (to tell a reused
 * pid from the original), and its memory map.
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

/**
 * The start time of a process (clock ticks since boot, /proc/PID/stat field 22), which together
 * with the pid names one process across pid reuse; undefined when it is gone.
 */
export function processStartTime(pid: number): number | undefined {
  const stat = readStat(pid);
  if (stat === undefined) return undefined;
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[19]);
}

/** Whether the process is a zombie or dead (still in /proc but without memory). */
export function isDefunct(pid: number): boolean {
  const stat = readStat(pid);
  if (stat === undefined) return true;
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  return state === "Z" || state === "X";
}

function readStat(pid: number): string | undefined {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return undefined;
  }
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
  for (let i = 0; i < queue.length; i++) {
    for (const child of childrenOf(queue[i])) {
      if (!seen.has(child)) {
        seen.add(child);
        queue.push(child);
      }
    }
  }
  return queue;
}

function isEsrch(e: unknown): boolean {
  return (e as { code?: string })?.code === "ESRCH" || String(e).includes("No such process");
}
