/**
 * The CLI's architecture-independent output: `u2cm --help` as its own `u2cm` process (the real
 * entry point), then `trace info`, `simulate` and `report` on a shipped corpus slice, run in this
 * process ({@linkcode runU2cmInProcess}): under qemu-user each child costs about 25 s of module
 * loading, the commands themselves a few seconds.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type CliRun, runU2cm } from "../support/cli.ts";
import { runU2cmInProcess } from "../support/cli_in_process.ts";
import { sha256 } from "./results.ts";
import { MODEL_TRACE } from "./slices.ts";

/**
 * Run the four commands (each must exit 0) and return what they printed; the report as the
 * digest of its HTML.
 *
 * @example
 * ```ts
 * import { cliResults } from "./cli_results.ts";
 * const { help } = await cliResults();
 * ```
 */
export async function cliResults(): Promise<Record<string, unknown>> {
  const dir = Deno.makeTempDirSync({ prefix: "u2cm-arch-cli-" });
  try {
    const trace = MODEL_TRACE.slice;
    const ok = async (args: string[], run: (args: string[]) => Promise<CliRun>) => {
      const r = await run(args);
      assert.equal(r.code, 0, `u2cm ${args.join(" ")}: exit ${r.code} ${r.stderr}`);
      return r.stdout;
    };
    const help = await ok(["--help"], runU2cm);
    const info = JSON.parse(
      await ok(["trace", "info", trace, "--format", "json"], runU2cmInProcess),
    );
    const simulated = await ok([
      "simulate",
      "--trace",
      trace,
      "--bandwidth",
      "1gbit",
      "--policy",
      "phaul,u2c,stop-and-copy",
      "--predictor", // the model would open a second onnxruntime session, minutes under qemu
      "phase1-only",
      "--format",
      "json",
    ], runU2cmInProcess);
    Deno.writeTextFileSync(`${dir}/sim.json`, simulated);
    await ok(["report", `${dir}/sim.json`, "-o", `${dir}/report.html`], runU2cmInProcess);
    const html = Deno.readFileSync(`${dir}/report.html`);
    return { help, trace_info: info, simulate: JSON.parse(simulated), report_sha256: sha256(html) };
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}
