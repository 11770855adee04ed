import assert from "node:assert/strict";
import { runU2cm } from "../support/cli.ts";
import { runU2cmInProcess } from "../support/cli_in_process.ts";
import { MODEL_TRACE } from "./slices.ts";

// The arm64 lane runs the CLI's commands in-process (tests/arch/cli_results.ts); this checks that
// they print exactly what the real entry point prints as a child process.

Deno.test("u2cm --help, trace info and simulate print the same in-process as a u2cm child", async () => {
  const trace = MODEL_TRACE.slice;
  for (
    const args of [
      ["--help"],
      ["trace", "info", trace, "--format", "json"],
      ["simulate", "--trace", trace, "--policy", "phaul,u2c", "--predictor", "phase1-only"],
      ["trace", "info", "/nonexistent/t.u2ct"],
    ]
  ) {
    const child = await runU2cm(args);
    const inProcess = await runU2cmInProcess(args);
    assert.equal(inProcess.code, child.code, `u2cm ${args.join(" ")}: exit code`);
    assert.equal(inProcess.stdout, child.stdout, `u2cm ${args.join(" ")}: stdout`);
  }
  assert.notEqual((await runU2cmInProcess(["--help"])).stdout, "", "the capture is not empty");
});
