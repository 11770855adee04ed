/**
 * Crafted traces for the predictor tests: a synthetic workload with known per-page patterns,
 * encoded with the real trace writer and decoded with the real reader.
 *
 * @module
 */
import {
  decodeTrace,
  encodeTrace,
  type Trace,
  type TraceHeader,
  type TraceRound,
} from "../../src/trace/mod.ts";
import { header, mapping } from "../support/traces.ts";

export { header, mapping };

/**
 * A trace of `rounds` rounds over one 64-page mapping: pages 0–7 dirty every round, pages 8–15
 * every other round, page 16 + (r mod 8) in round r, the rest never.
 *
 * @param rounds rounds to write (round 0 included)
 * @param extra header overrides
 */
export function patternTrace(rounds: number, extra: Partial<TraceHeader> = {}): Trace {
  const h = header(extra);
  const out: TraceRound[] = [];
  for (let r = 0; r < rounds; r++) {
    const pages: number[] = [0, 1, 2, 3, 4, 5, 6, 7];
    if (r % 2 === 0) pages.push(8, 9, 10, 11, 12, 13, 14, 15);
    pages.push(16 + (r % 8));
    out.push({
      round: r,
      elapsedMs: r * 100,
      scanMs: 1,
      residentPages: 64,
      pids: [42],
      added: r === 0 ? [mapping(1, 64)] : [],
      removed: [],
      dirty: new Map([[1, Uint32Array.from(pages.sort((a, b) => a - b))]]),
      features: new Float64Array(h.featureNames.length).fill(r),
    });
  }
  return decodeTrace(encodeTrace(h, out, { rounds, reason: "rounds" }));
}
