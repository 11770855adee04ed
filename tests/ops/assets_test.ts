import assert from "node:assert/strict";
import { bundledModelsDir } from "../../src/ops/assets.ts";
import { loadModel } from "../../src/predict/onnx.ts";

Deno.test("the bundled models directory holds the deployment model, loadable from any cwd", async () => {
  const cwd = Deno.cwd();
  Deno.chdir("/");
  try {
    const model = await loadModel(`${bundledModelsDir()}/u2c-predictor.onnx`);
    assert.equal(model.meta.kind, "u2c");
  } finally {
    Deno.chdir(cwd);
  }
});
