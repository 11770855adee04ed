import assert from "node:assert/strict";
import { runMigration } from "../../src/engine/driver.ts";
import { LocalChannel } from "../../src/engine/local_channel.ts";
import { planOf } from "../../src/engine/select.ts";
import { isAlive, waitGone } from "../../src/tracker/proc.ts";
import { createPolicy } from "../../src/policy/mod.ts";
import { assertMemcheckHealthy, requireCriuBinary, startMemcheck } from "../criu/support.ts";

Deno.test("delta migrates memcheck through an in-process channel: memory intact, counter continues", async () => {
  requireCriuBinary();
  const w = await startMemcheck(["--mib", "32", "--write-pages", "64", "--hot-percent", "10"]);
  const dest = Deno.makeTempDirSync({ prefix: "u2cm-dest-" });
  const work = Deno.makeTempDirSync({ prefix: "u2cm-work-" });
  const channel = new LocalChannel({ dir: dest, migrationId: "t1" });
  let restored = 0;
  try {
    await w.waitFor(/^tick 5 /);
    const out = await runMigration({
      id: "t1",
      pid: w.pid,
      channel,
      policy: createPolicy("fixed-3"),
      workDir: work,
    }, planOf("delta", { softDirty: false, lazy: false }));
    restored = out.destPid;
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
    channel.close();
    if (restored) {
      try {
        Deno.kill(restored, "SIGKILL");
      } catch { /* gone */ }
    }
    await w.stop();
    for (const d of [dest, work, w.dir]) Deno.removeSync(d, { recursive: true });
  }
});
