/**
 * The CLI's architecture-independent output: `u2cm --help`, `trace info`, `simulate` and
 * `report` on a shipped corpus slice, each run as its own `u2cm` process.
 *
 * @module
 */
import assert from "node:assert/strict";
import { runU2cm } from "../support/cli.ts";
import { laneTrace, MODEL_TRACE, sha256 } from "./results.ts";

/**
 * Run the four commands (each must exit 0) and return what they printed; the report as the
 * digest of its HTML.
 */
export async function cliResults(): Promise<Record<string, unknown>> {
  const dir = Deno.makeTempDirSync({ prefix: "u2cm-arch-cli-" });
  try {
    const { file, rounds } = MODEL_TRACE;
    const trace = `${dir}/slice.u2ct`;
    Deno.writeFileSync(trace, (await laneTrace(file, rounds)).bytes);
    const ok = async (args: string[]) => {
      const r = await runU2cm(args);
      assert.equal(r.code, 0, `u2cm ${args.join(" ")}: ${r.stderr}`);
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
      "--predictor", // the model would compile onnxruntime's wasm once more, for minutes under qemu
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
