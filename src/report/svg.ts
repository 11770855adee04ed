/**
 * Small SVG chart primitives for self-contained reports: a line chart, a bar chart (horizontal or
 * vertical) and a timeline of segments. Each returns one `<svg>` element as a string, with every
 * text escaped, no scripts and no external references.
 *
 * @example
 * ```ts
 * import { lineChart } from "./svg.ts";
 * const svg = lineChart({
 *   title: "dirty pages per round",
 *   series: [{ name: "actual", points: [[0, 120], [1, 80], [2, 95]] }],
 * });
 * ```
 *
 * @module
 */

/** Colours used for series in order. */
export const PALETTE = [
  "#2563eb",
  "#ea580c",
  "#16a34a",
  "#9333ea",
  "#dc2626",
  "#0891b2",
  "#ca8a04",
  "#db2777",
  "#4b5563",
] as const;

/** One line of a {@linkcode lineChart}. */
export interface LineSeries {
  /** Legend name. */
  name: string;
  /** `[x, y]` points, drawn in order. */
  points: ReadonlyArray<readonly [number, number]>;
  /** Stroke colour. @default from {@linkcode PALETTE} */
  color?: string;
  /** Draw dashed (e.g. a prediction). @default false */
  dashed?: boolean;
}

/** Options of {@linkcode lineChart}. */
export interface LineChartOptions {
  /** Heading drawn above the plot. */
  title: string;
  /** The lines. */
  series: readonly LineSeries[];
  /** X axis label. @default "" */
  xLabel?: string;
  /** Y axis label. @default "" */
  yLabel?: string;
  /** Width in px. @default 720 */
  width?: number;
  /** Height in px. @default 280 */
  height?: number;
  /** Tick label format. @default {@linkcode compactNumber} */
  format?: (value: number) => string;
}

const M = { left: 64, right: 16, top: 40, bottom: 44 };

/** A line chart with axes, grid, markers and a legend. */
export function lineChart(options: LineChartOptions): string {
  const { title, series, xLabel = "", yLabel = "", width = 720, height = 280 } = options;
  const format = options.format ?? compactNumber;
  const all = series.flatMap((s) => s.points);
  const xMin = Math.min(...all.map((p) => p[0]), 0);
  const xMax = Math.max(...all.map((p) => p[0]), xMin + 1);
  const yTicks = niceTicks(Math.max(...all.map((p) => p[1]), 0));
  const yMax = yTicks[yTicks.length - 1];
  const plotW = width - M.left - M.right;
  const plotH = height - M.top - M.bottom;
  const sx = (x: number) => M.left + ((x - xMin) / (xMax - xMin)) * plotW;
  const sy = (y: number) => M.top + plotH - (y / yMax) * plotH;
  const parts: string[] = [];
  for (const t of yTicks) {
    parts.push(line(M.left, sy(t), M.left + plotW, sy(t), "#e5e7eb"));
    parts.push(text(M.left - 6, sy(t) + 4, format(t), { anchor: "end", size: 11 }));
  }
  for (const t of xTicks(xMin, xMax)) {
    parts.push(text(sx(t), M.top + plotH + 16, format(t), { anchor: "middle", size: 11 }));
  }
  parts.push(line(M.left, M.top + plotH, M.left + plotW, M.top + plotH, "#6b7280"));
  parts.push(line(M.left, M.top, M.left, M.top + plotH, "#6b7280"));
  series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length];
    const pts = s.points.map(([x, y]) => `${r(sx(x))},${r(sy(y))}`).join(" ");
    const dash = s.dashed ? ` stroke-dasharray="6 4"` : "";
    parts.push(
      `<polyline fill="none" stroke="${color}" stroke-width="2"${dash} points="${pts}"/>`,
    );
    if (s.points.length <= 80) {
      for (const [x, y] of s.points) {
        parts.push(
          `<circle cx="${r(sx(x))}" cy="${r(sy(y))}" r="3" fill="${color}">` +
            `<title>${esc(`${s.name}: ${format(x)} → ${y}`)}</title></circle>`,
        );
      }
    }
  });
  parts.push(legend(
    series.map((s, i) => ({
      name: s.name,
      color: s.color ?? PALETTE[i % PALETTE.length],
      dashed: s.dashed,
    })),
    width,
  ));
  if (xLabel) parts.push(text(M.left + plotW / 2, height - 8, xLabel, { anchor: "middle" }));
  if (yLabel) {
    parts.push(
      `<text x="14" y="${r(M.top + plotH / 2)}" font-size="12" fill="#374151" ` +
        `text-anchor="middle" transform="rotate(-90 14 ${r(M.top + plotH / 2)})">${
          esc(yLabel)
        }</text>`,
    );
  }
  return svg(width, height, title, parts);
}

