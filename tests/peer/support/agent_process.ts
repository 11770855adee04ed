/**
 * Run `u2cm agent` (or another entry script) as a child process and read its JSON log lines.
 *
 * @module
 */
import { denoExecutable } from "../../support/deno.ts";

const MAIN = new URL("../../../main.ts", import.meta.url).pathname;

/** A running agent process. */
export interface AgentProcess {
  child: Deno.ChildProcess;
  port: number;
  /** Every log record read so far. */
  logs: Record<string, unknown>[];
  /** Wait (bounded) for a log record matching `pred`. */
  waitFor(
    pred: (r: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  /** SIGTERM (or `signal`) and wait for exit. */
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
}

/**
 * Start `deno run -A main.ts agent ARGS` (or `deno run -A SCRIPT ARGS`), wait for its
 * "agent listening" record and return it.
 */
export async function spawnAgent(
  args: string[],
  opts: {
    script?: string;
    cmd?: string[];
    env?: Record<string, string>;
    /** How long to wait for "agent listening". @default 20000 */
    startTimeoutMs?: number;
  } = {},
): Promise<AgentProcess> {
  const argv = opts.cmd ? [...opts.cmd, ...args] : [
    denoExecutable(),
    "run",
    "-A",
    opts.script ?? MAIN,
    ...(opts.script ? [] : ["agent"]),
    ...args,
  ];
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1", ...opts.env },
  }).spawn();
  const logs: Record<string, unknown>[] = [];
  let notify = () => {};
  let exited = false;
  child.status.then(() => {
    exited = true;
    notify();
  });
  (async () => {
    const lines = child.stderr.pipeThrough(new TextDecoderStream());
    let buf = "";
    for await (const chunk of lines) {
      buf += chunk;
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          logs.push(JSON.parse(line));
        } catch {
          logs.push({ msg: "non-json stderr", line });
        }
        notify();
      }
    }
  })();
  const waitFor = async (pred: (r: Record<string, unknown>) => boolean, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; Date.now() < deadline; i++) {
      const hit = logs.find(pred);
      if (hit) return hit;
      if (exited && i > 0) break;
      await new Promise<void>((r) => {
        notify = r;
        setTimeout(r, 200);
      });
    }
    throw new Error(
      `no matching agent log (${exited ? "agent exited" : `within ${timeoutMs} ms`}); logs: ` +
        JSON.stringify(logs),
    );
  };
  let listening;
  try {
    listening = await waitFor((r) => r.msg === "agent listening", opts.startTimeoutMs);
  } catch (e) {
    try {
      child.kill("SIGKILL");
    } catch { /* it already exited */ }
    await child.status;
    throw e;
  }
  return {
    child,
    port: Number(listening.port),
    logs,
    waitFor,
    async stop(signal: Deno.Signal = "SIGTERM") {
      try {
        child.kill(signal);
      } catch { /* already gone */ }
      return await child.status;
    },
  };
}
