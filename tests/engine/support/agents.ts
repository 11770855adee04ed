/**
 * Two real nodes for migration tests: state directories that pin each other, a destination
 * `u2cm agent` in its own process, and `u2cm migrate` run as a real command.
 *
 * @module
 */
import { makeNodePair } from "../../peer/support/nodes.ts";

const MAIN = new URL("../../../main.ts", import.meta.url).pathname;

/** A running destination agent. */
export interface TestAgent {
  /** Its port. */
  port: number;
  /** Its bound sealed bulk stream port, when it has one. */
  bulkPort?: number;
  /** Its pid. */
  pid: number;
  /** Its JSON log so far. */
  log(): string;
  /** Kill it (SIGKILL by default) and wait. */
  stop(signal?: Deno.Signal): Promise<void>;
}

/** Two nodes: `a` (source) pins `b`; `b` pins `a`. */
export interface TestNodes {
  root: string;
  a: string;
  b: string;
  /**
   * Start b's agent (on `port`, or a free one; inside a network namespace with `prefix`, listening
   * on `host`) and pin it in a's peers as "b".
   */
  startB(
    port?: number,
    prefix?: string[],
    host?: string,
    env?: Record<string, string>,
  ): Promise<TestAgent>;
  /** Point a's pin of b at `address` (e.g. a proxy in front of b's agent). */
  pinB(address: string): void;
  cleanup(): void;
}

/** Create two initialised nodes. */
export async function makeNodes(): Promise<TestNodes> {
  const pair = await makeNodePair();
  return {
    root: pair.root,
    a: pair.a,
    b: pair.b,
    async startB(port = 0, prefix: string[] = [], host = "127.0.0.1", env = {}) {
      const agent = await startAgentProcess(pair.b, port, 3, prefix, host, env);
      pair.pinB(`${host}:${agent.port}`);
      return agent;
    },
    pinB: (address) => pair.pinB(address),
    cleanup: () => pair.cleanup(),
  };
}

/** Start `u2cm agent` on `stateDir` (loopback, `port` or a free one); resolves once it listens. */
export async function startAgentProcess(
  stateDir: string,
  port = 0,
  resumeTimeoutS = 3,
  prefix: string[] = [],
  host = "127.0.0.1",
  env: Record<string, string> = {},
  extraArgs: string[] = [],
): Promise<TestAgent> {
  const cmd = [...prefix, Deno.execPath()];
  const child = new Deno.Command(cmd[0], {
    args: [
      ...cmd.slice(1),
      "run",
      "-A",
      MAIN,
      "agent",
      "--listen",
      `${host}:${port}`,
      "--state-dir",
      stateDir,
      "--resume-timeout",
      String(resumeTimeoutS),
      ...extraArgs,
    ],
    env: { NO_COLOR: "1", ...env },
    stdout: "null",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const lines = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let log = "";
  const listening = Promise.withResolvers<{ port: number; bulkPort?: number }>();
  // Keep draining the agent's JSON log (a full pipe would block it); keep it for failures.
  (async () => {
    for (;;) {
      const { value, done } = await lines.read();
      if (done) break;
      log += value;
      const m = /"msg":"agent listening"[^\n]*"port":(\d+)(?:,"bulkPort":(\d+))?/.exec(log);
      if (m) listening.resolve({ port: Number(m[1]), bulkPort: m[2] ? Number(m[2]) : undefined });
    }
    listening.reject(new Error(`u2cm agent exited before listening:\n${log}`));
  })();
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const bound = await listening.promise.finally(() => clearTimeout(timer));
  const status = child.status;
  return {
    port: bound.port,
    bulkPort: bound.bulkPort,
    pid: child.pid,
    log: () => log,
    stop: async (signal: Deno.Signal = "SIGKILL") => {
      try {
        child.kill(signal);
      } catch { /* gone */ }
      await status;
    },
  };
}

/**
 * The start of a `u2cm migrate` command line moving the tree `pid` to the test peer "b" with
 * `engine`; the test adds its own policy, output and state flags.
 *
 * @example
 * ```ts
 * await u2cm([...migrateTo(w.pid), "--policy", "u2c", "--format", "json", "--state-dir", nodes.a]);
 * ```
 */
export function migrateTo(pid: number, engine = "delta"): string[] {
  return ["migrate", "--pid", String(pid), "--to", "b", "--engine", engine];
}

/** Run `u2cm ARGS` as a real command. */
export async function u2cm(
  args: string[],
  env: Record<string, string> = {},
  prefix: string[] = [],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const cmd = [...prefix, Deno.execPath()];
  const out = await new Deno.Command(cmd[0], {
    args: [...cmd.slice(1), "run", "-A", MAIN, ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}
