import assert from "node:assert/strict";
import {
  createPredictor,
  decisionThresholds,
  DEFAULT_PHASE1,
  evaluateTrace,
  loadModel,
  PageHistory,
  PATTERN_KEYS,
  PatternFrequencies,
  patternKey,
} from "../../src/predict/mod.ts";
import { patternTrace } from "./craft.ts";

Deno.test("online frequencies learn, per pattern, what unstable pages did next", () => {
  const trace = patternTrace(40);
  const hist = new PageHistory(4096, trace.header.featureNames.length);
  const freq = new PatternFrequencies(3, DEFAULT_PHASE1);
  for (const r of trace.rounds) {
    hist.observe(r);
    freq.learn(hist);
  }
  const h = hist.mappings.get(1)!;
  // page 10 alternates: whatever its latest state, the next round is the opposite one
  const key = patternKey(h, 10, 0);
  const latest = h.dirty[10] & 1;
  const seen = freq.seen[key], dirty = freq.dirty[key];
  assert.ok(seen >= 8, `seen ${seen}`);
  assert.equal(dirty / seen, 1 - latest);
  // two rounds later it is back where it is now
  assert.equal(freq.dirty[PATTERN_KEYS + key] / freq.seen[PATTERN_KEYS + key], latest);
  // the blend moves from the model's answer toward the counts
  assert.ok(Math.abs(freq.blend(0, key, 0.5, 2) - (1 - latest)) < 0.2);
  // a pattern seen often enough decides alone (the model is then skipped)
  assert.equal(freq.settled(key, 8), true);
  assert.equal(freq.settled(key, 1e9), false);
  assert.equal(freq.rate(0, key), 1 - latest);
  // steady pages (always dirty) are stable: never counted
  const steady = patternKey(h, 3, 0);
  assert.equal(freq.seen[steady], 0);
});

Deno.test("the sidecar's online prior and thresholds drive the u2c predictor", async () => {
  const model = await loadModel("models/u2c-predictor.onnx");
  const trace = patternTrace(64);
  const tuned = { ...model, meta: { ...model.meta, onlinePrior: 1, threshold: [0.4, 0.45, 0.5] } };
  const p = createPredictor({ model: tuned });
  for (const r of trace.rounds.slice(0, 30)) p.observe(r);
  const pred = await p.predict();
  assert.deepEqual(pred.threshold, [0.4, 0.45, 0.5]);
  assert.deepEqual(decisionThresholds({ ...model.meta, threshold: 0.3 }, 2), [0.3, 0.3]);
  assert.deepEqual(decisionThresholds({ ...model.meta, threshold: undefined }, 1), [0.5]);
  const [online] = await evaluateTrace(trace, createPredictor({ model: tuned }), { warmup: 20 });
  const alone = { ...model, meta: { ...model.meta, onlinePrior: undefined, threshold: undefined } };
  const [plain] = await evaluateTrace(trace, createPredictor({ model: alone }), { warmup: 20 });
  // the alternating and rotating pages are learned from the trace's own past
  assert.ok(online.f1 > 0.93, `u2c with online frequencies F1 ${online.f1}`);
  assert.ok(online.f1 > plain.f1 + 0.1, `F1 ${online.f1} vs the model alone ${plain.f1}`);
});
