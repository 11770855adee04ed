import assert from "node:assert/strict";
import { ExitCode } from "../../src/cli/errors.ts";
import { encodeTrace } from "../../src/trace/mod.ts";
import { runU2cm } from "../support/cli.ts";
import { craftTrace, range } from "../support/traces.ts";

const TRACE = "models/corpus/redis-a.u2ct.gz";

Deno.test("u2cm simulate --format json prints one row per policy with the interface fields", async () => {
  const r = await runU2cm([
    "simulate",
    "--trace",
    TRACE,
    "--bandwidth",
    "100mbit",
    "--policy",
    "phaul,u2c,stop-and-copy,oracle",
    "--format",
    "json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const rows = JSON.parse(r.stdout);
  assert.deepEqual(rows.map((x: { policy: string }) => x.policy), [
    "phaul",
    "u2c",
    "stop-and-copy",
    "oracle",
  ]);
  for (const row of rows) {
    for (const k of ["total_ms", "downtime_ms", "bytes_sent", "precopy_rounds", "pages_resent"]) {
      assert.equal(typeof row[k], "number", `${row.policy}.${k}`);
    }
    assert.ok(row.total_ms >= row.downtime_ms);
  }
  // Every u2c round carries the prediction made for it before it started.
  const u2c = rows.find((x: { policy: string }) => x.policy === "u2c");
  assert.ok(u2c.rounds.length > 0);
  for (const round of u2c.rounds) {
    assert.equal(typeof round.predicted_dirty, "number", `round ${round.index}`);
  }
  const sc = rows.find((x: { policy: string }) => x.policy === "stop-and-copy");
  assert.equal(sc.precopy_rounds, 0);
  assert.equal(sc.total_ms, sc.downtime_ms, "stop-and-copy: all time is downtime");
});

Deno.test("u2cm simulate: the prediction made before each u2c round is near what it dirtied", async () => {
  // 24 s in (40 %, as the policy evaluation starts): past redis' start-up ramp, where the dirty
  // rate still grows and every history-based prediction falls short.
  const r = await runU2cm([
    "simulate",
    "--trace",
    TRACE,
    "--bandwidth",
    "100mbit",
    "--start",
    "24000",
    "--policy",
    "u2c",
    "--format",
    "json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const [u2c] = JSON.parse(r.stdout);
  assert.ok(u2c.rounds.length > 0);
  for (const round of u2c.rounds) {
    const err = Math.abs(round.predicted_dirty - round.pages_dirtied) / round.pages_dirtied;
    assert.ok(
      err < 0.25,
      `round ${round.index}: ${round.predicted_dirty} vs ${round.pages_dirtied}`,
    );
  }
});

Deno.test("u2cm simulate honours an absolute downtime budget", async () => {
  const file = Deno.makeTempFileSync({ suffix: ".u2ct" });
  try {
    const t = craftTrace(8192, 100, () => range(0, 64));
    Deno.writeFileSync(file, encodeTrace(t.header, t.rounds, t.end));
    const r = await runU2cm([
      "simulate",
      "--trace",
      file,
      "--policy",
      "u2c,oracle",
      "--max-downtime",
      "400",
      "--format",
      "json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    for (const row of JSON.parse(r.stdout)) {
      assert.ok(row.downtime_ms <= 400, `${row.policy} ${row.downtime_ms} ms`);
      assert.equal(row.within_downtime_limit, true);
    }
  } finally {
    Deno.removeSync(file);
  }
});

Deno.test("u2cm simulate refuses bad input with a clear message and exit code", async () => {
  const missing = await runU2cm(["simulate", "--trace", "/nonexistent.u2ct"]);
  assert.equal(missing.code, ExitCode.BadInput);
  assert.match(missing.stderr, /\/nonexistent\.u2ct: no such trace file/);
  const bw = await runU2cm(["simulate", "--trace", TRACE, "--bandwidth", "fast"]);
  assert.equal(bw.code, ExitCode.Usage);
  assert.match(bw.stderr, /bad bandwidth "fast"/);
  const policy = await runU2cm(["simulate", "--trace", TRACE, "--policy", "nope"]);
  assert.equal(policy.code, ExitCode.Usage);
  assert.match(policy.stderr, /unknown policy "nope"/);
  const junk = Deno.makeTempFileSync({ suffix: ".u2ct" });
  try {
    Deno.writeTextFileSync(junk, "not a trace");
    const bad = await runU2cm(["simulate", "--trace", junk]);
    assert.equal(bad.code, ExitCode.BadInput);
    assert.match(bad.stderr, new RegExp(junk));
  } finally {
    Deno.removeSync(junk);
  }
});
