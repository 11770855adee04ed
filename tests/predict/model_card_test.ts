import assert from "node:assert/strict";
import {
  createPredictor,
  evaluateTrace,
  heldOutModelFile,
  loadModel,
} from "../../src/predict/mod.ts";
import { readTraceFile } from "../../src/trace/mod.ts";

interface Row {
  trace: string;
  model: string;
  horizon: number;
  f1: number;
  accuracy: number;
  count_mape: number;
}

const TOLERANCE = 0.005;
const metrics: Row[] = JSON.parse(Deno.readTextFileSync("models/metrics.json")).results;

for (const name of ["numpy-cg-a", "stress-vm-a"]) {
  Deno.test(`the committed held-out u2c model reproduces the model card on ${name}`, async () => {
    const file = `models/corpus/${name}.u2ct.gz`;
    const trace = await readTraceFile(file);
    const workload = trace.header.workload!.name;
    const model = await loadModel(heldOutModelFile("models", "u2c", workload));
    assert.ok(!model.meta.trainedOn.includes(workload), "model must not have seen the workload");
    const scores = await evaluateTrace(trace, createPredictor({ model }));
    for (const s of scores) {
      const card = metrics.find((r) =>
        r.trace === file && r.model === "u2c" && r.horizon === s.horizon
      );
      assert.ok(card, `models/metrics.json has no u2c row for ${file} h=${s.horizon}`);
      assert.ok(Math.abs(s.f1 - card.f1) <= TOLERANCE, `h=${s.horizon} F1 ${s.f1} vs ${card.f1}`);
      assert.ok(Math.abs(s.accuracy - card.accuracy) <= TOLERANCE, `accuracy ${s.accuracy}`);
      assert.ok(Math.abs(s.count_mape - card.count_mape) <= TOLERANCE, `MAPE ${s.count_mape}`);
    }
  });
}

Deno.test("the committed models fit the size limit and say what they were trained on", async () => {
  for (const f of ["models/u2c-predictor.onnx", "models/lstm.onnx", "models/u2c-windows.onnx"]) {
    assert.ok((await Deno.stat(f)).size <= 2 * 1024 * 1024, `${f} over 2 MB`);
    const meta = JSON.parse(await Deno.readTextFile(f.replace(".onnx", ".json")));
    assert.ok(meta.trainedOn.length >= 7, `${f} trained on ${meta.trainedOn}`);
  }
});

Deno.test("every held-out window model exists and never saw its workload", async () => {
  const full = JSON.parse(await Deno.readTextFile("models/u2c-windows.json"));
  for (const workload of full.trainedOn) {
    const file = heldOutModelFile("models", "u2c-windows", workload);
    assert.equal(file, `models/loo/u2c-windows-no-${workload}.onnx`);
    const meta = JSON.parse(await Deno.readTextFile(file.replace(".onnx", ".json")));
    assert.ok(!meta.trainedOn.includes(workload), `${file} saw ${workload}`);
    assert.deepEqual(meta.windowsMs, full.windowsMs);
  }
});

Deno.test("the corpus manifest lists every committed trace within 40 MB", async () => {
  const manifest = JSON.parse(await Deno.readTextFile("models/corpus/manifest.json"));
  const files = [...Deno.readDirSync("models/corpus")].map((e) => e.name)
    .filter((n) => n.endsWith(".u2ct.gz")).sort();
  assert.deepEqual(manifest.traces.map((t: { file: string }) => t.file).sort(), files);
  assert.ok(manifest.totalBytes <= 40 * 1024 * 1024);
  for (const t of manifest.traces) assert.ok(t.durationS >= 59, `${t.file} ${t.durationS} s`);
});
