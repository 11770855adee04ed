import assert from "node:assert/strict";
import { parseDenoTest } from "../../build/arm64/report.ts";

Deno.test("the arm64 lane counts deno test results per file, also when printed on a later line", () => {
  const run = parseDenoTest([
    "running 3 tests from ./tests/a_test.ts",
    "it works ... ok (2ms)",
    "it is slow ...'it is slow' has been running for over (1m0s)",
    " ok (9m36s)",
    "it needs ptrace ... ignored (0ms)",
    "running 1 test from ./tests/b_test.ts",
    "it breaks ... FAILED (1s)",
    "",
    "FAILED | 2 passed | 1 failed | 1 ignored (10m)",
  ].join("\n"));
  assert.deepEqual(run.files, [
    { file: "tests/a_test.ts", passed: 2, failed: 0, ignored: 1 },
    { file: "tests/b_test.ts", passed: 0, failed: 1, ignored: 0 },
  ]);
  assert.deepEqual([run.passed, run.failed, run.ignored], [2, 1, 1]);
  assert.deepEqual(run.failures, ["tests/b_test.ts › it breaks"]);
});
