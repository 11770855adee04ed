/**
 * The online predictor: feed tracker rounds with `observe`, ask `predict` for per-page dirty
 * probabilities for the next `horizon` rounds and the expected dirty-page count per step.
 *
 * Modes: `u2c` (phase 1 for stable pages, the phase-2 model — blended with online pattern
 * frequencies when its sidecar says so — for unstable ones), `lstm` (a model
 * for every page, no phase split), `phase1-only` (data shift for every page), `last-value`
 * (a page dirty in the latest round is predicted dirty).
 *
 * @module
 */
import { CHANNELS, PageHistory, type RoundInput, writeWindow } from "./history.ts";
import { decisionThresholds, type OnnxModel } from "./onnx.ts";
import { dataShift, DEFAULT_PHASE1, isStable, type Phase1Params } from "./phase1.ts";
import { PatternFrequencies, patternKey } from "./frequencies.ts";

/** Predictor modes. */
export type PredictorMode = "u2c" | "lstm" | "phase1-only" | "last-value";

/** Options of {@linkcode createPredictor}. */
export interface PredictorOptions {
  /** Rounds to predict. @default 3 */
  horizon?: number;
  /** Phase-2 model; needed by `u2c` and `lstm`. */
  model?: OnnxModel;
  /** Which predictor. @default "u2c" when a model is given, else "phase1-only" */
  mode?: PredictorMode;
  /** Phase-1 parameters. @default DEFAULT_PHASE1 */
  phase1?: Phase1Params;
  /** Bytes per page. @default 4096 */
  pageSize?: number;
  /** Feature values per round. @default 0 */
  featureCount?: number;
}

/**
 * One prediction. `probs.get(mappingId)[h]` is a `Float32Array` over the mapping's pages with
 * the probability that each page is dirtied in round `h + 1` from now; `expectedDirty[h]` is
 * the sum over all pages (the expected dirty-page count).
 */
export interface Prediction {
  /** Rounds predicted. */
  horizon: number;
  /** Per mapping id: one probability array per horizon step. */
  probs: Map<number, Float32Array[]>;
  /** Expected dirty pages per horizon step. */
  expectedDirty: Float64Array;
  /** Phase-2 model rows run this round (pages with identical inputs share one row). */
  modelPages: number;
  /**
   * Decision threshold per horizon step: a page counts as predicted dirty in round `h + 1` when
   * `probs.get(id)[h][page] >= threshold[h]` (the model's sidecar threshold, chosen on its
   * training workloads; 0.5 without a model). Phase-1 and last-value answers are 0 or 1.
   */
  threshold: number[];
}

/** A stateful page-level dirty predictor. */
export interface Predictor {
  /** The histories it keeps. */
  readonly history: PageHistory;
  /** Feed one round. */
  observe(round: RoundInput): void;
  /** Predict the next `horizon` rounds from everything observed so far. */
  predict(): Promise<Prediction>;
  /** Bytes of predictor state: the page histories plus the online pattern frequencies. */
  stateBytes(): number;
}

/**
 * Create a predictor.
 *
 * @param options horizon, model, mode, phase-1 parameters
 */
export function createPredictor(options: PredictorOptions = {}): Predictor {
  const model = options.model;
  const mode = options.mode ?? (model ? "u2c" : "phase1-only");
  if ((mode === "u2c" || mode === "lstm") && !model) {
    throw new Error(`predictor mode ${mode} needs a model`);
  }
  const horizon = options.horizon ?? model?.meta.horizon ?? 3;
  if (model && horizon > model.meta.horizon) {
    throw new Error(`model predicts ${model.meta.horizon} rounds, asked for ${horizon}`);
  }
  const p1 = options.phase1 ?? DEFAULT_PHASE1;
  const featureCount = options.featureCount ?? model?.meta.featureCount ?? 0;
  const history = new PageHistory(options.pageSize ?? 4096, featureCount);
  const prior = mode === "u2c" ? model?.meta.onlinePrior : undefined;
  const freq = prior !== undefined ? new PatternFrequencies(horizon, p1) : undefined;
  const batch = new Batch(model, freq, prior ?? 0);
  const threshold = decisionThresholds(model?.meta, horizon);
  return {
    history,
    observe(round) {
      history.observe(round);
      freq?.learn(history);
    },
    stateBytes: () => history.stateBytes() + (freq?.stateBytes() ?? 0),
    async predict() {
      const probs = new Map<number, Float32Array[]>();
      batch.reset();
      for (const h of history.mappings.values()) {
        const out = Array.from({ length: horizon }, () => new Float32Array(h.pages));
        probs.set(h.id, out);
        for (let page = 0; page < h.pages; page++) {
          const bits = h.dirty[page];
          if (mode === "last-value") {
            const v = bits & 1;
            for (let s = 0; s < horizon; s++) out[s][page] = v;
          } else if (mode === "phase1-only" || (mode === "u2c" && isStable(bits, p1, h.age))) {
            const v = dataShift(bits, p1);
            for (let s = 0; s < horizon; s++) out[s][page] = v;
          } else {
            batch.add(h, page, out, history.features);
          }
        }
      }
      const modelPages = await batch.flush(horizon, history.features);
      const expectedDirty = new Float64Array(horizon);
      for (const out of probs.values()) {
        for (let s = 0; s < horizon; s++) {
          let sum = 0;
          const a = out[s];
          for (let i = 0; i < a.length; i++) sum += a[i];
          expectedDirty[s] += sum;
        }
      }
      return { horizon, probs, expectedDirty, modelPages, threshold: [...threshold] };
    },
  };
}

