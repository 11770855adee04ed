/**
 * Render models/metrics.json (the output of `u2cm predict-eval --format json` over the corpus)
 * as markdown tables for the model card and an SVG of mean F1 by horizon per model.
 *
 * Usage: deno run -A models/card.ts [models/metrics.json] > table.md  (writes models/f1_by_horizon.svg)
 *
 * @module
 */
import type { PredictEvalResult as Row } from "../src/predict/mod.ts";

const file = Deno.args[0] ?? new URL("./metrics.json", import.meta.url).pathname;
const { results } = JSON.parse(await Deno.readTextFile(file)) as { results: Row[] };
const models = [...new Set(results.map((r) => r.model))];
const traces = [...new Set(results.map((r) => r.trace))];
const name = (t: string) => t.split("/").pop()!.replace(/\.u2ct(\.gz)?$/, "");
const get = (t: string, m: string, h: number) =>
  results.find((r) => r.trace === t && r.model === m && r.horizon === h);

const lines: string[] = [];
lines.push("F1 at h=1 (held-out workload; accuracy in brackets):", "");
lines.push(`| trace | ${models.join(" | ")} |`, `|---|${models.map(() => "---:").join("|")}|`);
for (const t of traces) {
  const cells = models.map((m) => {
    const r = get(t, m, 1);
    return r ? `${r.f1.toFixed(3)} (${r.accuracy.toFixed(3)})` : "–";
  });
  lines.push(`| ${name(t)} | ${cells.join(" | ")} |`);
}
if (models.includes("u2c")) {
  lines.push("", "Goals at h=1 (u2c ≥ 0.93, and ≥ the best baseline + 0.03):", "");
  lines.push("| trace | u2c | best baseline | margin | ≥ 0.93 | ≥ best + 0.03 |");
  lines.push("|---|---:|---|---:|:---:|:---:|");
  for (const t of traces) {
    const u = get(t, "u2c", 1);
    if (!u) continue;
    const base = models.filter((m) => m !== "u2c").map((m) => get(t, m, 1))
      .filter((r): r is Row => r !== undefined).sort((a, b) => b.f1 - a.f1)[0];
    if (!base) continue;
    const margin = u.f1 - base.f1;
    lines.push(
      `| ${name(t)} | ${u.f1.toFixed(3)} | ${base.model} ${base.f1.toFixed(3)} | ` +
        `${margin >= 0 ? "+" : ""}${margin.toFixed(3)} | ${u.f1 >= 0.93 ? "yes" : "no"} | ` +
        `${margin >= 0.03 ? "yes" : "no"} |`,
    );
  }
}
const horizons = [...new Set(results.map((r) => r.horizon))].sort();
const mean = (m: string, h: number, key: keyof Row) => {
  const rs = results.filter((r) => r.model === m && r.horizon === h);
  return rs.reduce((a, r) => a + (r[key] as number), 0) / Math.max(1, rs.length);
};
lines.push("", "Mean over traces by horizon (F1 / count MAPE):", "");
lines.push(`| model | ${horizons.map((h) => `h=${h}`).join(" | ")} |`);
lines.push(`|---|${horizons.map(() => "---:").join("|")}|`);
for (const m of models) {
  const cells = horizons.map((h) =>
    `${mean(m, h, "f1").toFixed(3)} / ${mean(m, h, "count_mape").toFixed(3)}`
  );
  lines.push(`| ${m} | ${cells.join(" | ")} |`);
}
console.log(lines.join("\n"));

// SVG: mean F1 by horizon, one polyline per model.
const W = 420, H = 260, pad = 40;
const colors = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];
const x = (h: number) => pad + (h - 1) * (W - 2 * pad) / Math.max(1, horizons.length - 1);
const y = (f: number) => H - pad - f * (H - 2 * pad);
const parts = [
  `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
  `<text x="${W / 2}" y="16" text-anchor="middle">mean F1 by horizon (held-out workloads)</text>`,
  `<line x1="${pad}" y1="${y(0)}" x2="${W - pad}" y2="${y(0)}" stroke="#000"/>`,
  `<line x1="${pad}" y1="${y(0)}" x2="${pad}" y2="${y(1)}" stroke="#000"/>`,
];
for (const f of [0, 0.5, 1]) {
  parts.push(`<text x="${pad - 6}" y="${y(f) + 4}" text-anchor="end">${f}</text>`);
}
for (const h of horizons) {
  parts.push(`<text x="${x(h)}" y="${H - pad + 16}" text-anchor="middle">h=${h}</text>`);
}
models.forEach((m, i) => {
  const pts = horizons.map((h) => `${x(h)},${y(mean(m, h, "f1"))}`).join(" ");
  const c = colors[i % colors.length];
  parts.push(`<polyline points="${pts}" fill="none" stroke="${c}" stroke-width="2"/>`);
  parts.push(`<text x="${W - pad + 4 - 80}" y="${pad + 14 * i}" fill="${c}">${m}</text>`);
});
parts.push("</svg>");
await Deno.writeTextFile(new URL("./f1_by_horizon.svg", import.meta.url), parts.join("\n") + "\n");
