/**
 * Running `u2cm` sub-commands inside the test process (`runCli`, what main.ts calls) with their
 * stdout captured, for where a child process per command costs too much: under qemu-user each
 * `u2cm` child spends about 25 s loading its modules. {@linkcode ./cli.ts} runs the real entry
 * point as a child.
 *
 * @module
 */
import { runCli } from "../../src/cli/mod.ts";
import type { CliRun } from "./cli.ts";

/**
 * Run `u2cm ARGS…` in this process and collect what it wrote to stdout (`console.log`,
 * `Deno.stdout.write` and `writeSync`); stderr passes through. Commands run one at a time.
 *
 * @param args command-line arguments, as after `u2cm`
 * @returns the exit code `runCli` returned, stdout, and an empty stderr
 *
 * @example
 * ```ts
 * import { runU2cmInProcess } from "./cli_in_process.ts";
 * const r = await runU2cmInProcess(["trace", "info", "t.u2ct", "--format", "json"]);
 * ```
 */
export async function runU2cmInProcess(args: string[]): Promise<CliRun> {
  if (busy) throw new Error("runU2cmInProcess: one command at a time");
  busy = true;
  const chunks: string[] = [];
  const decoder = new TextDecoder();
  const stdout = Deno.stdout as unknown as Record<string, unknown>;
  const log = console.log;
  console.log = (...data: unknown[]) => {
    chunks.push(data.map((d) => (typeof d === "string" ? d : Deno.inspect(d))).join(" ") + "\n");
  };
  stdout.writeSync = (b: Uint8Array) => {
    chunks.push(decoder.decode(b));
    return b.length;
  };
  stdout.write = (b: Uint8Array) => {
    chunks.push(decoder.decode(b));
    return Promise.resolve(b.length);
  };
  try {
    const code = await runCli(args);
    return { code, stdout: chunks.join(""), stderr: "" };
  } finally {
    console.log = log;
    delete stdout.writeSync; // back to the prototype's methods
    delete stdout.write;
    busy = false;
  }
}

let busy = false;
