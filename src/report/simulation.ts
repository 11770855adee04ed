/**
 * The report of a policy comparison (`u2cm simulate`): total time, downtime and bytes per policy
 * as bars, dirty pages per round (predicted vs actual where the rows carry predictions) and a table
 * with every number.
 *
 * @module
 */
import { renderPage, type Stat, type Table } from "./html.ts";
import { bytesText } from "./migration.ts";
import type { SimulationData } from "./schema.ts";
import { barChart, lineChart, type LineSeries, PALETTE } from "./svg.ts";

/**
 * Render a self-contained HTML page for simulation results.
 *
 * @example
 * ```ts
 * import { renderSimulationReport } from "./simulation.ts";
 * const html = renderSimulationReport({ trace: "redis.u2ct", bandwidth_bps: 125e6, results: [
 *   { policy: "u2c", total_ms: 900, downtime_ms: 40, bytes_sent: 1e8, precopy_rounds: 4,
 *     pages_resent: 1200 },
 * ] });
 * ```
 */
export function renderSimulationReport(data: SimulationData): string {
  const rows = data.results;
  const color = (i: number) => PALETTE[i % PALETTE.length];
  const best = (key: "total_ms" | "downtime_ms" | "bytes_sent") =>
    rows.reduce((a, b) => (b[key] < a[key] ? b : a));
  const stats: Stat[] = [
    { label: "policies", value: String(rows.length) },
    {
      label: `lowest downtime (${best("downtime_ms").downtime_ms} ms)`,
      value: best("downtime_ms").policy,
    },
    { label: `shortest total (${best("total_ms").total_ms} ms)`, value: best("total_ms").policy },
    {
      label: `fewest bytes (${bytesText(best("bytes_sent").bytes_sent)})`,
      value: best("bytes_sent").policy,
    },
  ];
  if (data.bandwidth_bps !== undefined) {
    stats.push({ label: "link", value: `${(data.bandwidth_bps * 8 / 1e6).toFixed(0)} Mbit/s` });
  }
  const figures = [
    barChart({
      title: "Total migration time (ms)",
      bars: rows.map((r, i) => ({ label: r.policy, value: r.total_ms, color: color(i) })),
      format: (v) => `${v} ms`,
    }),
    barChart({
      title: "Downtime (ms)",
      bars: rows.map((r, i) => ({ label: r.policy, value: r.downtime_ms, color: color(i) })),
      format: (v) => `${v} ms`,
    }),
    barChart({
      title: "Bytes sent",
      bars: rows.map((r, i) => ({ label: r.policy, value: r.bytes_sent, color: color(i) })),
      format: bytesText,
    }),
  ];
  const series: LineSeries[] = [];
  rows.forEach((r, i) => {
    if (!r.rounds || r.rounds.length === 0) return;
    series.push({
      name: `${r.policy} dirtied`,
      points: r.rounds.map((x) => [x.index, x.pages_dirtied] as const),
      color: color(i),
    });
    const predicted = r.rounds.filter((x) => x.predicted_dirty != null);
    if (predicted.length > 0) {
      series.push({
        name: `${r.policy} predicted`,
        points: predicted.map((x) => [x.index, x.predicted_dirty!] as const),
        color: color(i),
        dashed: true,
      });
    }
  });
  if (series.length > 0) {
    figures.push(lineChart({
      title: series.some((s) => s.dashed)
        ? "Dirty pages per round: predicted (dashed) vs actual"
        : "Dirty pages per round",
      xLabel: "round",
      yLabel: "pages",
      series: series.slice(0, 12),
    }));
  }
  const tables: Table[] = [{
    caption: "Policies",
    head: ["policy", "total ms", "downtime ms", "bytes sent", "pre-copy rounds", "pages resent"],
    rows: rows.map((r) => [
      r.policy,
      r.total_ms,
      r.downtime_ms,
      r.bytes_sent,
      r.precopy_rounds,
      r.pages_resent,
    ]),
  }];
  const context = [
    data.trace ? `trace ${data.trace}` : undefined,
    data.bandwidth_bps !== undefined ? `${data.bandwidth_bps} B/s` : undefined,
    `${rows.length} policies`,
  ].filter((x) => x !== undefined).join(" · ");
  return renderPage({
    title: "Policy comparison",
    subtitle: context,
    stats,
    figures,
    tables,
    data,
  });
}
