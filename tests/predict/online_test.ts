import assert from "node:assert/strict";
import { createPredictor, evaluateTrace, inPageSet, loadModel } from "../../src/predict/mod.ts";
import { patternTrace } from "./craft.ts";

Deno.test("last-value scores the crafted pattern exactly", async () => {
  // Per round 8 always-dirty pages, 8 pages dirty every other round, 1 rotating page.
  // Last-value at h=1: the 8 steady pages are right; the alternating ones are always wrong
  // (8 FP or 8 FN per round); the rotating page is one FP and one FN per round.
  const trace = patternTrace(64);
  const [h1] = await evaluateTrace(trace, createPredictor({ mode: "last-value" }), { warmup: 16 });
  const scored = 64 - 16 - 1; // predictions at rounds 16..62 have a next round
  assert.equal(h1.samples, scored * 64);
  const tp = scored * 8 + 0, fp = (scored * 8) / 2 + scored, fn = fp;
  assert.ok(Math.abs(h1.precision - tp / (tp + fp)) < 0.02, `precision ${h1.precision}`);
  assert.ok(Math.abs(h1.recall - tp / (tp + fn)) < 0.02, `recall ${h1.recall}`);
});

Deno.test("phase 1 predicts the steady pages dirty and the never-dirty pages clean", async () => {
  const trace = patternTrace(40);
  const p = createPredictor({ mode: "phase1-only" });
  for (const r of trace.rounds) p.observe(r);
  const pred = await p.predict();
  const probs = pred.probs.get(1)!;
  assert.equal(probs.length, 3);
  for (let page = 0; page < 8; page++) assert.equal(probs[0][page], 1);
  for (let page = 24; page < 64; page++) assert.equal(probs[2][page], 0);
  assert.equal(pred.expectedDirty[0], probs[0].reduce((a, b) => a + b, 0));
});

Deno.test("the committed model predicts the alternating pages better than last-value", async () => {
  const model = await loadModel("models/u2c-predictor.onnx");
  const trace = patternTrace(64);
  const [u2c] = await evaluateTrace(trace, createPredictor({ model }), { warmup: 20 });
  const [last] = await evaluateTrace(trace, createPredictor({ mode: "last-value" }), {
    warmup: 20,
  });
  assert.ok(u2c.f1 > last.f1 + 0.1, `u2c F1 ${u2c.f1} vs last-value ${last.f1}`);
});

Deno.test("the model runs once per round over every unstable page and fills probabilities", async () => {
  const model = await loadModel("models/u2c-predictor.onnx");
  const trace = patternTrace(30);
  const p = createPredictor({ model, horizon: 3 });
  for (const r of trace.rounds) p.observe(r);
  const pred = await p.predict();
  // Unstable: the 8 alternating pages and the rotating pages 16..23 (dirty within the last 3).
  assert.ok(pred.modelPages >= 8 && pred.modelPages <= 17, `model pages ${pred.modelPages}`);
  for (const a of pred.probs.get(1)!) for (const v of a) assert.ok(v >= 0 && v <= 1);
  assert.ok(pred.expectedDirty[0] > 8 && pred.expectedDirty[0] < 30);
  assert.equal(inPageSet(trace.rounds[2].dirty, 1, 8), true);
});
