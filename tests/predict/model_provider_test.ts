import assert from "node:assert/strict";
import {
  createPredictor,
  evaluateWindows,
  PredictorProvider,
  TickPredictorProvider,
} from "../../src/predict/mod.ts";
import { patternTrace } from "./craft.ts";

const CTX = {
  pendingPages: 64,
  bandwidthBps: 4096 * 64 * 10, // 64 pages in 100 ms
  rttMs: 0,
  wireBytesPerPage: 4096,
  throttlePercent: 0,
};

function feed(provider: PredictorProvider | TickPredictorProvider, rounds: number) {
  const trace = patternTrace(rounds);
  for (const r of trace.rounds) {
    provider.observe({ dirty: r.dirty, intervalMs: r.round === 0 ? 0 : 100, round: r });
  }
}

Deno.test("the provider predicts the dirty count of a round of any length", async () => {
  const provider = new PredictorProvider(createPredictor({ mode: "phase1-only" }));
  feed(provider, 120);
  const view = await provider.view({ ...CTX, nowMs: 12_000 });
  // Within 100 ms: 8 steady + 8 alternating (every other) + the rotating one ≈ 13..17;
  // within 2 s every page the pattern ever writes: 8 + 8 + 8 = 24.
  const short = view.expectedDirtyWithin!(100), long = view.expectedDirtyWithin!(2000);
  assert.ok(short > 11 && short < 19, `100 ms: ${short}`);
  assert.ok(long > 23 && long < 27, `2 s: ${long}`);
  assert.ok(view.expectedDirtyWithin!(30_000) < 26, "pages never written stay clean");
  // The round after the next: 64 pending pages take 100 ms, then the ~15 dirtied ones 25 ms.
  assert.ok(view.expectedDirty[1] < view.expectedDirty[0]);
  assert.equal(view.willRedirtyWithin!(1, 40, 10_000) < 0.05, true);
  assert.equal(view.willRedirtyWithin!(1, 0, 100) > 0.95, true);
});

Deno.test("in round windows the window provider scores the pattern as well as last-value", async () => {
  const trace = patternTrace(160);
  const [windowed] = await evaluateWindows(
    trace,
    new PredictorProvider(createPredictor({ mode: "phase1-only" })),
    { windowsMs: [2000] },
  );
  const [ticks] = await evaluateWindows(
    trace,
    new TickPredictorProvider(createPredictor({ mode: "phase1-only" })),
    { windowsMs: [2000] },
  );
  const [last] = await evaluateWindows(trace, "last-value", { windowsMs: [2000] });
  assert.ok(windowed.f1 > 0.95, `window provider F1 ${windowed.f1}`);
  assert.ok(ticks.f1 > 0.9, `window-free tick view F1 ${ticks.f1}`);
  assert.ok(last.f1 > 0.95, `last-value over 2 s windows ${last.f1}`);
  assert.ok(windowed.countApeMedian < 0.1, `count error ${windowed.countApeMedian}`);
});