/**
 * Evidence (in multiples of the online prior) after which a pattern's own counts decide alone and
 * the model is not run for it: the model's weight would be below 1 / (SETTLED + 1) ≈ 1 %.
 */
const SETTLED = 100;

/**
 * Collects the pages of one round for a single batched model run; with online frequencies, each
 * page's model probability is blended with its pattern's counts.
 */
class Batch {
  private x: Float32Array<ArrayBuffer> = new Float32Array(0);
  private f: Float32Array<ArrayBuffer> = new Float32Array(0);
  private targets: { out: Float32Array[]; page: number; key: number; row: number }[] = [];
  private zero: { out: Float32Array[]; page: number; key: number }[] = [];
  /** Model rows by input: pages whose windows are identical share one row. */
  private rowOf = new Map<string, number>();
  private rows = 0;
  /**
   * The lstm baseline's answers by own dirty bits, across rounds: its output depends on nothing
   * else (no features, no neighbours), so each pattern runs once per trace.
   */
  private readonly known = new Map<number, Float32Array>();
  private ownOfRow: number[] = [];

  constructor(
    private readonly model?: OnnxModel,
    private readonly freq?: PatternFrequencies,
    private readonly prior = 0,
  ) {}

  reset(): void {
    this.targets = [];
    this.zero = [];
    this.rowOf.clear();
    this.rows = 0;
    this.ownOfRow = [];
  }

  add(
    h: import("./history.ts").MappingHistory,
    page: number,
    out: Float32Array[],
    features: Float32Array,
  ): void {
    const meta = this.model!.meta;
    const mask = meta.window >= 32 ? 0xffffffff : (1 << meta.window) - 1;
    // Pages whose own and neighbours' windows are all clean (and fully observed) share one
    // input: run it once.
    const key = this.freq ? patternKey(h, page, 0) : 0;
    // A pattern seen SETTLED × prior times: the model would move p by < 1 / (SETTLED + 1).
    if (this.freq && this.freq.settled(key, Math.max(1, SETTLED * this.prior))) {
      for (let s = 0; s < out.length; s++) out[s][page] = this.freq.rate(s, key);
      return;
    }
    if (h.age >= meta.window && allClean(h, page, meta.radius, mask)) {
      this.zero.push({ out, page, key });
      return;
    }
    // Every input of the window (features are the round's): identical keys, identical rows. The
    // lstm baseline reads only the page's own dirty bits: they alone are its input.
    const lo = Math.max(0, page - meta.radius), hi = Math.min(h.pages - 1, page + meta.radius);
    let input: string;
    const lstm = meta.kind === "lstm";
    if (lstm) {
      const own = h.dirty[page] & mask;
      const p = this.known.get(own);
      if (p) {
        for (let s = 0; s < out.length; s++) out[s][page] = p[s];
        return;
      }
      input = `own:${own}`;
    } else {
      input = `${Math.min(h.age, meta.window)}:${page - lo}:${hi - lo}`;
      for (let q = lo; q <= hi; q++) input += `:${h.dirty[q] & mask}:${h.access[q] & mask}`;
    }
    let row = this.rowOf.get(input);
    if (row === undefined) {
      row = this.rows++;
      this.rowOf.set(input, row);
      const stride = meta.window * CHANNELS;
      this.x = grow(this.x, (row + 1) * stride);
      this.f = grow(this.f, (row + 1) * meta.featureCount);
      writeWindow(h, page, meta.window, meta.radius, this.x, row * stride);
      if (lstm) this.ownOfRow[row] = h.dirty[page] & mask;
      this.f.set(features.subarray(0, meta.featureCount), row * meta.featureCount);
    }
    this.targets.push({ out, page, key, row });
  }

  async flush(horizon: number, features: Float32Array): Promise<number> {
    if (!this.model) return 0;
    const meta = this.model.meta;
    const n = this.rows;
    if (this.zero.length > 0) {
      const x = this.x = grow(this.x, (n + 1) * meta.window * CHANNELS);
      x.fill(0, n * meta.window * CHANNELS, (n + 1) * meta.window * CHANNELS);
      this.f = grow(this.f, (n + 1) * meta.featureCount);
      this.f.set(features.subarray(0, meta.featureCount), n * meta.featureCount);
    }
    const rows = n + (this.zero.length > 0 ? 1 : 0);
    const p = await this.model.run(this.x, this.f, rows);
    if (meta.kind === "lstm") {
      for (let r = 0; r < n; r++) {
        this.known.set(this.ownOfRow[r], p.slice(r * meta.horizon, (r + 1) * meta.horizon));
      }
    }
    const freq = this.freq, prior = this.prior;
    for (const t of this.targets) {
      for (let s = 0; s < horizon; s++) {
        const pm = p[t.row * meta.horizon + s];
        t.out[s][t.page] = freq ? freq.blend(s, t.key, pm, prior) : pm;
      }
    }
    for (const t of this.zero) {
      for (let s = 0; s < horizon; s++) {
        const pm = p[n * meta.horizon + s];
        t.out[s][t.page] = freq ? freq.blend(s, t.key, pm, prior) : pm;
      }
    }
    return rows;
  }
}

function allClean(
  h: import("./history.ts").MappingHistory,
  page: number,
  radius: number,
  mask: number,
): boolean {
  const lo = Math.max(0, page - radius), hi = Math.min(h.pages - 1, page + radius);
  for (let q = lo; q <= hi; q++) if (((h.dirty[q] | h.access[q]) & mask) !== 0) return false;
  return true;
}

function grow(a: Float32Array<ArrayBuffer>, need: number): Float32Array<ArrayBuffer> {
  if (a.length >= need) return a;
  const b = new Float32Array(Math.max(need, a.length * 2, 1024));
  b.set(a);
  return b;
}
