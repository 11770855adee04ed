/**
 * A small Prometheus registry (counters, gauges, histograms with labels) rendered in the text
 * exposition format 0.0.4, and {@linkcode serveMetrics} to expose it on a loopback port.
 *
 * @example
 * ```ts
 * import { MetricsRegistry, serveMetrics } from "./metrics.ts";
 * const registry = new MetricsRegistry();
 * const hits = registry.counter("demo_hits_total", "Hits.", ["route"]);
 * hits.inc({ route: "/" });
 * const server = serveMetrics({ port: 0, registry });
 * console.log(await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text());
 * await server.shutdown();
 * ```
 *
 * @module
 */

/** Label values of one series. */
export type Labels = Record<string, string>;

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const MAX_SERIES = 10_000;

/** A metric that renders itself in the exposition format. */
interface Metric {
  render(): string;
}

abstract class Family<T> implements Metric {
  readonly series = new Map<string, { labels: Labels; value: T }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: string,
    readonly labelNames: readonly string[],
  ) {
    if (!NAME_RE.test(name)) throw new Error(`bad metric name '${name}'`);
    for (const l of labelNames) if (!LABEL_RE.test(l)) throw new Error(`bad label name '${l}'`);
  }
  protected slot(labels: Labels, init: () => T): { labels: Labels; value: T } {
    const keys = Object.keys(labels);
    if (keys.length !== this.labelNames.length || !this.labelNames.every((l) => l in labels)) {
      throw new Error(`${this.name} takes labels ${this.labelNames.join(", ") || "(none)"}`);
    }
    const key = this.labelNames.map((l) => labels[l]).join("\u0000");
    let entry = this.series.get(key);
    if (!entry) {
      if (this.series.size >= MAX_SERIES) throw new Error(`${this.name}: too many series`);
      entry = { labels: { ...labels }, value: init() };
      this.series.set(key, entry);
    }
    return entry;
  }
  protected header(): string {
    return `# HELP ${this.name} ${escapeHelp(this.help)}\n# TYPE ${this.name} ${this.type}\n`;
  }
  abstract render(): string;
}

/** A monotonically increasing count. */
export class Counter extends Family<number> {
  /** @internal */
  constructor(name: string, help: string, labelNames: readonly string[]) {
    super(name, help, "counter", labelNames);
    if (labelNames.length === 0) this.slot({}, () => 0);
  }
  /** Add `value` (≥ 0) to the series of `labels`. */
  inc(labels: Labels = {}, value = 1): void {
    if (!(value >= 0)) throw new Error(`${this.name}: a counter only goes up`);
    this.slot(labels, () => 0).value += value;
  }
  /** The current value of a series. */
  get(labels: Labels = {}): number {
    return this.slot(labels, () => 0).value;
  }
  /** @internal */
  render(): string {
    let out = this.header();
    for (const { labels, value } of this.series.values()) {
      out += `${this.name}${labelText(labels)} ${num(value)}\n`;
    }
    return out;
  }
}

/** A value that goes up and down. */
export class Gauge extends Family<number> {
  /** @internal */
  constructor(name: string, help: string, labelNames: readonly string[]) {
    super(name, help, "gauge", labelNames);
    if (labelNames.length === 0) this.slot({}, () => 0);
  }
  /** Set the series of `labels` to `value`. */
  set(value: number, labels: Labels = {}): void {
    this.slot(labels, () => 0).value = value;
  }
  /** Add `value` (may be negative). */
  inc(labels: Labels = {}, value = 1): void {
    this.slot(labels, () => 0).value += value;
  }
  /** Subtract `value`. */
  dec(labels: Labels = {}, value = 1): void {
    this.inc(labels, -value);
  }
  /** The current value of a series. */
  get(labels: Labels = {}): number {
    return this.slot(labels, () => 0).value;
  }
  /** @internal */
  render(): string {
    let out = this.header();
    for (const { labels, value } of this.series.values()) {
      out += `${this.name}${labelText(labels)} ${num(value)}\n`;
    }
    return out;
  }
}

interface HistogramState {
  counts: number[];
  sum: number;
  count: number;
}

