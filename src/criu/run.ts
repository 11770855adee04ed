/**
 * Every CRIU invocation of u2cm, as a thin typed wrapper: options in, a typed result or a
 * {@linkcode CriuError} (with the tail of CRIU's own log) out. No policy lives here.
 *
 * @example
 * ```ts
 * await criuDump({ pid: 1234, dir: "/dev/shm/u2cm/m1" }); // tree left stopped
 * const { pid } = await criuRestore({ dir: "/dev/shm/u2cm/m1" });
 * ```
 *
 * @module
 */
import { requireCriu } from "./locate.ts";
import { criuVersionOfLog, logGrewWith, logTail } from "./log.ts";
import { outputAtExit } from "../util/child_output.ts";
import { guardedCommand } from "../native/tree_guard.ts";

export { closeLazyDump } from "./page_server.ts";
export { criuVersionOfLog, logTail } from "./log.ts";

/** Raised when a CRIU command fails; `logTail` holds the last error lines of its log. */
export class CriuError extends Error {
  /**
   * @param action the CRIU action (dump, restore, …)
   * @param exitCode CRIU's exit status (or -1 when killed by u2cm's timeout)
   * @param logTail the last relevant lines of CRIU's log
   * @param logFile the full log
   */
  constructor(
    readonly action: string,
    readonly exitCode: number,
    readonly logTail: string,
    readonly logFile: string,
  ) {
    super(`criu ${action} failed (exit ${exitCode}): ${logTail} (log: ${logFile})`);
    this.name = "CriuError";
  }
}

/** Options shared by every CRIU action. */
export interface CriuCommonOptions {
  /** Images directory (`-D`). */
  dir: string;
  /** Log file name inside `dir`. @default `<action>.log` */
  logName?: string;
  /** Give up (SIGKILL criu) after this many milliseconds. @default 120000 */
  timeoutMs?: number;
  /** Extra CRIU arguments, appended last. @default [] */
  extraArgs?: string[];
  /** CRIU binary. @default requireCriu().path */
  criu?: string;
  /** Cancels the command (criu is killed). */
  signal?: AbortSignal;
  /**
   * Kill CRIU when the u2cm process that started it dies (`setpriv --pdeathsig KILL`), so an
   * orphaned CRIU never finishes a restore on its own. @default false
   */
  dieWithParent?: boolean;
  /**
   * Run CRIU under u2cm's tree guard (`src/native/tree_guard.c`), for restores: when this process
   * dies, or CRIU fails or is killed, the guard SIGKILLs CRIU and every task it restored before
   * any of them runs again (a `setpriv --pdeathsig` CRIU would leave the tasks it had restored
   * running); when CRIU succeeds, the stopped tree is left to the caller. Implies
   * `dieWithParent`. @default false
   */
  guardTree?: boolean;
}

/** Options of {@linkcode criuDump} and {@linkcode criuPreDump}. */
export interface DumpOptions extends CriuCommonOptions {
  /** Root pid of the tree (host pid). */
  pid: number;
  /** What the tree does after the dump. @default "stopped" */
  leave?: "stopped" | "running" | "killed";
  /** The tree is a shell job (its session leader is outside the tree). @default false */
  shellJob?: boolean;
  /** Dump established TCP connections. @default false */
  tcpEstablished?: boolean;
  /** Leave established TCP connections out (restored closed; clients reconnect). @default false */
  tcpClose?: boolean;
  /** Network lock method when locking is needed. @default CRIU's default */
  networkLock?: "iptables" | "nftables";
  /** Parent images directory, relative to `dir` (pre-dump chains). */
  prevImagesDir?: string;
  /** Ask the kernel to track memory changes (soft-dirty) for a following dump. @default false */
  trackMem?: boolean;
  /** Leave pages for a lazy restore (`--lazy-pages`), served by this dump process. */
  lazyPages?: boolean;
  /** Send pages to a page server instead of writing them. */
  pageServer?: { address: string; port: number };
  /** Where the dump's own page server listens for a lazy restore (with `lazyPages`). */
  listen?: { address: string; port: number };
}

/** What a finished CRIU command reports. */
export interface CriuRun {
  /** Wall-clock milliseconds. */
  ms: number;
  /** The log file. */
  logFile: string;
}

