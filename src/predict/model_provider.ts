/**
 * The two-phase predictor as the prediction provider of the engines and the simulator, answering
 * in round windows: "which pages, and how many, will be written during the next round lasting d
 * ms, and during the two (or more) after it".
 *
 * Phase 1: a page whose last k dirty bits are all set is stable-dirty and is written in every
 * window. Phase 2, every other page: its class (time since its last write, long-run write share)
 * gives the chance of a write within d ms from the container's own online window rates
 * ({@linkcode WindowRates}); with a window model ({@linkcode WindowModel}) that chance is blended
 * with the model's answer: cumulative hazards H = (E·H_online + prior·H_model) / (E + prior), E
 * the page-intervals the container has shown in the page's class, `prior` from the sidecar. So
 * the model decides for classes the container has not shown yet, and the container's own
 * behaviour takes over as it accumulates.
 *
 * A later window [a, b) of a page with F(x) = P(written within x from now) and F₀ the curve of a
 * freshly written page: P = F(b) − F(a)·(1 − F₀(b − a)) (written in [a, b) either as its first
 * write, or again after a write before a).
 *
 * @module
 */
import type { PredictionView } from "../policy/types.ts";
import type { Predictor } from "./online.ts";
import { DEFAULT_PHASE1, isStable } from "./phase1.ts";
import type { DirtySample, PredictionProvider, ViewContext } from "./provider.ts";
import { hazardAt, type WindowModel } from "./window_model.ts";
import {
  integratedHazard,
  shareBucket,
  SINCE_BUCKETS,
  sinceBucket,
  UNIT_MS,
  WindowRates,
} from "./window_rates.ts";

/** Evidence, in multiples of the prior, past which a class's own rates decide alone. */
const SETTLED = 100;

/** How many rounds ahead the view's expected dirty counts reach. */
const VIEW_ROUNDS = 12;

/** Pages that behave alike: one class (and model row), one curve. */
interface Group {
  /** Share bucket. */
  share: number;
  /** Time since the last write now, ms (−1: stable-dirty, written in every window). */
  since: number;
  /** Pages in the group. */
  count: number;
  /** The window model's row (−1: none). */
  row: number;
  /** With a model: its cumulative hazard at each window class. */
  modelH?: Float32Array;
  /** Evidence of the group's class: page-intervals observed in it. */
  evidence: number;
}

/** Options of {@linkcode PredictorProvider}. */
export interface PredictorProviderOptions {
  /** Phase-2 window model; none = the online window rates alone. */
  windowModel?: WindowModel;
  /** Override the sidecar's prior (evidence the model's answer is worth). */
  prior?: number;
}

/** A {@linkcode PredictionProvider} backed by the two-phase predictor, in round windows. */
export class PredictorProvider implements PredictionProvider {
  readonly #predictor: Predictor;
  readonly #rates = new WindowRates();
  #dirtySinceView = true;
  #groups: Group[] = [];
  #groupOf = new Map<number, Int32Array>();
  #table: Float64Array = new Float64Array(0);
  readonly #model?: WindowModel;
  readonly #prior: number;

  /**
   * @param predictor a fresh predictor (its histories and phase-1 test are used)
   * @param options the phase-2 window model
   * @example
   * ```ts
   * import { createPredictor } from "./online.ts";
   * const provider = new PredictorProvider(createPredictor({ mode: "phase1-only" }));
   * ```
   */
  constructor(predictor: Predictor, options: PredictorProviderOptions = {}) {
    this.#predictor = predictor;
    this.#model = options.windowModel;
    this.#prior = options.prior ?? options.windowModel?.meta.prior ?? 0;
  }

  /** The online window rates (for inspection). */
  get rates(): WindowRates {
    return this.#rates;
  }

  /** Feed one tracker sample; it must carry its trace round. */
  observe(sample: DirtySample): void {
    if (!sample.round) throw new Error("PredictorProvider needs samples with their trace round");
    const history = this.#predictor.history;
    if (sample.round.round > 0) this.#rates.learn(history, sample.dirty, sample.intervalMs);
    this.#predictor.observe({ ...sample.round, intervalMs: sample.intervalMs });
    this.#dirtySinceView = true;
  }

