import assert from "node:assert/strict";
import { runU2cm } from "../support/cli.ts";

Deno.test("u2cm doctor states which dirty-page tracker pre-copy uses on this architecture", async () => {
  const r = await runU2cm(["doctor", "--format", "json"]);
  assert.ok(r.code === 0 || r.code === 5, `exit ${r.code}: ${r.stderr}`); // 5: no usable CRIU
  const report = JSON.parse(r.stdout);
  assert.equal(report.arch, Deno.build.arch);
  const tracker = report.precopy_tracker as { backend: string; detail: string };
  if (Deno.build.arch === "aarch64") {
    assert.equal(tracker.backend, "hash");
    assert.match(tracker.detail, /content-hash tracker: arm64 has no soft-dirty/);
  } else {
    assert.equal(tracker.backend, report.soft_dirty.available ? "softdirty" : "hash");
  }
});
