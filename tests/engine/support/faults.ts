/**
 * Tools of the fault-matrix tests: a watcher that samples the process table throughout a case
 * and remembers any instant with two running copies of the workload, `u2cm` run as a child that
 * a test can stop and kill, and finders for the CRIU processes and journal phases a fault is
 * aimed at.
 *
 * @module
 */
import { runningCopies } from "./memcheck_pids.ts";

const MAIN = new URL("../../../main.ts", import.meta.url).pathname;

/** What the watcher saw. */
export interface WatchReport {
  /** Samples taken. */
  samples: number;
  /** Most running copies at one instant. */
  maxRunning: number;
  /** The pids of the first instant with two running copies, if any. */
  twoAt?: number[];
  /** What the test was doing then (the last `mark`). */
  twoWhen?: string;
}

/** Sample the running copies of the memcheck writing to `out` every `everyMs` until stopped. */
export function watchCopies(
  out: string,
  everyMs = 10,
): { stop(): WatchReport; mark(what: string): void } {
  const report: WatchReport = { samples: 0, maxRunning: 0 };
  let doing = "start";
  const timer = setInterval(() => {
    const pids = runningCopies(out);
    report.samples++;
    report.maxRunning = Math.max(report.maxRunning, pids.length);
    if (pids.length > 1 && !report.twoAt) [report.twoAt, report.twoWhen] = [pids, doing];
  }, everyMs);
  return {
    mark(what: string) {
      doing = what;
    },
    stop() {
      clearInterval(timer);
      return report;
    },
  };
}

/** A `u2cm` command running as a child process. */
export interface U2cmChild {
  /** Its pid (the deno process itself). */
  pid: number;
  /** Resolves with its exit code and output. */
  done: Promise<{ code: number; stdout: string; stderr: string }>;
  /** Send a signal (ignored once it exited). */
  signal(sig: Deno.Signal): void;
}

/** Start `u2cm ARGS` with `env`. */
export function spawnU2cm(args: string[], env: Record<string, string> = {}): U2cmChild {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  const done = child.output().then((o) => ({
    code: o.code,
    stdout: text(o.stdout),
    stderr: text(o.stderr),
  }));
  return {
    pid: child.pid,
    done,
    signal(sig) {
      try {
        child.kill(sig);
      } catch { /* exited */ }
    },
  };
}

/** Poll `pred` every 5 ms until it holds (returns its value) or `timeoutMs` passes (throws). */
export async function until<T>(
  what: string,
  pred: () => T | undefined | false,
  timeoutMs = 90_000,
): Promise<T> {
  const end = performance.now() + timeoutMs;
  for (let i = 0; i < 1_000_000 && performance.now() < end; i++) {
    const v = pred();
    if (v !== undefined && v !== false) return v;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * Pids of CRIU processes whose command line has every one of `words` (an entry may also be a
 * RegExp one argument must match).
 */
export function criuProcesses(words: (string | RegExp)[]): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const argv = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).split("\0");
      if (!argv.some((a) => a.endsWith("criu"))) continue;
      if (argv[0] === "setpriv") continue; // the exec'ing wrapper before it became criu
      if (/u2cm-tree-guard/.test(argv[0])) continue; // the guard a restore runs under
      const has = (w: string | RegExp) =>
        typeof w === "string" ? argv.includes(w) : argv.some((a) => w.test(a));
      if (words.every(has)) out.push(Number(e.name));
    } catch { /* gone */ }
  }
  return out;
}

/** Pids of every memcheck (running or stopped) writing to `out`. */
export function allCopies(out: string): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      if (!Deno.readTextFileSync(`/proc/${e.name}/comm`).startsWith("memcheck")) continue;
      if (Deno.readLinkSync(`/proc/${e.name}/fd/1`) === out) pids.push(Number(e.name));
    } catch { /* gone */ }
  }
  return pids;
}

/** The phase of the only migration record in `stateDir`, if there is one. */
export function journalPhase(stateDir: string): string | undefined {
  return journal(stateDir)?.phase;
}

/** The only migration record in `stateDir`, if there is one. */
export function journal(stateDir: string): Record<string, string> | undefined {
  try {
    for (const e of Deno.readDirSync(`${stateDir}/migrations`)) {
      if (!e.isFile || !e.name.endsWith(".json")) continue;
      return JSON.parse(Deno.readTextFileSync(`${stateDir}/migrations/${e.name}`));
    }
  } catch { /* not yet */ }
  return undefined;
}
