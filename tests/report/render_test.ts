import assert from "node:assert/strict";
import {
  detectReport,
  renderMigrationReport,
  renderReport,
  renderSimulationReport,
  ReportInputError,
} from "../../src/report/mod.ts";

const FIXTURES = new URL("./fixtures/", import.meta.url);
const load = (name: string) => JSON.parse(Deno.readTextFileSync(new URL(name, FIXTURES)));

/** No reference that would make a browser load anything. */
function assertSelfContained(html: string): void {
  const withoutNs = html.replaceAll('xmlns="http://www.w3.org/2000/svg"', "");
  assert.doesNotMatch(withoutNs, /https?:\/\//, "no URLs");
  assert.doesNotMatch(html, /<(link|img|iframe|object|embed)\b/i, "no external elements");
  assert.doesNotMatch(html, /<script(?![^>]*type="application\/json")/i, "no executable scripts");
  assert.doesNotMatch(html, /\b(src|href)=/i, "no src/href attributes");
  assert.doesNotMatch(html, /url\(|@import/i, "no CSS fetches");
}

Deno.test("a migration result is detected and rendered with every number in the tables", () => {
  const json = load("migration.json");
  const input = detectReport(json);
  assert.equal(input.kind, "migration");
  const html = renderReport(input);
  assertSelfContained(html);
  assert.equal((html.match(/<svg /g) ?? []).length, 3, "timeline, dirty pages, bytes");
  for (const v of [json.total_ms, json.downtime_ms, json.bytes_sent, json.dest_pid]) {
    assert.ok(html.includes(`<td>${v}</td>`), `${v} in a table cell`);
  }
  for (const r of json.rounds) {
    assert.ok(html.includes(`<td>${r.pages_dirtied}</td>`));
    assert.ok(html.includes(`<td>${r.bytes}</td>`));
  }
  assert.ok(html.includes(">freeze<") && html.includes(">restore<"), "phases in the legend");
  assert.ok(html.includes("stroke-dasharray"), "predicted series is dashed");
});

Deno.test("simulation results render as an object with context or as a bare array of rows", () => {
  const json = load("simulation.json");
  const input = detectReport(json);
  assert.equal(input.kind, "simulation");
  const html = renderReport(input);
  assertSelfContained(html);
  assert.ok(html.includes("redis-a.u2ct"));
  for (const row of json.results) {
    for (const v of [row.total_ms, row.downtime_ms, row.bytes_sent, row.pages_resent]) {
      assert.ok(html.includes(`<td>${v}</td>`), `${row.policy}: ${v}`);
    }
  }
  const rows = load("simulate-rows.json");
  const bare = detectReport(rows);
  assert.equal(bare.kind, "simulation");
  const page = renderSimulationReport(bare.kind === "simulation" ? bare.data : { results: [] });
  assertSelfContained(page);
  assert.equal((page.match(/<svg /g) ?? []).length, 3, "three policy bar charts, no round chart");
});

Deno.test("text from the input is escaped", () => {
  const html = renderMigrationReport({
    ok: false,
    engine: "<script>alert(1)</script>",
    policy: 'u2c" onload="x',
    total_ms: 1,
    downtime_ms: 0,
    bytes_sent: 0,
    precopy_rounds: 0,
    rounds: [],
  });
  assert.ok(!html.includes("<script>alert"));
  assert.ok(html.includes("&lt;script&gt;alert(1)&lt;/script&gt;"));
  assert.ok(!html.includes('" onload="'));
  assertSelfContained(html);
});

Deno.test("malformed documents are rejected naming the bad fields", () => {
  const cases: Array<[unknown, RegExp]> = [
    [42, /expected a JSON object/],
    [[], /not simulation results/],
    [[{ policy: "u2c" }], /0\.total_ms/],
    [{ results: [], trace: "t", bandwidth_bps: 1 }, /results/],
    [{ ok: true, engine: "delta" }, /not a migration result: .*policy/],
    [{
      ok: "yes",
      engine: "delta",
      policy: "u2c",
      total_ms: 1,
      downtime_ms: 1,
      bytes_sent: 1,
      precopy_rounds: 0,
    }, /ok/],
    [{ ...load("migration.json"), total_ms: -5 }, /total_ms/],
    [{ ...load("migration.json"), rounds: [{ index: 0 }] }, /rounds\.0\.pages_sent/],
  ];
  for (const [value, pattern] of cases) {
    assert.throws(() => detectReport(value), (e: unknown) => {
      assert.ok(e instanceof ReportInputError);
      assert.match(e.message, pattern, JSON.stringify(value).slice(0, 80));
      return true;
    });
  }
});
