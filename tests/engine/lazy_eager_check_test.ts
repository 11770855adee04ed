/**
 * Post-copy checks its eager images while CRIU restores them: an eager page that differs from
 * the source's manifest still ends the restored (stopped) copy before it ever runs, no lazy page
 * is fetched for it, and the source keeps its own copy.
 */
import assert from "node:assert/strict";
import { runMigration } from "../../src/engine/driver.ts";
import { ForwardingChannel } from "../../src/engine/forwarding_channel.ts";
import { LocalChannel } from "../../src/engine/local_channel.ts";
import { planOf } from "../../src/engine/select.ts";
import { MigrationError } from "../../src/engine/types.ts";
import { createPolicy } from "../../src/policy/mod.ts";
import { assertMemcheckHealthy, requireCriuBinary, startMemcheck } from "../criu/support.ts";
import { runningCopies } from "./support/memcheck_pids.ts";

const LAZY = planOf("lazy", { softDirty: false, lazy: true });

/** Flips one byte of the first non-empty pages image on its way to the destination. */
class CorruptingImages extends ForwardingChannel {
  flipped = false;
  override sendFile(name: string, data: Uint8Array): Promise<void> {
    if (!this.flipped && /^pages-\d+\.img$/.test(name) && data.length >= 4096) {
      data = data.slice();
      data[100] ^= 1;
      this.flipped = true;
    }
    return super.sendFile(name, data);
  }
}

Deno.test("post-copy: an eager page that differs from the manifest ends the restored copy before it runs; the source keeps its own", async () => {
  requireCriuBinary();
  const w = await startMemcheck(["--mib", "32", "--write-pages", "64", "--hot-percent", "10"]);
  const dest = Deno.makeTempDirSync({ prefix: "u2cm-dest-" });
  const work = Deno.makeTempDirSync({ prefix: "u2cm-work-" });
  const local = new LocalChannel({ dir: dest, migrationId: "pce1" });
  const channel = new CorruptingImages(local);
  try {
    await w.waitFor(/^tick 5 /);
    await assert.rejects(
      runMigration({
        id: "pce1",
        pid: w.pid,
        channel,
        policy: createPolicy("post-copy"),
        workDir: work,
      }, LAZY),
      (e: unknown) => {
        assert.ok(e instanceof MigrationError, String(e));
        assert.match(e.message, /page 0x[0-9a-f]+ differs in the images/);
        return true;
      },
    );
    assert.ok(channel.flipped, "no eager page was corrupted");
    // Refused before the commit: exactly the source runs, with its memory intact.
    assert.deepEqual(runningCopies(w.out), [w.pid]);
    await assertMemcheckHealthy(w, w.pid);
  } finally {
    local.close();
    for (const pid of runningCopies(w.out)) if (pid !== w.pid) Deno.kill(pid, "SIGKILL");
    await w.stop();
    for (const d of [dest, work, w.dir]) Deno.removeSync(d, { recursive: true });
  }
});
