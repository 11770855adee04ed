import assert from "node:assert/strict";
import { stepClock } from "../../src/engine/step_clock.ts";
import type { PhaseTimes } from "../../src/engine/types.ts";

Deno.test("the step clock adds each interval to its step, a step named twice summing both", async () => {
  const phases: PhaseTimes = { freeze_ms: 0, dump_ms: 0, transfer_ms: 0, restore_ms: 0 };
  const started = performance.now();
  const step = stepClock(phases);
  await new Promise((r) => setTimeout(r, 20));
  step("transfer_pages_ms");
  step("transfer_flush_ms");
  await new Promise((r) => setTimeout(r, 20));
  step("transfer_pages_ms");
  const total = performance.now() - started;
  assert.ok(phases.transfer_pages_ms! >= 30, String(phases.transfer_pages_ms));
  assert.ok(phases.transfer_flush_ms! >= 0);
  assert.ok(phases.transfer_pages_ms! + phases.transfer_flush_ms! <= total + 0.01);
  assert.equal(phases.transfer_files_ms, undefined);
});
