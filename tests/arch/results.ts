/**
 * Results that must not depend on the CPU architecture, computed section by section from shipped
 * inputs: the shim's page hashes and pagemap parsing, the LZ4 codec, the trace format, phase 1 and
 * the phase-2 ONNX model, the policies on the simulator, and the CLI's output. The arm64 lane
 * computes them natively (x86_64) and under qemu-user (aarch64) and compares them
 * ({@linkcode ./compare.ts}).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { lz4Compress, lz4Decompress } from "../../src/native/codec.ts";
import { pagemapSelectBuffer, PM_PRESENT, PM_SOFT_DIRTY, shim } from "../../src/native/ffi.ts";
import { hashTs } from "../../src/native/page_hash.ts";

/** The shim's own page hashes (never the TypeScript fallback), as pairs of 64-bit words. */
function hashPages(data: Uint8Array): BigUint64Array {
  const pages = Math.floor(data.length / 4096);
  const out = new BigUint64Array(pages * 2);
  shim().u2cm_hash_pages(data as Uint8Array<ArrayBuffer>, pages, out);
  return out;
}
import {
  createPredictor,
  heldOutModelFile,
  loadModel,
  type OnnxModel,
  TickPredictorProvider,
} from "../../src/predict/mod.ts";
import { ALL_POLICIES, compare, type SimConfig } from "../../src/sim/mod.ts";
import {
  decodeTrace,
  encodeTrace,
  readTraceFile,
  summarizeTrace,
  type Trace,
} from "../../src/trace/mod.ts";
import { decodeBase64 } from "../../src/util/base64.ts";

/**
 * The shipped corpus traces the lane uses, and how many of their rounds: small ones, because
 * under qemu-user decoding, the simulator and the model run 30–100× slower.
 */
export const LANE_TRACES = [
  { file: "models/corpus/numpy-cg-a.u2ct.gz", rounds: 40 },
  { file: "models/corpus/stress-vm-a.u2ct.gz", rounds: 40 },
];

/**
 * The slice the model and the simulator run on: numpy-cg has unstable pages the phase-2 model
 * scores, and all nine policies simulate it in about a second natively (stress-vm takes 7 s).
 */
export const MODEL_TRACE = LANE_TRACES[0];

const models = new Map<string, Promise<OnnxModel>>();

/** The held-out u2c model for a workload, loaded once (each load compiles onnxruntime's wasm). */
function heldOutModel(workload: string): Promise<OnnxModel> {
  const file = heldOutModelFile("models", "u2c", workload);
  if (!models.has(file)) models.set(file, loadModel(file));
  return models.get(file)!;
}

/** sha256 of bytes, hex. */
export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Deterministic pseudo-random bytes (xorshift32), the same on every architecture. */
export function prngBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** Four kinds of pages: zero, a byte ramp, pseudo-random, text. */
function samplePages(): Uint8Array {
  const data = new Uint8Array(16 * 4096);
  for (let i = 0; i < 4096; i++) data[4096 + i] = i & 0xff;
  data.set(prngBytes(8 * 4096, 7), 2 * 4096);
  const text = new TextEncoder().encode("key:1234 value-5678\n".repeat(1024)).subarray(0, 6 * 4096);
  data.set(text, 10 * 4096);
  return data;
}

/**
 * The shim over local buffers: page hashes (native and the TypeScript fallback), the pages a
 * diff of two hash sets finds, and recorded pagemap entries parsed for soft-dirty pages.
 */
export function shimResults(): Record<string, unknown> {
  const data = samplePages();
  const before = hashPages(data);
  const ts = new BigUint64Array(before.length);
  for (let p = 0; p < data.length / 4096; p++) {
    hashTs(data.subarray(p * 4096, (p + 1) * 4096), ts, p * 2);
  }
  const changed = data.slice();
  for (const p of [1, 5, 11]) changed[p * 4096 + 100] ^= 0x5a;
  const after = hashPages(changed);
  const diff: number[] = [];
  for (let p = 0; p < before.length / 2; p++) {
    if (before[2 * p] !== after[2 * p] || before[2 * p + 1] !== after[2 * p + 1]) diff.push(p);
  }
  const fixture = JSON.parse(
    Deno.readTextFileSync(new URL("../fixtures/pagemap_softdirty.json", import.meta.url)),
  ) as { regions: { name: string; entries: string }[] };
  const pagemap = fixture.regions.map((r) => {
    const bytes = decodeBase64(r.entries);
    const entries = new BigUint64Array(bytes.buffer, bytes.byteOffset, bytes.length / 8);
    const sel = pagemapSelectBuffer(entries, PM_PRESENT, PM_SOFT_DIRTY);
    return { name: r.name, dirty: [...sel.pages], resident: sel.resident };
  });
  return {
    hashes: [...before].map((v) => v.toString(16)),
    hashes_ts: [...ts].map((v) => v.toString(16)),
    diff,
    pagemap,
  };
}

