/**
 * Spawn sender.ts as a child process and follow its JSON lines.
 *
 * @module
 */
import { denoExecutable } from "../../support/deno.ts";

const SENDER = new URL("./sender.ts", import.meta.url).pathname;

/** A running sender. */
export interface SenderProcess {
  child: Deno.ChildProcess;
  lines: Record<string, unknown>[];
  /** Wait (bounded) for a line matching `pred`. */
  waitFor(
    pred: (l: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  /** Wait for exit; returns the exit code and the final line. */
  finish(timeoutMs?: number): Promise<{ code: number; last: Record<string, unknown> | undefined }>;
}

/** Start `sender.ts ARGS`, optionally under a command prefix (e.g. `ip netns exec NS`). */
export function spawnSender(args: string[], prefix: string[] = []): SenderProcess {
  const argv = [...prefix, denoExecutable(), "run", "-A", SENDER, ...args];
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
    env: { NO_COLOR: "1" },
  }).spawn();
  const lines: Record<string, unknown>[] = [];
  const reading = (async () => {
    let buf = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        try {
          lines.push(JSON.parse(buf.slice(0, nl)));
        } catch { /* not ours */ }
        buf = buf.slice(nl + 1);
      }
    }
  })();
  return {
    child,
    lines,
    async waitFor(pred, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const hit = lines.find(pred);
        if (hit) return hit;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`sender: no matching line in ${timeoutMs} ms: ${JSON.stringify(lines)}`);
    },
    async finish(timeoutMs = 180_000) {
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      const status = await child.status;
      clearTimeout(timer);
      await reading;
      return { code: status.code, last: lines.at(-1) };
    },
  };
}
