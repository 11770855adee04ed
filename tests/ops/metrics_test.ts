import assert from "node:assert/strict";
import { createAgentMetrics } from "../../src/ops/agent_metrics.ts";
import { MetricsRegistry, serveMetrics } from "../../src/ops/metrics.ts";

/** Parse exposition text into `name{labels}` → value (samples only). */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = line.match(/^(\S+?(?:\{.*\})?) (\S+)$/);
    assert.ok(m, `sample line: ${line}`);
    out.set(m[1], Number(m[2]));
  }
  return out;
}

Deno.test("the agent's metrics are scraped over HTTP on 127.0.0.1 in Prometheus text format", async () => {
  const metrics = createAgentMetrics();
  metrics.recordMigration({
    ok: true,
    engine: "delta",
    policy: "u2c",
    total_ms: 2300,
    downtime_ms: 180,
    bytes_sent: 268_435_456,
  });
  metrics.recordMigration({
    ok: false,
    engine: "delta",
    policy: "phaul",
    total_ms: 900,
    downtime_ms: 0,
    bytes_sent: 1000,
  });
  metrics.recordPrediction("u2c", 3.5);
  metrics.inProgress.inc({ role: "source" });
  const server = serveMetrics({ port: 0, registry: metrics.registry });
  try {
    const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    assert.match(text, /^# TYPE u2cm_migrations_total counter$/m);
    assert.match(text, /^# TYPE u2cm_migration_downtime_seconds histogram$/m);
    const s = samples(text);
    assert.equal(s.get('u2cm_migrations_total{outcome="success",engine="delta",policy="u2c"}'), 1);
    assert.equal(s.get('u2cm_migrations_total{outcome="failed",engine="delta",policy="phaul"}'), 1);
    assert.equal(s.get('u2cm_migration_bytes_total{direction="sent"}'), 268_436_456);
    assert.equal(s.get('u2cm_migration_downtime_seconds_count{engine="delta"}'), 1);
    assert.equal(s.get('u2cm_migration_downtime_seconds_sum{engine="delta"}'), 0.18);
    assert.equal(s.get('u2cm_migration_downtime_seconds_bucket{engine="delta",le="0.16"}'), 0);
    assert.equal(s.get('u2cm_migration_downtime_seconds_bucket{engine="delta",le="0.32"}'), 1);
    assert.equal(s.get('u2cm_migration_downtime_seconds_bucket{engine="delta",le="+Inf"}'), 1);
    assert.equal(s.get('u2cm_migration_duration_seconds_count{engine="delta"}'), 2);
    assert.equal(s.get('u2cm_predictor_latency_seconds_sum{model="u2c"}'), 0.0035);
    assert.equal(s.get('u2cm_migrations_in_progress{role="source"}'), 1);
    const missing = await fetch(`http://127.0.0.1:${server.port}/other`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
    const post = await fetch(`http://127.0.0.1:${server.port}/metrics`, { method: "POST" });
    assert.equal(post.status, 405);
    await post.body?.cancel();
  } finally {
    await server.shutdown();
  }
});

Deno.test("the metrics server binds loopback only", async () => {
  const server = serveMetrics({ port: 0, registry: new MetricsRegistry() });
  try {
    assert.equal(server.hostname, "127.0.0.1");
    const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    assert.equal(await res.text(), "");
  } finally {
    await server.shutdown();
  }
});

Deno.test("histogram buckets are cumulative; labels are escaped; misuse throws", () => {
  const registry = new MetricsRegistry();
  const h = registry.histogram("t_seconds", "Test.", [1, 0.1, 10]);
  for (const v of [0.05, 0.5, 5, 50]) h.observe(v);
  const c = registry.counter("t_total", "Help with \\ and\nnewline.", ["path"]);
  c.inc({ path: 'a"b\\c\nd' }, 2);
  const text = registry.render();
  const s = samples(text);
  assert.equal(s.get('t_seconds_bucket{le="0.1"}'), 1);
  assert.equal(s.get('t_seconds_bucket{le="1"}'), 2);
  assert.equal(s.get('t_seconds_bucket{le="10"}'), 3);
  assert.equal(s.get('t_seconds_bucket{le="+Inf"}'), 4);
  assert.equal(s.get("t_seconds_count"), 4);
  assert.match(text, /^t_total\{path="a\\"b\\\\c\\nd"\} 2$/m);
  assert.match(text, /^# HELP t_total Help with \\\\ and\\nnewline\.$/m);
  assert.throws(() => c.inc({ path: "x" }, -1), /only goes up/);
  assert.throws(() => c.inc({}), /takes labels path/);
  assert.throws(() => registry.counter("t_total", "again"), /twice/);
  assert.throws(() => registry.gauge("bad name", "x"), /bad metric name/);
});