/** The `criu dump` arguments for `options` (exposed for tests and `--dry-run`). */
export function dumpArgs(options: DumpOptions, action: "dump" | "pre-dump" = "dump"): string[] {
  const o = options;
  const args = [action, "-t", String(o.pid), "-D", o.dir, ...logArgs(o, action)];
  if (action === "dump") {
    const leave = o.leave ?? "stopped";
    if (leave === "stopped") args.push("--leave-stopped");
    if (leave === "running") args.push("--leave-running");
  }
  if (o.shellJob) args.push("--shell-job");
  if (o.tcpEstablished) args.push("--tcp-established");
  if (o.tcpClose) args.push("--tcp-close");
  if (o.networkLock) args.push("--network-lock", o.networkLock);
  if (o.prevImagesDir) args.push("--prev-images-dir", o.prevImagesDir);
  if (o.trackMem) args.push("--track-mem");
  if (o.lazyPages) args.push("--lazy-pages");
  if (o.pageServer) {
    args.push("--page-server", "--address", o.pageServer.address);
    args.push("--port", String(o.pageServer.port));
  } else if (o.listen) {
    args.push("--address", o.listen.address, "--port", String(o.listen.port));
  }
  return [...args, ...(o.extraArgs ?? [])];
}

/** Checkpoint the tree under `options.pid` into `options.dir`. */
export async function criuDump(options: DumpOptions): Promise<CriuRun> {
  return await runCriu("dump", dumpArgs(options, "dump"), options);
}

/** Pre-dump the memory of the tree (needs soft-dirty; the tree keeps running). */
export async function criuPreDump(options: DumpOptions): Promise<CriuRun> {
  return await runCriu("pre-dump", dumpArgs(options, "pre-dump"), options);
}

/** A `criu dump --lazy-pages` that has written its images and now serves pages. */
export interface LazyDump extends CriuDaemon {
  /** Milliseconds until the page server was up (the images are complete then). */
  readyMs: number;
  /** The log file. */
  logFile: string;
  /** The CRIU version the dump runs, from its log (the page server's wire format follows it). */
  criuVersion?: string;
}

/**
 * Start a lazy dump (`options.lazyPages` and `options.listen` required) and resolve once its
 * images are written and its page server listens; the tree stays frozen until the destination
 * has fetched every page, then the dump exits (leaving the tree as `options.leave` says).
 */
export async function criuLazyDump(options: DumpOptions): Promise<LazyDump> {
  if (!options.lazyPages || !options.listen) {
    throw new Error("criuLazyDump needs lazyPages and listen");
  }
  const started = performance.now();
  const logFile = `${options.dir}/${options.logName ?? "dump.log"}`;
  const daemon = spawnDaemon(dumpArgs(options, "dump"), options);
  let exited: number | undefined;
  daemon.status.then((c) => (exited = c));
  const seen = { offset: 0, tail: "" };
  const until = started + (options.timeoutMs ?? 120_000);
  for (let i = 0; i < 1_000_000 && performance.now() < until; i++) {
    if (options.signal?.aborted) break;
    if (exited !== undefined) {
      throw new CriuError("dump", exited, await logTail(logFile), logFile);
    }
    // Read only what the log grew by (a verbose dump log of a big tree runs to megabytes).
    if (await logGrewWith(logFile, seen, "Starting page server on port")) {
      return {
        ...daemon,
        readyMs: performance.now() - started,
        logFile,
        criuVersion: await criuVersionOfLog(logFile),
      };
    }
    // The tree is frozen while this waits: poll often (a read of what the log grew by).
    await new Promise((r) => setTimeout(r, 1));
  }
  await daemon.stop();
  throw new CriuError("dump", -1, "the lazy dump's page server never started", logFile);
}

/** Options of {@linkcode criuRestore}. */
export interface RestoreOptions extends CriuCommonOptions {
  /** The tree is a shell job. @default false */
  shellJob?: boolean;
  /** Restore established TCP connections. @default false */
  tcpEstablished?: boolean;
  /** Restore dumped TCP connections closed. @default false */
  tcpClose?: boolean;
  /** Fetch pages lazily from a `criu lazy-pages` daemon on the same images dir. @default false */
  lazyPages?: boolean;
  /** Where to write the restored root's host pid. @default `<dir>/restored.pid` */
  pidfile?: string;
  /** Leave the restored tree stopped (`--leave-stopped`) until it is resumed. @default false */
  leaveStopped?: boolean;
}

/** The `criu restore` arguments for `options`. */
export function restoreArgs(options: RestoreOptions): string[] {
  const o = options;
  const args = ["restore", "-d", "-D", o.dir, ...logArgs(o, "restore")];
  args.push("--pidfile", o.pidfile ?? `${o.dir}/restored.pid`);
  if (o.shellJob) args.push("--shell-job");
  if (o.tcpEstablished) args.push("--tcp-established");
  if (o.tcpClose) args.push("--tcp-close");
  if (o.lazyPages) args.push("--lazy-pages");
  if (o.leaveStopped) args.push("--leave-stopped");
  return [...args, ...(o.extraArgs ?? [])];
}

/** Restore the tree dumped in `options.dir`, detached; returns the restored root's host pid. */
export async function criuRestore(options: RestoreOptions): Promise<CriuRun & { pid: number }> {
  const run = await runCriu("restore", restoreArgs(options), options);
  const pidfile = options.pidfile ?? `${options.dir}/restored.pid`;
  const pid = Number((await Deno.readTextFile(pidfile)).trim());
  if (!Number.isSafeInteger(pid) || pid <= 0) {
    throw new CriuError("restore", 0, `pidfile ${pidfile} holds no pid`, run.logFile);
  }
  return { ...run, pid };
}