/** One bar of a {@linkcode barChart}. */
export interface Bar {
  /** Category label. */
  label: string;
  /** Value (≥ 0). */
  value: number;
  /** Fill colour. @default the chart's colour */
  color?: string;
}

/** Options of {@linkcode barChart}. */
export interface BarChartOptions {
  /** Heading. */
  title: string;
  /** The bars, in order. */
  bars: readonly Bar[];
  /** Bars grow rightwards (labels on the left) or upwards. @default "horizontal" */
  orientation?: "horizontal" | "vertical";
  /** Value label format. @default {@linkcode compactNumber} */
  format?: (value: number) => string;
  /** Default fill colour. @default PALETTE[0] */
  color?: string;
  /** Width in px. @default 720 */
  width?: number;
}

/** A bar chart with a value label on every bar. */
export function barChart(options: BarChartOptions): string {
  const { title, bars, orientation = "horizontal", color = PALETTE[0], width = 720 } = options;
  const format = options.format ?? compactNumber;
  const max = Math.max(...bars.map((b) => b.value), 0) || 1;
  const parts: string[] = [];
  if (orientation === "horizontal") {
    const labelW = Math.min(200, 16 + 7 * Math.max(...bars.map((b) => b.label.length), 4));
    const rowH = 26;
    const height = M.top + bars.length * rowH + 12;
    const plotW = width - labelW - 90;
    bars.forEach((b, i) => {
      const y = M.top + i * rowH;
      const w = Math.max(1, (b.value / max) * plotW);
      parts.push(text(labelW - 8, y + 17, b.label, { anchor: "end" }));
      parts.push(
        `<rect x="${labelW}" y="${y + 4}" width="${r(w)}" height="${rowH - 8}" rx="2" ` +
          `fill="${b.color ?? color}"><title>${esc(`${b.label}: ${b.value}`)}</title></rect>`,
      );
      parts.push(text(labelW + w + 6, y + 17, format(b.value), { size: 11 }));
    });
    return svg(width, height, title, parts);
  }
  const height = 260;
  const plotH = height - M.top - M.bottom;
  const plotW = width - M.left - M.right;
  const slot = plotW / Math.max(1, bars.length);
  parts.push(line(M.left, M.top + plotH, M.left + plotW, M.top + plotH, "#6b7280"));
  bars.forEach((b, i) => {
    const h = (b.value / max) * plotH;
    const x = M.left + i * slot + slot * 0.15;
    parts.push(
      `<rect x="${r(x)}" y="${r(M.top + plotH - h)}" width="${r(slot * 0.7)}" height="${r(h)}" ` +
        `rx="2" fill="${b.color ?? color}"><title>${esc(`${b.label}: ${b.value}`)}</title></rect>`,
    );
    const cx = x + slot * 0.35;
    if (bars.length <= 40) {
      parts.push(text(cx, M.top + plotH - h - 4, format(b.value), { anchor: "middle", size: 10 }));
    }
    if (bars.length <= 40 || i % Math.ceil(bars.length / 40) === 0) {
      parts.push(text(cx, M.top + plotH + 16, b.label, { anchor: "middle", size: 11 }));
    }
  });
  return svg(width, height, title, parts);
}

/** One segment of a {@linkcode timelineChart}. */
export interface Segment {
  /** Label (drawn inside when it fits, always in the tooltip and legend). */
  label: string;
  /** Start, in the chart's unit. */
  start: number;
  /** Length, in the chart's unit. */
  length: number;
  /** Fill colour. */
  color: string;
}

/** Options of {@linkcode timelineChart}. */
export interface TimelineOptions {
  /** Heading. */
  title: string;
  /** Segments on one time axis. */
  segments: readonly Segment[];
  /** Axis unit shown after tick labels. @default "ms" */
  unit?: string;
  /** Width in px. @default 720 */
  width?: number;
}

