/**
 * The report of one migration: outcome and headline figures, the timeline of pre-copy rounds and
 * the final phases (freeze, dump, transfer, restore), dirty pages predicted vs actual per round,
 * bytes per round, and tables with the exact numbers.
 *
 * @module
 */
import { renderPage, type Stat, type Table } from "./html.ts";
import type { MigrationResult } from "./schema.ts";
import { barChart, lineChart, PALETTE, type Segment, timelineChart } from "./svg.ts";

const PHASE_COLORS = {
  freeze: "#dc2626",
  dump: "#ea580c",
  transfer: "#9333ea",
  restore: "#16a34a",
  scan: "#f59e0b",
  release: "#a3a3a3",
  resume: "#0891b2",
  other: "#737373",
} as const;

/** A phase the result may carry besides the four every final phase reports. */
const num = (v: unknown): number => typeof v === "number" ? v : 0;

/**
 * Render a self-contained HTML page for a `u2cm migrate --format json` result.
 *
 * @example
 * ```ts
 * import { renderMigrationReport } from "./migration.ts";
 * const html = renderMigrationReport({ ok: true, engine: "delta", policy: "u2c", total_ms: 2300,
 *   downtime_ms: 180, bytes_sent: 1 << 28, precopy_rounds: 2, dest_pid: 4242, rounds: [] });
 * ```
 */
export function renderMigrationReport(result: MigrationResult): string {
  const rounds = result.rounds ?? [];
  const stats: Stat[] = [
    {
      label: "outcome",
      value: result.ok ? "migrated" : "failed",
      tone: result.ok ? "good" : "bad",
    },
    { label: "total", value: `${result.total_ms} ms` },
    { label: "downtime", value: `${result.downtime_ms} ms` },
    { label: "sent", value: bytesText(result.bytes_sent) },
    { label: "pre-copy rounds", value: String(result.precopy_rounds) },
    { label: "destination pid", value: result.dest_pid == null ? "—" : String(result.dest_pid) },
  ];
  const figures: string[] = [timelineChart({ title: "Timeline", segments: segments(result) })];
  if (rounds.length > 0) {
    const actual = rounds.map((r) => [r.index, r.pages_dirtied] as const);
    const predicted = rounds.filter((r) => r.predicted_dirty != null)
      .map((r) => [r.index, r.predicted_dirty!] as const);
    figures.push(lineChart({
      title: "Dirty pages per round: predicted vs actual",
      xLabel: "round",
      yLabel: "pages",
      series: [
        { name: "dirtied (actual)", points: actual, color: PALETTE[0] },
        ...(predicted.length > 0
          ? [{ name: "predicted", points: predicted, color: PALETTE[1], dashed: true }]
          : []),
      ],
    }));
    figures.push(barChart({
      title: "Bytes sent per round",
      orientation: "vertical",
      bars: rounds.map((r) => ({ label: String(r.index), value: r.bytes })),
      format: bytesText,
      color: PALETTE[3],
    }));
  }
  const tables: Table[] = [{
    caption: "Result",
    head: ["field", "value"],
    rows: [
      ["ok", String(result.ok)],
      ["engine", result.engine],
      ["policy", result.policy],
      ["total_ms", result.total_ms],
      ["downtime_ms", result.downtime_ms],
      ["bytes_sent", result.bytes_sent],
      ["precopy_rounds", result.precopy_rounds],
      ["dest_pid", result.dest_pid ?? "—"],
      ...(result.phases
        ? Object.entries(result.phases).filter(([, v]) => typeof v === "number")
          .map(([k, v]) => [k, v as number])
        : []),
    ],
  }];
  if (rounds.length > 0) {
    tables.push({
      caption: "Rounds",
      head: ["round", "pages sent", "pages dirtied", "predicted dirty", "duration ms", "bytes"],
      rows: rounds.map((r) => [
        r.index,
        r.pages_sent,
        r.pages_dirtied,
        r.predicted_dirty ?? "—",
        r.duration_ms,
        r.bytes,
      ]),
    });
  }
  return renderPage({
    title: `Migration report — ${result.ok ? "migrated" : "failed"}`,
    subtitle: `engine ${result.engine} · policy ${result.policy} · ${result.precopy_rounds} ` +
      `pre-copy rounds · ${bytesText(result.bytes_sent)} sent`,
    stats,
    figures,
    tables,
    data: result,
  });
}

/** Rounds back to back, then the final phases in order. */
function segments(result: MigrationResult): Segment[] {
  const out: Segment[] = [];
  let t = 0;
  for (const r of result.rounds ?? []) {
    out.push({
      label: `round ${r.index}`,
      start: t,
      length: r.duration_ms,
      color: r.index % 2 === 0 ? "#3b82f6" : "#60a5fa",
    });
    t += r.duration_ms;
  }
  const phases = result.phases;
  if (phases) {
    for (
      const [name, ms] of [
        ["freeze", phases.freeze_ms],
        ["dump", phases.dump_ms],
        // Then, in the order they happen: the final scan, transfer, the dump letting the tree
        // go, restore, commit and resume, and the rest of the downtime.
        ["scan", num(phases.scan_ms)],
        ["transfer", phases.transfer_ms],
        ["release", num(phases.release_ms)],
        ["restore", phases.restore_ms],
        ["resume", num(phases.resume_ms)],
        ["other", num(phases.other_ms)],
      ] as const
    ) {
      if (ms > 0) out.push({ label: name, start: t, length: ms, color: PHASE_COLORS[name] });
      t += ms;
    }
  } else if (out.length === 0) {
    out.push({ label: "migration", start: 0, length: result.total_ms, color: "#3b82f6" });
  }
  return out;
}

/** Bytes as B, KiB, MiB or GiB with one decimal. */
export function bytesText(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${bytes} B` : `${v.toFixed(1)} ${units[i]}`;
}