/** A long-running CRIU daemon (page server, lazy-pages). */
export interface CriuDaemon {
  /** Its pid. */
  pid: number;
  /** Resolves with its exit code. */
  status: Promise<number>;
  /** Kill it (SIGKILL) and wait. */
  stop(): Promise<void>;
}

/** Start `criu page-server` receiving pages into `dir`, listening on `address:port`. */
export function criuPageServer(
  options: CriuCommonOptions & { address: string; port: number },
): CriuDaemon {
  return spawnDaemon([
    "page-server",
    "-D",
    options.dir,
    ...logArgs(options, "page-server"),
    "--address",
    options.address,
    "--port",
    String(options.port),
    ...(options.extraArgs ?? []),
  ], options);
}

/**
 * Start `criu lazy-pages` on images in `dir`, fetching missing pages from the dump's page server
 * at `address:port`.
 */
export function criuLazyPages(
  options: CriuCommonOptions & { address: string; port: number },
): CriuDaemon {
  return spawnDaemon([
    "lazy-pages",
    "--page-server",
    "-D",
    options.dir,
    ...logArgs(options, "lazy-pages"),
    "--address",
    options.address,
    "--port",
    String(options.port),
    ...(options.extraArgs ?? []),
  ], options);
}

/**
 * Start `criu lazy-pages` serving a `--lazy-pages` restore from the images in `dir` themselves
 * (no page server): the runs marked lazy are read from the local pages images on fault and in
 * the background, and the daemon exits once every page is in place.
 *
 * @example
 * ```ts
 * const daemon = criuLocalLazyPages({ dir: "/dev/shm/restore" });
 * await criuRestore({ dir: "/dev/shm/restore", lazyPages: true, leaveStopped: true });
 * ```
 */
export function criuLocalLazyPages(options: CriuCommonOptions): CriuDaemon {
  return spawnDaemon([
    "lazy-pages",
    "-D",
    options.dir,
    ...logArgs(options, "lazy-pages"),
    ...(options.extraArgs ?? []),
  ], options);
}

function logArgs(o: CriuCommonOptions, action: string): string[] {
  return ["-v4", "-o", o.logName ?? `${action}.log`];
}

async function runCriu(action: string, args: string[], o: CriuCommonOptions): Promise<CriuRun> {
  o.signal?.throwIfAborted();
  const [cmd, argv] = command(o, args);
  const logFile = `${o.dir}/${o.logName ?? `${action}.log`}`;
  const started = performance.now();
  const child = new Deno.Command(cmd, {
    args: argv,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let killed = false;
  const kill = () => {
    killed = true;
    try {
      // The guard ends CRIU and what it restored on SIGTERM; SIGKILL would orphan them.
      child.kill(o.guardTree ? "SIGTERM" : "SIGKILL");
    } catch { /* exited */ }
  };
  const timer = setTimeout(kill, o.timeoutMs ?? 120_000);
  // A dump killed mid-way could leave its parasite in the tree: let dumps finish, callers check
  // the signal afterwards. Other actions are safe to kill.
  const killable = action !== "dump" && action !== "pre-dump";
  if (killable) o.signal?.addEventListener("abort", kill, { once: true });
  try {
    // CRIU's forks inherit its pipes: its end is its exit, not the pipes' end-of-file.
    const { code, stderr } = await outputAtExit(child);
    const ms = performance.now() - started;
    if (code !== 0 || killed) {
      throw new CriuError(
        action,
        killed ? -1 : code,
        killed
          ? `killed after ${o.timeoutMs ?? 120_000} ms`
          : await logTail(logFile, stderr.trim()),
        logFile,
      );
    }
    return { ms, logFile };
  } finally {
    clearTimeout(timer);
    o.signal?.removeEventListener("abort", kill);
  }
}

function spawnDaemon(args: string[], o: CriuCommonOptions): CriuDaemon {
  const [cmd, argv] = command(o, args);
  const child = new Deno.Command(cmd, {
    args: argv,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const status = child.status.then((s) => s.code);
  return {
    pid: child.pid,
    status,
    stop: async () => {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await status;
    },
  };
}

/**
 * The program and arguments that run CRIU with `args`: under the tree guard (`guardTree`), under
 * setpriv when it must die with us (`dieWithParent`), else directly.
 */
export function command(o: CriuCommonOptions, args: string[]): [string, string[]] {
  const criu = o.criu ?? requireCriu().path;
  if (o.guardTree) return guardedCommand(criu, args);
  if (!o.dieWithParent) return [criu, args];
  return ["setpriv", ["--pdeathsig", "KILL", criu, ...args]];
}
