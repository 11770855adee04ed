/**
 * The process trees on this host that a user may want to migrate, read from /proc: each root
 * with its name, pid, process count and the resident memory of the whole tree. Roots are the
 * children of PID 1, session leaders, and the other children of this process's ancestors (jobs
 * started from the same shell); kernel threads, PID 1 and this process's own ancestry are left out.
 *
 * @example
 * ```ts
 * import { listProcessTrees } from "./proctree.ts";
 * for (const t of listProcessTrees().slice(0, 5)) console.log(t.pid, t.name, t.rssBytes);
 * ```
 *
 * @module
 */
import { readStat, statusField } from "../tracker/proc.ts";

/** One candidate process tree. */
export interface ProcessTree {
  /** Root pid. */
  pid: number;
  /** The root's command name (`comm`). */
  name: string;
  /** The root's command line, space-joined (may be empty). */
  command: string;
  /** Processes in the tree. */
  processes: number;
  /** Resident memory of all processes in the tree, bytes. */
  rssBytes: number;
}

interface Proc {
  pid: number;
  ppid: number;
  sid: number;
  name: string;
  rssBytes: number;
  kernel: boolean;
}

/** Options of {@linkcode listProcessTrees}. */
export interface ListProcessTreesOptions {
  /** The proc file system. @default "/proc" */
  proc?: string;
  /** Pid whose ancestry is excluded. @default Deno.pid */
  self?: number;
  /** At most this many trees, largest RSS first. @default 200 */
  limit?: number;
}

/** The process trees, largest resident memory first. */
export function listProcessTrees(options: ListProcessTreesOptions = {}): ProcessTree[] {
  const { proc = "/proc", self = Deno.pid, limit = 200 } = options;
  const procs = new Map<number, Proc>();
  let seen = 0;
  for (const entry of Deno.readDirSync(proc)) {
    if (!/^\d+$/.test(entry.name) || ++seen > 100_000) continue;
    const p = readProc(proc, Number(entry.name));
    if (p) procs.set(p.pid, p);
  }
  const children = new Map<number, number[]>();
  for (const p of procs.values()) {
    const list = children.get(p.ppid) ?? [];
    list.push(p.pid);
    children.set(p.ppid, list);
  }
  const ancestry = new Set<number>();
  for (let pid = self, hops = 0; pid > 0 && hops < 4096; hops++) {
    ancestry.add(pid);
    const next = procs.get(pid)?.ppid;
    if (next === undefined || next === pid) break;
    pid = next;
  }
  const isRoot = (p: Proc) =>
    !p.kernel && p.pid !== 1 && !ancestry.has(p.pid) &&
    (p.ppid === 1 || p.pid === p.sid || ancestry.has(p.ppid));
  const roots = [...procs.values()].filter(isRoot);
  const trees = roots.map((root) => {
    let rss = 0;
    let count = 0;
    const stack = [root.pid];
    while (stack.length > 0 && count < 100_000) {
      const pid = stack.pop()!;
      const p = procs.get(pid);
      if (!p || (pid !== root.pid && ancestry.has(pid))) continue;
      rss += p.rssBytes;
      count++;
      stack.push(...(children.get(pid) ?? []));
    }
    return {
      pid: root.pid,
      name: root.name,
      command: readCmdline(proc, root.pid),
      processes: count,
      rssBytes: rss,
    };
  });
  return trees.sort((a, b) => b.rssBytes - a.rssBytes || a.pid - b.pid).slice(0, limit);
}

function readProc(proc: string, pid: number): Proc | undefined {
  let status: string;
  try {
    status = Deno.readTextFileSync(`${proc}/${pid}/status`);
  } catch {
    return undefined; // exited meanwhile, or not readable
  }
  const stat = readStat(pid, proc);
  if (!stat) return undefined;
  const rssKb = Number(statusField(status, "VmRSS")?.replace(/\s*kB$/, "") ?? 0);
  return {
    pid,
    ppid: stat.ppid,
    sid: stat.session,
    name: statusField(status, "Name") ?? "?",
    rssBytes: rssKb * 1024,
    kernel: pid === 2 || stat.ppid === 2 || statusField(status, "VmSize") === undefined,
  };
}

function readCmdline(proc: string, pid: number): string {
  try {
    return Deno.readTextFileSync(`${proc}/${pid}/cmdline`).split("\0").filter((s) => s).join(" ")
      .slice(0, 300);
  } catch {
    return "";
  }
}
