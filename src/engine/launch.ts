/**
 * Starting a workload the way a migratable "container at kernel level" runs: as PID 1 and
 * session leader of its own pid namespace (`unshare --fork --pid setsid CMD`), with stdio on
 * files, so CRIU can dump it without `--shell-job` and restore it beside a stopped original.
 *
 * @module
 */
import { waitGone } from "../tracker/proc.ts";

/** Options of {@linkcode launchIsolated}. */
export interface LaunchOptions {
  /** The program. */
  cmd: string;
  /** Its arguments. @default [] */
  args?: string[];
  /** File that receives stdout (created/truncated). */
  stdout: string;
  /** File that receives stderr. @default same as stdout's directory + `/stderr` */
  stderr?: string;
  /** Working directory. @default "/" */
  cwd?: string;
  /** Milliseconds to wait for the namespace's init to appear. @default 5000 */
  timeoutMs?: number;
  /** A command prefix that execs the rest, e.g. `["nsenter", "--net=/var/run/netns/x", "--"]`. */
  prefix?: string[];
}

/** A workload running in its own pid namespace. */
export interface IsolatedWorkload {
  /** Host pid of the workload (PID 1 of its namespace): the pid to migrate. */
  pid: number;
  /** Host pid of the `unshare` parent waiting for it. */
  parentPid: number;
  /** Kill the workload (SIGKILL) and wait until it and its parent are gone. */
  stop(): Promise<void>;
  /** Resolves when the `unshare` parent exits (the original workload ended). */
  exited: Promise<number>;
}

/** Start `cmd` as PID 1 and session leader of a new pid namespace. */
export async function launchIsolated(options: LaunchOptions): Promise<IsolatedWorkload> {
  const { cmd, args = [], stdout, cwd = "/", timeoutMs = 5000 } = options;
  const stderr = options.stderr ?? stdout.replace(/[^/]*$/, "stderr");
  // A shell gives the workload stdio on files (not pipes to u2cm, which CRIU could not restore).
  const quoted = [cmd, ...args].map(shellQuote).join(" ");
  const prefix = (options.prefix ?? []).map(shellQuote).join(" ");
  // bash, not sh: closing descriptors above 9 needs it. Descriptors the caller leaked to us (not
  // close-on-exec) must not reach the workload: CRIU would have to dump and restore them.
  const closeInherited =
    'for fd in /proc/$$/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done 2>/dev/null';
  const child = new Deno.Command("bash", {
    args: [
      "-c",
      `${closeInherited}; exec ${prefix} unshare --fork --pid setsid ${quoted} </dev/null >${
        shellQuote(stdout)
      } 2>${shellQuote(stderr)}`,
    ],
    cwd,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const exited = child.status.then((s) => s.code);
  const until = performance.now() + timeoutMs;
  let pid = 0;
  for (let i = 0; i < 10_000 && performance.now() < until && pid === 0; i++) {
    try {
      const kids = Deno.readTextFileSync(`/proc/${child.pid}/task/${child.pid}/children`).trim();
      if (kids) pid = Number(kids.split(/\s+/)[0]);
    } catch { /* not yet */ }
    if (pid === 0) await new Promise((r) => setTimeout(r, 5));
  }
  if (pid === 0) {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await exited;
    throw new Error(`'${quoted}' did not start in its own pid namespace within ${timeoutMs} ms`);
  }
  return {
    pid,
    parentPid: child.pid,
    exited,
    stop: async () => {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([exited, new Promise((r) => timer = setTimeout(r, 5000))]);
      clearTimeout(timer);
      await waitGone(pid, 5000);
    },
  };
}

/** Quote a word for sh. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
