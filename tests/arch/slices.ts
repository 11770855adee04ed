/**
 * The arm64 lane's trace inputs: the first rounds of shipped corpus traces, committed as
 * re-encoded slices (build/arm64/slices.ts writes them) because decoding a whole corpus trace
 * under qemu-user takes about a minute.
 *
 * @module
 */
import { decodeTrace, encodeTrace, readTraceFile, type Trace } from "../../src/trace/mod.ts";

/** One slice: which corpus trace, how many rounds, and the committed file. */
export interface LaneTrace {
  /** The shipped corpus trace. */
  corpus: string;
  /** Rounds kept from its start. */
  rounds: number;
  /** The committed slice, relative to the repository. */
  slice: string;
}

/**
 * numpy-cg has unstable pages the phase-2 model scores and simulates under all nine policies in
 * about a second natively; stress-vm rewrites its whole working set every round.
 */
export const LANE_TRACES: LaneTrace[] = [
  {
    corpus: "models/corpus/numpy-cg-a.u2ct.gz",
    rounds: 40,
    slice: "tests/fixtures/arch/numpy-cg-a-40.u2ct",
  },
  {
    corpus: "models/corpus/stress-vm-a.u2ct.gz",
    rounds: 40,
    slice: "tests/fixtures/arch/stress-vm-a-40.u2ct",
  },
];

/** The slice the model and the simulator run on (stress-vm costs 7 s natively to simulate). */
export const MODEL_TRACE = LANE_TRACES[0];

/** Encode the first `rounds` rounds of the corpus trace (what the committed slice must hold). */
export async function sliceCorpusTrace(t: LaneTrace): Promise<Uint8Array> {
  const full = await readTraceFile(t.corpus);
  return encodeTrace(full.header, full.rounds.slice(0, t.rounds), full.end);
}

const decoded = new Map<string, { trace: Trace; bytes: Uint8Array }>();

/** The committed slice, read and decoded once per process. */
export function laneTrace(t: LaneTrace): { trace: Trace; bytes: Uint8Array } {
  let hit = decoded.get(t.slice);
  if (!hit) {
    const bytes = Deno.readFileSync(new URL(`../../${t.slice}`, import.meta.url));
    hit = { trace: decodeTrace(bytes, { source: t.slice }), bytes };
    decoded.set(t.slice, hit);
  }
  return hit;
}
