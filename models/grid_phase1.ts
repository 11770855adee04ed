/**
 * Grid search of the phase-1 parameters on validation traces (as the paper did for the
 * data-shift window and threshold). For every (k, CV threshold) it reports the share of pages
 * called stable and, on those pages, the h=1 accuracy and F1 of data shift for every
 * (window, threshold). Prints one JSON object; pick the best row by F1 on stable pages.
 *
 * Usage: deno run -A models/grid_phase1.ts TRACE...
 *
 * @module
 */
import { readTraceFile } from "../src/trace/mod.ts";
import { dataShift, isStable, PageHistory, type Phase1Params } from "../src/predict/mod.ts";

const stability = [[3, 0.5], [3, 0.8], [4, 0.5], [4, 0.6], [5, 0.5]];
const shifts = [[2, 0.5], [3, 0.5], [4, 0.25], [4, 0.5], [4, 0.75], [6, 0.5], [8, 0.5]];
const combos: Phase1Params[] = [];
for (const [k, cv] of stability) {
  for (const [w, t] of shifts) {
    combos.push({ k, cvThreshold: cv, shiftWindow: w, shiftThreshold: t });
  }
}
const c = combos.map(() => ({ tp: 0, fp: 0, fn: 0, tn: 0, all: 0 }));
for (const file of Deno.args) {
  const trace = await readTraceFile(file);
  const h = new PageHistory(trace.header.pageSize, 0);
  for (let t = 0; t < trace.rounds.length - 1; t++) {
    h.observe({ ...trace.rounds[t], features: [] });
    if (t < 16) continue;
    const next = trace.rounds[t + 1].dirty;
    for (const m of h.mappings.values()) {
      const d = next.get(m.id);
      let j = 0;
      for (let p = 0; p < m.pages; p++) {
        while (d && j < d.length && d[j] < p) j++;
        const actual = d !== undefined && j < d.length && d[j] === p;
        const bits = m.dirty[p];
        for (let i = 0; i < combos.length; i++) {
          const s = c[i];
          s.all++;
          if (!isStable(bits, combos[i])) continue;
          const pred = dataShift(bits, combos[i]) === 1;
          if (pred && actual) s.tp++;
          else if (pred) s.fp++;
          else if (actual) s.fn++;
          else s.tn++;
        }
      }
    }
  }
}
const rows = combos.map((p, i) => {
  const s = c[i];
  const n = s.tp + s.fp + s.fn + s.tn;
  const prec = s.tp / Math.max(1, s.tp + s.fp), rec = s.tp / Math.max(1, s.tp + s.fn);
  return {
    ...p,
    stableShare: n / Math.max(1, s.all),
    accuracy: (s.tp + s.tn) / Math.max(1, n),
    f1: prec + rec > 0 ? 2 * prec * rec / (prec + rec) : 0,
  };
});
console.log(JSON.stringify({ traces: Deno.args, rows }, null, 1));
