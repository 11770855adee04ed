/**
 * Running the real `u2cm` command (main.ts) as a child process in tests.
 *
 * @module
 */
import { denoExecutable } from "./deno.ts";

/** Path of the CLI entry point. */
export const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** What a finished `u2cm` run printed and returned. */
export interface CliRun {
  /** Exit code. */
  code: number;
  /** Everything on stdout. */
  stdout: string;
  /** Everything on stderr. */
  stderr: string;
}

/**
 * Run `u2cm ARGS…` with `deno run -A main.ts`, colours off, and collect its output.
 *
 * @param args command-line arguments
 * @param env extra environment variables
 */
export async function runU2cm(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  const out = await new Deno.Command(denoExecutable(), {
    args: ["run", "-A", MAIN, ...args],
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}
