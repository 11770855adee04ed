import assert from "node:assert/strict";
import { encodeTrace } from "../../src/trace/mod.ts";
import { patternTrace } from "./craft.ts";

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", "predict-eval", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function writeTrace(dir: string, name: string, rounds: number, extra = {}): Promise<string> {
  const t = patternTrace(rounds, extra);
  const file = `${dir}/${name}.u2ct`;
  await Deno.writeFile(file, encodeTrace(t.header, t.rounds, t.end));
  return file;
}

Deno.test("predict-eval prints one JSON row per trace, model and horizon", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = await writeTrace(dir, "crafted", 48);
    const r = await cli("--traces", file, "--format", "json");
    assert.equal(r.code, 0, r.stderr);
    const { results, windows } = JSON.parse(r.stdout);
    assert.equal(results.length, 4 * 3);
    // Round windows: the 4.8 s trace scores 0.5 s and 2 s (10 s does not fit), four predictors.
    assert.equal(windows.length, 4 * 2);
    for (const w of windows) {
      assert.deepEqual(Object.keys(w), [
        "trace",
        "model",
        "window_ms",
        "f1",
        "precision",
        "recall",
        "count_ape_median",
      ]);
    }
    const u2cWindow = windows.find((x: { model: string; window_ms: number }) =>
      x.model === "u2c" && x.window_ms === 2000
    );
    assert.ok(u2cWindow.f1 > 0.9, `u2c over 2 s windows: F1 ${u2cWindow.f1}`);
    const keys = [
      "trace",
      "model",
      "horizon",
      "f1",
      "precision",
      "recall",
      "accuracy",
      "count_mape",
    ];
    for (const row of results) assert.deepEqual(Object.keys(row), keys);
    assert.deepEqual(
      new Set(results.map((x: { model: string }) => x.model)),
      new Set(["u2c", "last-value", "phase1-only", "lstm"]),
    );
    const u2c = results.find((x: { model: string; horizon: number }) =>
      x.model === "u2c" && x.horizon === 1
    );
    const last = results.find((x: { model: string; horizon: number }) =>
      x.model === "last-value" && x.horizon === 1
    );
    assert.ok(u2c.f1 > last.f1, `u2c ${u2c.f1} vs last-value ${last.f1}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("predict-eval refuses a missing trace, naming the file", async () => {
  const r = await cli("--traces", "/nonexistent/x.u2ct");
  assert.equal(r.code, 6);
  assert.match(r.stderr, /\/nonexistent\/x\.u2ct: no such trace file/);
});

Deno.test("predict-eval refuses a trace too short to score", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = await writeTrace(dir, "short", 5);
    const r = await cli("--traces", file);
    assert.equal(r.code, 6);
    assert.match(r.stderr, /short\.u2ct: trace has 5 rounds/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("predict-eval refuses a corrupt trace, another page size and missing features", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const bad = `${dir}/bad.u2ct`;
    await Deno.writeFile(bad, new Uint8Array([0x55, 0x32, 0x43, 0x54, 9, 9, 9]));
    let r = await cli("--traces", bad);
    assert.equal(r.code, 6);
    assert.match(r.stderr, /bad\.u2ct/);
    const big = await writeTrace(dir, "big", 40, { pageSize: 16384 });
    r = await cli("--traces", big, "--models", "u2c");
    assert.equal(r.code, 6);
    assert.match(r.stderr, /big\.u2ct: page size 16384/);
    const few = await writeTrace(dir, "few", 40, { featureNames: ["pgfault"] });
    r = await cli("--traces", few, "--models", "u2c");
    assert.equal(r.code, 6);
    assert.match(r.stderr, /few\.u2ct: trace has 1 features/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("predict-eval refuses a missing or corrupt model, naming the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = await writeTrace(dir, "crafted", 40);
    let r = await cli("--traces", file, "--models", "u2c", "--models-dir", dir);
    assert.equal(r.code, 6);
    assert.match(r.stderr, new RegExp(`${dir}/u2c-predictor`));
    await Deno.writeTextFile(
      `${dir}/u2c-predictor.json`,
      JSON.stringify({
        kind: "u2c",
        window: 16,
        radius: 2,
        horizon: 3,
        featureCount: 18,
        trainedOn: [],
      }),
    );
    await Deno.writeFile(`${dir}/u2c-predictor.onnx`, new Uint8Array([1, 2, 3, 4]));
    r = await cli("--traces", file, "--models", "u2c", "--models-dir", dir);
    assert.equal(r.code, 6);
    assert.match(r.stderr, /u2c-predictor\.onnx: not a loadable ONNX model/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
