import assert from "node:assert/strict";
import { runMigration } from "../../src/engine/driver.ts";
import { planOf } from "../../src/engine/select.ts";
import { isAlive, waitGone } from "../../src/tracker/proc.ts";
import { createPolicy } from "../../src/policy/mod.ts";
import { assertMemcheckHealthy } from "../criu/support.ts";
import { startLocalRun, stopLocalRun } from "./support/local_run.ts";

Deno.test("delta migrates memcheck through an in-process channel: memory intact, counter continues", async () => {
  const r = await startLocalRun({ id: "t1" });
  const { w, work, channel } = r;
  try {
    const out = await runMigration({
      id: "t1",
      pid: w.pid,
      channel,
      policy: createPolicy("fixed-3"),
      workDir: work,
    }, planOf("delta", { softDirty: false, lazy: false }));
    const restored = out.destPid;
    assert.equal(out.engine, "delta");
    assert.equal(out.precopyRounds, 3);
    assert.ok(out.rounds[0].pages_sent >= 8192, `round 0 sent ${out.rounds[0].pages_sent}`);
    assert.ok(out.finalPages < out.rounds[0].pages_sent / 4, `final sent ${out.finalPages}`);
    assert.ok(out.downtimeMs > 0 && out.downtimeMs < out.totalMs);
    // The source is gone, the copy runs and keeps counting from where the source stopped.
    assert.ok(await waitGone(w.pid, 5000), "source still exists");
    assert.ok(isAlive(restored));
    // Both sides recorded the commit's phases; the scratch dumps are gone.
    const records = channel.destination.list();
    assert.deepEqual(records.map((r) => r.phase), ["resumed"]);
    assert.deepEqual([...Deno.readDirSync(work)], [], "scratch dumps left in the work dir");
    await assertMemcheckHealthy(w, restored, 5000);
  } finally {
    await stopLocalRun(r);
  }
});
