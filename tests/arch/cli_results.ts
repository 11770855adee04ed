/**
 * The CLI's architecture-independent output: `u2cm --help`, `trace info`, `simulate` and `report`
 * on a shipped corpus slice, run in this process ({@linkcode runU2cmInProcess}): under qemu-user
 * each `u2cm` child costs about 25 s of module loading, the commands themselves a few seconds.
 * tests/arch/cli_in_process_test.ts checks that these commands print the same in-process as
 * through the real entry point, and tests/arch/doctor_test.ts runs that entry point on aarch64.
 *
 * @module
 */
import assert from "node:assert/strict";
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
    const ok = async (args: string[]) => {
      const r = await runU2cmInProcess(args);
      assert.equal(r.code, 0, `u2cm ${args.join(" ")}: exit ${r.code} (its error is above)`);
      return r.stdout;
    };
    const help = await ok(["--help"]);
    const info = JSON.parse(await ok(["trace", "info", trace, "--format", "json"]));
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
    ]);
    Deno.writeTextFileSync(`${dir}/sim.json`, simulated);
    await ok(["report", `${dir}/sim.json`, "-o", `${dir}/report.html`]);
    const html = Deno.readFileSync(`${dir}/report.html`);
    return { help, trace_info: info, simulate: JSON.parse(simulated), report_sha256: sha256(html) };
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}
