/**
 * Page-pattern tables: a compact, exact summary of a trace for offline baselines
 * (`models/baselines.py`: random forest, ARIMA on dirty counts). Every page of every scored round
 * (the same rounds and pages `evaluateTrace` scores) is reduced to its input pattern — its last
 * 16 dirty bits, the count of dirty neighbours within ±2 pages in each of the latest 4 rounds
 * (three bit planes), the
 * number of neighbours, and its mapping's age capped at 16 — and identical patterns of one round
 * are merged into one row with a page count and, per horizon step, how many of those pages were
 * dirty in that future round.
 *
 * Binary layout (little-endian uint32 rows of {@linkcode TABLE_COLUMNS}): round, own bits,
 * neighbour-count planes 0/1/2, neighbours | age << 8, pages, dirty at t+1, t+2, t+3. A
 * `.rounds.u32` companion holds, per scored round, the round index, the real dirty count at
 * t+1..t+3 (0xffffffff where the trace ends) — for count errors.
 *
 * @module
 */
import type { Trace } from "../trace/types.ts";
import { PageHistory } from "./history.ts";

/** uint32 columns per table row. */
export const TABLE_COLUMNS = 10;

/** Own steps kept (the latest 8 rounds). */
const OWN_MASK = 0xff;

/** Horizon steps in a table. */
export const TABLE_HORIZON = 3;

/** A trace summarised by input pattern (see the module doc). */
export interface PatternTable {
  /** `TABLE_COLUMNS` uint32 per row. */
  rows: Uint32Array;
  /** Per scored round: round index, then 1/0 per horizon step (the future round exists). */
  rounds: Uint32Array;
  /** Dirty pages per trace round (round 0, the baseline scan, counts 0). */
  counts: Uint32Array;
}

/**
 * Summarise `trace` by input pattern, scoring rounds from `warmup` on.
 *
 * @param trace the trace
 * @param warmup rounds observed before scoring starts
 */
export function patternTable(trace: Trace, warmup = 16): PatternTable {
  const hist = new PageHistory(trace.header.pageSize, 0);
  const rows: number[] = [];
  const roundRows: number[] = [];
  const rounds = trace.rounds;
  const counts = new Uint32Array(rounds.length);
  for (let t = 1; t < rounds.length; t++) {
    for (const a of rounds[t].dirty.values()) counts[t] += a.length;
  }
  for (let t = 0; t < rounds.length; t++) {
    hist.observe({ ...rounds[t], features: [] });
    if (t < warmup) continue;
    const futures = [1, 2, 3].map((s) => rounds[t + s]);
    roundRows.push(t, ...futures.map((f) => f ? 1 : 0));
    const merged = new Map<number, number[]>();
    for (const h of hist.mappings.values()) {
      const fut = futures.map((f) => f?.dirty.get(h.id));
      const cursor = [0, 0, 0];
      const age = Math.min(h.age, 16);
      for (let p = 0; p < h.pages; p++) {
        const own = h.dirty[p] & OWN_MASK;
        let latest = 0, recent = 0, n = 0; // neighbours dirty in the latest round / latest 4
        for (let q = p - 2; q <= p + 2; q++) {
          if (q === p || q < 0 || q >= h.pages) continue;
          n++;
          latest += h.dirty[q] & 1;
          if ((h.dirty[q] & 0xf) !== 0) recent++;
        }
        const key = own << 16 | latest << 11 | recent << 8 | n << 5 | age;
        let row = merged.get(key);
        if (!row) merged.set(key, row = [t, own, latest, recent, n, age, 0, 0, 0, 0]);
        row[6]++;
        for (let s = 0; s < TABLE_HORIZON; s++) {
          const d = fut[s];
          if (!d) continue;
          let j = cursor[s];
          while (j < d.length && d[j] < p) j++;
          cursor[s] = j;
          if (j < d.length && d[j] === p) row[7 + s]++;
        }
      }
    }
    for (const row of merged.values()) rows.push(...row);
  }
  return { rows: Uint32Array.from(rows), rounds: Uint32Array.from(roundRows), counts };
}