/** A distribution of observations in cumulative buckets. */
export class Histogram extends Family<HistogramState> {
  /** Upper bounds of the buckets, ascending (`+Inf` is implicit). */
  readonly buckets: readonly number[];
  /** @internal */
  constructor(
    name: string,
    help: string,
    buckets: readonly number[],
    labelNames: readonly string[],
  ) {
    super(name, help, "histogram", labelNames);
    if (labelNames.includes("le")) throw new Error(`${name}: 'le' is reserved`);
    const sorted = [...buckets].sort((a, b) => a - b);
    if (sorted.length === 0 || sorted.some((b, i) => !Number.isFinite(b) || sorted[i - 1] === b)) {
      throw new Error(`${name}: buckets must be distinct finite numbers`);
    }
    this.buckets = sorted;
    if (labelNames.length === 0) this.slot({}, () => this.#empty());
  }
  #empty(): HistogramState {
    return { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
  }
  /** Record one observation. */
  observe(value: number, labels: Labels = {}): void {
    const state = this.slot(labels, () => this.#empty()).value;
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]) state.counts[i]++;
    state.sum += value;
    state.count++;
  }
  /** Count and sum of a series. */
  get(labels: Labels = {}): { count: number; sum: number } {
    const { count, sum } = this.slot(labels, () => this.#empty()).value;
    return { count, sum };
  }
  /** @internal */
  render(): string {
    let out = this.header();
    for (const { labels, value } of this.series.values()) {
      this.buckets.forEach((b, i) => {
        out += `${this.name}_bucket${labelText({ ...labels, le: num(b) })} ${value.counts[i]}\n`;
      });
      out += `${this.name}_bucket${labelText({ ...labels, le: "+Inf" })} ${value.count}\n`;
      out += `${this.name}_sum${labelText(labels)} ${num(value.sum)}\n`;
      out += `${this.name}_count${labelText(labels)} ${value.count}\n`;
    }
    return out;
  }
}

/** Exponential bucket bounds: `start`, `start·factor`, … (`count` of them). */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => Number((start * factor ** i).toPrecision(6)));
}

/** A set of metrics rendered together. */
export class MetricsRegistry {
  #metrics = new Map<string, Metric>();

  /** Register a counter. */
  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.#add(name, new Counter(name, help, labelNames));
  }
  /** Register a gauge. */
  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.#add(name, new Gauge(name, help, labelNames));
  }
  /** Register a histogram with bucket upper bounds `buckets`. */
  histogram(
    name: string,
    help: string,
    buckets: readonly number[],
    labelNames: readonly string[] = [],
  ): Histogram {
    return this.#add(name, new Histogram(name, help, buckets, labelNames));
  }
  /** The exposition text of every metric. */
  render(): string {
    return [...this.#metrics.values()].map((m) => m.render()).join("");
  }
  #add<T extends Metric>(name: string, metric: T): T {
    if (this.#metrics.has(name)) throw new Error(`metric '${name}' is registered twice`);
    this.#metrics.set(name, metric);
    return metric;
  }
}

/** The exposition format's content type. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Options of {@linkcode serveMetrics}. */
export interface ServeMetricsOptions {
  /** TCP port; 0 picks a free one. */
  port: number;
  /** The registry to expose. */
  registry: MetricsRegistry;
  /** Address to bind: loopback only by default. @default "127.0.0.1" */
  hostname?: string;
  /** Stops the server when aborted. */
  signal?: AbortSignal;
}

/** A running metrics endpoint. */
export interface MetricsServer {
  /** The bound address. */
  hostname: string;
  /** The bound port. */
  port: number;
  /** Stop serving. */
  shutdown(): Promise<void>;
}

/** Serve `GET /metrics` on `hostname:port` (127.0.0.1 by default). */
export function serveMetrics(options: ServeMetricsOptions): MetricsServer {
  const { port, registry, hostname = "127.0.0.1", signal } = options;
  const server = Deno.serve({ port, hostname, signal, onListen: () => {} }, (req) => {
    const url = new URL(req.url);
    if (url.pathname !== "/metrics") return new Response("not found\n", { status: 404 });
    if (req.method !== "GET" && req.method !== "HEAD") {
      return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
    }
    return new Response(registry.render(), { headers: { "content-type": METRICS_CONTENT_TYPE } });
  });
  return {
    hostname: server.addr.hostname,
    port: server.addr.port,
    shutdown: () => server.shutdown(),
  };
}

function labelText(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return "";
  return `{${entries.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`;
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function num(value: number): string {
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return Number.isNaN(value) ? "NaN" : String(value);
}