/** The LZ4 codec: the compressed blocks' digests and sizes, and whether they round-trip. */
export function lz4Results(): Record<string, unknown> {
  const inputs: Record<string, Uint8Array> = {
    zero: new Uint8Array(64 * 4096),
    random: prngBytes(16 * 4096, 11),
    text: new TextEncoder().encode("key:1234 value-1234\n".repeat(20000)),
    mixed: samplePages(),
  };
  const out: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(inputs)) {
    const block = lz4Compress(raw);
    const back = lz4Decompress(block, raw.length);
    out[name] = {
      bytes: block.length,
      sha256: sha256(block),
      round_trips: sha256(back) === sha256(raw),
    };
  }
  return out;
}

/** The first `rounds` rounds of a shipped corpus trace, re-encoded (and decoded again). */
export async function laneTrace(
  file: string,
  rounds: number,
): Promise<{ trace: Trace; bytes: Uint8Array }> {
  const full = await readTraceFile(file);
  const bytes = encodeTrace(full.header, full.rounds.slice(0, rounds), full.end);
  return { trace: decodeTrace(bytes, { source: file }), bytes };
}

/** The trace format: digests of the re-encoded corpus slices and their summaries. */
export async function traceResults(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const { file, rounds } of LANE_TRACES) {
    const { trace, bytes } = await laneTrace(file, rounds);
    const again = encodeTrace(trace.header, trace.rounds, trace.end);
    out[file] = {
      bytes: bytes.length,
      sha256: sha256(bytes),
      reencoded_sha256: sha256(again),
      summary: summarizeTrace(trace),
    };
  }
  return out;
}

/**
 * Phase 1 and the phase-2 model on the corpus slices: the expected dirty counts and every
 * probability strictly between 0 and 1 (the model's) at three points of each slice.
 */
export async function predictResults(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const { file, rounds } of [MODEL_TRACE]) {
    const { trace } = await laneTrace(file, rounds);
    const model = await heldOutModel(trace.header.workload!.name);
    const u2c = createPredictor({ model });
    const phase1 = createPredictor({ mode: "phase1-only", featureCount: model.meta.featureCount });
    const at = [Math.floor(rounds / 2), rounds - 6, rounds - 1];
    const points: unknown[] = [];
    for (let i = 0; i < trace.rounds.length; i++) {
      u2c.observe(trace.rounds[i]);
      phase1.observe(trace.rounds[i]);
      if (!at.includes(i)) continue;
      const p = await u2c.predict();
      const q = await phase1.predict();
      const probs: number[] = [];
      for (const [id, steps] of [...p.probs].sort((a, b) => a[0] - b[0])) {
        steps.forEach((a, h) =>
          a.forEach((v, page) => {
            if (v > 0 && v < 1) probs.push(id, h, page, v);
          })
        );
      }
      points.push({
        round: i,
        model_pages: p.modelPages,
        expected_dirty: [...p.expectedDirty],
        phase1_expected_dirty: [...q.expectedDirty],
        probs,
      });
    }
    out[file] = points;
  }
  return out;
}

/** Every policy on the simulator over the corpus slices, with the u2c predictor. */
export async function simulateResults(): Promise<Record<string, unknown>> {
  const { file, rounds } = MODEL_TRACE;
  const { trace } = await laneTrace(file, rounds);
  const model = await heldOutModel(trace.header.workload!.name);
  const config: SimConfig = {
    bandwidthBps: 125e6,
    rttMs: 1,
    freezeMs: 30,
    restoreMs: 60,
    dumpUsPerPage: 1,
    restoreUsPerPage: 1,
    startMs: 500,
  };
  const { results, summary } = await compare(
    [{ name: file, trace }],
    ALL_POLICIES,
    config,
    () => new TickPredictorProvider(createPredictor({ model })),
  );
  return { [file]: { results, summary } };
}