  /** Group the pages, then answer the policy's questions in round terms. */
  async view(ctx: ViewContext): Promise<PredictionView> {
    if (this.#dirtySinceView) {
      await this.#regroup();
      this.#dirtySinceView = false;
    }
    const groups = this.#groups, table = this.#table;
    const classes = this.#model?.meta.windowsMs ?? [], prior = this.#prior;
    /** P(written within x ms from now) of group g; fresh: as if written just now. */
    // Whole 100 ms units follow the hazard; the last partial unit counts pro rata (a page written
    // in a unit with probability q is written in a fraction f of it with probability q·f), the
    // way the simulator replays a partial tracker interval.
    const F = (g: Group, x: number, fresh = false): number => {
      if (x <= 0) return 0;
      const n = x / UNIT_MS, whole = Math.floor(n), frac = n - whole;
      if (g.since < 0) return whole >= 1 ? 1 : frac;
      const s0 = fresh ? 0 : g.since, wholeMs = whole * UNIT_MS;
      let h = integratedHazard(table, g.share, s0, wholeMs);
      if (g.modelH && !fresh && wholeMs > 0) {
        h = (g.evidence * h + prior * hazardAt(g.modelH, classes, wholeMs)) /
          (g.evidence + prior);
      }
      const lambda = table[g.share * SINCE_BUCKETS + sinceBucket(s0 + wholeMs)];
      const partial = frac > 0 ? (1 - Math.exp(-lambda * UNIT_MS)) * frac : 0;
      return 1 - Math.exp(-h) * (1 - partial);
    };
    const P = (g: Group, a: number, b: number): number => {
      if (a <= 0) return F(g, b);
      return Math.max(0, F(g, b) - F(g, a) * (1 - F(g, b - a, true)));
    };
    const count = (a: number, b: number): number => {
      let sum = 0;
      for (const g of groups) sum += g.count * P(g, a, b);
      return sum;
    };
    const roundMs = (pages: number, throttle: number) =>
      (pages * ctx.wireBytesPerPage / ctx.bandwidthBps * 1000 + ctx.rttMs) * (1 - throttle / 100);
    const chain = (throttle: number): number[] => {
      const out: number[] = [];
      let pending = ctx.pendingPages, t = 0;
      for (let r = 0; r < VIEW_ROUNDS; r++) {
        const d = roundMs(pending, throttle);
        pending = count(t, t + d);
        out.push(pending);
        t += d;
      }
      return out;
    };
    const groupOf = this.#groupOf;
    const within = (id: number, page: number, ms: number): number => {
      const g = groupOf.get(id)?.[page];
      return g === undefined || g < 0 ? 0 : F(groups[g], ms);
    };
    const firstRound = roundMs(ctx.pendingPages, ctx.throttlePercent);
    return {
      horizon: VIEW_ROUNDS,
      expectedDirty: chain(ctx.throttlePercent),
      expectedDirtyWithin: (ms) => count(0, ms),
      willRedirty: (id, page, h) => within(id, page, firstRound * h),
      willRedirtyWithin: within,
      expectedDirtyThrottled: (percent) => Math.min(...chain(percent)),
    };
  }

  /** Sort every page into its group (and run the window model once per distinct input). */
  async #regroup(): Promise<void> {
    const history = this.#predictor.history;
    this.#table = this.#rates.table();
    const groups: Group[] = [];
    const byKey = new Map<number, number>();
    const groupOf = new Map<number, Int32Array>();
    const p1 = DEFAULT_PHASE1;
    const rows = this.#model && this.#prior > 0 ? this.#model.begin(history) : undefined;
    const expo = this.#rates.exposureMs;
    for (const h of history.mappings.values()) {
      const of = new Int32Array(h.pages);
      groupOf.set(h.id, of);
      const life = history.nowMs - h.bornMs;
      for (let page = 0; page < h.pages; page++) {
        const bits = h.dirty[page];
        let share: number, since: number;
        if ((bits & 1) === 1 && isStable(bits, p1, h.age)) {
          share = -1;
          since = -1;
        } else {
          const w = h.writes[page];
          share = shareBucket(w, h.lastWriteMs[page] - h.bornMs + UNIT_MS);
          since = w === 0 ? life : history.nowMs - h.lastWriteMs[page];
        }
        // The model only runs for pages whose class the container has shown < SETTLED × prior
        // times: beyond that its weight in the blend is < 1 %.
        const evidence = since < 0 ? 0 : expo[share * SINCE_BUCKETS + sinceBucket(since)] / UNIT_MS;
        const row = rows && since >= 0 && evidence < SETTLED * this.#prior ? rows.add(h, page) : -1;
        // row (< 2²⁰), share bucket and since (ms, < 2²⁷) packed exactly in a double
        const key = ((row + 1) * 10 + share + 1) * 134217728 +
          Math.min(134217727, Math.round(since));
        let g = byKey.get(key);
        if (g === undefined) {
          g = groups.length;
          byKey.set(key, g);
          groups.push({ share, since, count: 0, row, evidence });
        }
        groups[g].count++;
        of[page] = g;
      }
    }
    if (rows) {
      const h = await rows.run();
      const K = this.#model!.meta.windowsMs.length;
      for (const g of groups) if (g.row >= 0) g.modelH = h.subarray(g.row * K, (g.row + 1) * K);
    }
    this.#groups = groups;
    this.#groupOf = groupOf;
  }
}
