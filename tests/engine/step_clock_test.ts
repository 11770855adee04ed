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

Deno.test("the step clock keeps a record of named steps, each total rounded to the decimals asked", async () => {
  const steps: Record<string, number> = {};
  const started = performance.now();
  const step = stepClock(steps, { decimals: 1 });
  await new Promise((r) => setTimeout(r, 20));
  step("copy_ms");
  step("compose_ms");
  const total = performance.now() - started;
  assert.deepEqual(Object.keys(steps), ["copy_ms", "compose_ms"]);
  for (const ms of Object.values(steps)) assert.equal(ms, Math.round(ms * 10) / 10);
  assert.ok(steps.copy_ms >= 19, String(steps.copy_ms));
  assert.ok(steps.copy_ms + steps.compose_ms <= total + 0.1);
});