/** Segments on a single horizontal time axis (a Gantt row), with a legend by colour. */
export function timelineChart(options: TimelineOptions): string {
  const { title, segments, unit = "ms", width = 720 } = options;
  const height = 150;
  const end = Math.max(...segments.map((s) => s.start + s.length), 1);
  const plotW = width - M.left - M.right;
  const sx = (t: number) => M.left + (t / end) * plotW;
  const y = M.top + 14;
  const parts: string[] = [];
  for (const s of segments) {
    const x = sx(s.start);
    const w = Math.max(1, sx(s.start + s.length) - x);
    parts.push(
      `<rect x="${r(x)}" y="${y}" width="${r(w)}" height="36" fill="${s.color}" ` +
        `stroke="#fff" stroke-width="1"><title>${
          esc(`${s.label}: ${s.start}–${s.start + s.length} ${unit}`)
        }</title></rect>`,
    );
    if (w > 7 * s.label.length + 6) {
      parts.push(text(x + w / 2, y + 23, s.label, { anchor: "middle", size: 11, fill: "#fff" }));
    }
  }
  for (const t of xTicks(0, end)) {
    parts.push(line(sx(t), y + 40, sx(t), y + 46, "#6b7280"));
    parts.push(text(sx(t), y + 60, `${compactNumber(t)} ${unit}`, { anchor: "middle", size: 11 }));
  }
  const seen = new Map<string, string>();
  for (const s of segments) {
    const key = s.label.replace(/\s*\d+$/, "");
    if (!seen.has(key)) seen.set(key, s.color);
  }
  parts.push(legend([...seen].map(([name, color]) => ({ name, color })), width));
  return svg(width, height, title, parts);
}

/** Format a number compactly: 950, 1.2k, 3.4M, 0.25. */
export function compactNumber(value: number): string {
  const a = Math.abs(value);
  if (a >= 1e9) return `${trim(value / 1e9)}G`;
  if (a >= 1e6) return `${trim(value / 1e6)}M`;
  if (a >= 1e4) return `${trim(value / 1e3)}k`;
  if (a >= 100 || Number.isInteger(value)) return String(Math.round(value));
  return trim(value);
}

/** Escape text for XML and HTML. */
export function esc(value: string): string {
  return value.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

/** Tick values 0…≥max in steps of 1, 2 or 5 × 10^k (about `count` of them). */
export function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let t = 0; t < max + step / 2 && ticks.length < 50; t += step) ticks.push(round6(t));
  if (ticks[ticks.length - 1] < max) ticks.push(round6(ticks[ticks.length - 1] + step));
  return ticks;
}

function xTicks(min: number, max: number): number[] {
  const span = max - min;
  const ticks = niceTicks(span, 6).map((t) => round6(min + t)).filter((t) => t <= max + 1e-9);
  return ticks.length > 0 ? ticks : [min];
}

function legend(items: { name: string; color: string; dashed?: boolean }[], width: number): string {
  let x = width - M.right;
  const out: string[] = [];
  for (const item of [...items].reverse()) {
    const w = 7 * item.name.length + 30;
    x -= w;
    const dash = item.dashed ? ` stroke-dasharray="4 3"` : "";
    out.push(
      `<line x1="${r(x)}" y1="30" x2="${r(x + 18)}" y2="30" stroke="${item.color}" ` +
        `stroke-width="3"${dash}/>`,
    );
    out.push(text(x + 22, 34, item.name, { size: 11 }));
  }
  return out.join("");
}

function svg(width: number, height: number, title: string, parts: string[]): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" ` +
    `width="${width}" height="${height}" role="img" aria-label="${esc(title)}" ` +
    `font-family="system-ui, sans-serif"><title>${esc(title)}</title>` +
    `<rect width="${width}" height="${height}" fill="#fff"/>` +
    text(M.left > 0 ? 8 : 0, 18, title, { size: 14, weight: "600", fill: "#111827" }) +
    parts.join("") + `</svg>`;
}

function text(
  x: number,
  y: number,
  value: string,
  o: { anchor?: string; size?: number; fill?: string; weight?: string } = {},
): string {
  const anchor = o.anchor ? ` text-anchor="${o.anchor}"` : "";
  const weight = o.weight ? ` font-weight="${o.weight}"` : "";
  return `<text x="${r(x)}" y="${r(y)}" font-size="${o.size ?? 12}" fill="${
    o.fill ?? "#374151"
  }"${anchor}${weight}>${esc(value)}</text>`;
}

function line(x1: number, y1: number, x2: number, y2: number, stroke: string): string {
  return `<line x1="${r(x1)}" y1="${r(y1)}" x2="${r(x2)}" y2="${r(y2)}" stroke="${stroke}"/>`;
}

function r(n: number): string {
  return String(Math.round(n * 10) / 10);
}

function round6(n: number): number {
  return Number(n.toPrecision(12));
}

function trim(n: number): string {
  return String(Number(n.toFixed(n >= 100 ? 0 : n >= 10 ? 1 : 2)));
}
