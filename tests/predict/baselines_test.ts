import assert from "node:assert/strict";
import { checkBaselineEnvironment, patternTable, TABLE_COLUMNS } from "../../src/predict/mod.ts";
import { encodeTrace } from "../../src/trace/mod.ts";
import { patternTrace } from "./craft.ts";

/** Pages dirty in round r of the crafted trace (see craft.ts). */
const dirtyIn = (r: number) => 8 + (r % 2 === 0 ? 8 : 0) + 1;

Deno.test("pattern tables account for every page of every scored round", () => {
  const trace = patternTrace(40);
  const t = patternTable(trace, 16);
  const rows = t.rows;
  assert.equal(rows.length % TABLE_COLUMNS, 0);
  assert.equal(t.rounds.length / 4, 40 - 16);
  for (let r = 16; r < 40; r++) {
    let pages = 0;
    const dirty = [0, 0, 0];
    for (let i = 0; i < rows.length; i += TABLE_COLUMNS) {
      if (rows[i] !== r) continue;
      pages += rows[i + 6];
      for (let s = 0; s < 3; s++) dirty[s] += rows[i + 7 + s];
    }
    assert.equal(pages, 64, `round ${r}`);
    for (let s = 0; s < 3; s++) {
      assert.equal(dirty[s], r + s + 1 < 40 ? dirtyIn(r + s + 1) : 0, `round ${r} h=${s + 1}`);
    }
  }
  assert.equal(t.counts[0], 0, "round 0 (baseline scan) counts nothing");
  assert.equal(t.counts[5], dirtyIn(5));
});

async function predictEval(env: Record<string, string>, ...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", "predict-eval", ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function writeTwoWorkloads(dir: string): Promise<string[]> {
  const files = [];
  for (const name of ["crafted-a", "crafted-b"]) {
    const t = patternTrace(120, { workload: { name } });
    const file = `${dir}/${name}.u2ct`;
    await Deno.writeFile(file, encodeTrace(t.header, t.rounds, t.end));
    files.push(file);
  }
  return files;
}

Deno.test("predict-eval runs the random-forest and arima baselines leave-one-workload-out", async () => {
  await checkBaselineEnvironment(["random-forest", "arima"]); // fails loudly naming the package
  const dir = await Deno.makeTempDir();
  try {
    const files = await writeTwoWorkloads(dir);
    const r = await predictEval(
      {},
      ...["--traces", ...files, "--train-traces", ...files],
      ...["--models", "last-value,random-forest,arima", "--format", "json"],
    );
    assert.equal(r.code, 0, r.stderr);
    const { results } = JSON.parse(r.stdout);
    assert.equal(results.length, 2 * 3 * 3);
    const row = (trace: string, model: string, h: number) =>
      results.find((x: { trace: string; model: string; horizon: number }) =>
        x.trace === trace && x.model === model && x.horizon === h
      );
    for (const file of files) {
      // the crafted pattern repeats every 8 rounds: learnable from the other workload's trace
      const rf = row(file, "random-forest", 1), lv = row(file, "last-value", 1);
      assert.ok(rf.f1 >= 0.95, `random-forest F1 ${rf.f1}`);
      assert.ok(rf.f1 > lv.f1, `random-forest ${rf.f1} vs last-value ${lv.f1}`);
      const arima = row(file, "arima", 1);
      assert.ok(arima.count_mape < 0.25, `arima count MAPE ${arima.count_mape}`);
      assert.ok(arima.f1 > 0.5, `arima F1 ${arima.f1}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("predict-eval names the missing Debian package and exits 5", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files = await writeTwoWorkloads(dir);
    // a real interpreter that cannot see Debian's dist-packages (-S: no site directories)
    const python = `${dir}/python-no-site`;
    await Deno.writeTextFile(python, '#!/bin/sh\nexec /usr/bin/python3 -S "$@"\n');
    await Deno.chmod(python, 0o755);
    const r = await predictEval(
      { U2CM_PYTHON: python },
      ...["--traces", files[0], "--train-traces", ...files, "--models", "random-forest"],
    );
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /python3-sklearn/);
    assert.match(r.stderr, /apt-get install python3-sklearn/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
