import assert from "node:assert/strict";
import { runMigration } from "../../src/engine/driver.ts";
import { LOCAL_LAZY_MIN_PAGES, restoreMigration } from "../../src/engine/restore.ts";
import { planOf } from "../../src/engine/select.ts";
import { MigrationError } from "../../src/engine/types.ts";
import { isAlive, processState, waitGone } from "../../src/tracker/proc.ts";
import { createPolicy } from "../../src/policy/mod.ts";
import { resultOf } from "../../src/cli/migrate_result.ts";
import { assertMemcheckHealthy, requireCriuBinary, startMemcheck } from "../criu/support.ts";
import { runningCopies } from "./support/memcheck_pids.ts";
import { startLocalRun, stopLocalRun } from "./support/local_run.ts";
import { makeNodes, migrateTo, u2cm } from "./support/agents.ts";

const P = 4096;
const LAZY = { softDirty: false, lazy: true };

Deno.test("verified lazy local restore: a big scan-and-copy tree restores lazily, every lazy page checked as placed; memory intact, one copy", async () => {
  const r = await startLocalRun({
    id: "lls1",
    memcheck: ["--mib", "96", "--hot-mib", "4", "--write-pages", "256"],
  });
  const { w, work, channel } = r;
  try {
    const out = await runMigration({
      id: "lls1",
      pid: w.pid,
      channel,
      policy: createPolicy("fixed-2"),
      workDir: work,
    }, { ...planOf("delta", LAZY), freeze: "scan" });
    const restored = out.destPid;
    const v = out.verified!;
    assert.ok(v.lazyPages !== undefined && v.lazyPages >= LOCAL_LAZY_MIN_PAGES, JSON.stringify(v));
    assert.equal(v.imagePages, v.manifestPages);
    assert.ok(v.readBackPages > 0, "the eager pages were not read back");
    const fill = out.localLazy!;
    assert.ok(fill, "no fill report");
    assert.equal(fill.checkedPages, v.lazyPages, "not every lazy page was checked");
    assert.ok(fill.requests > 0);
    const json = resultOf(out);
    assert.equal(json.local_lazy?.checked_pages, v.lazyPages);
    assert.equal(json.verification?.lazy_pages, v.lazyPages);
    // The stopped source copy was kept until the fill was verified, then ended.
    assert.ok(await waitGone(w.pid, 5000), "source still exists");
    assert.ok(isAlive(restored));
    const rec = channel.destination.list()[0];
    assert.deepEqual(
      [rec.phase, rec.fill],
      ["resumed", undefined],
      "the fill is not recorded done",
    );
    await assertMemcheckHealthy(w, restored);
    assert.deepEqual(runningCopies(w.out), [restored], "exactly one copy runs");
  } finally {
    await stopLocalRun(r);
  }
});

Deno.test("verified lazy local restore: a page tampered in the destination's store behind the image check is refused; the source runs again, one copy, memory intact", async () => {
  let tampered = 0;
  const r = await startLocalRun({
    id: "lls2",
    memcheck: ["--mib", "96", "--hot-mib", "4", "--write-pages", "256"],
    // Every page has arrived: change one byte of the slot file far into the big run, behind the
    // store's recorded hashes (the composed image check compares those, so it passes).
    onRestore: (ctx, options) => {
      const layout = ctx.store.pagesImage?.layout(1);
      if (layout && layout.ascending.length > 8192) {
        const slot = layout.ascending.length - 2048;
        const f = Deno.openSync(layout.path, { read: true, write: true });
        const b = new Uint8Array(1);
        f.seekSync(slot * P + 1234, Deno.SeekMode.Start);
        f.readSync(b);
        f.seekSync(slot * P + 1234, Deno.SeekMode.Start);
        f.writeSync(new Uint8Array([b[0] ^ 0x5a]));
        f.close();
        tampered = layout.ascending[slot];
      }
      return restoreMigration(ctx, options);
    },
  });
  const { w, work, channel } = r;
  try {
    const start = w.lines();
    await assert.rejects(
      runMigration({
        id: "lls2",
        pid: w.pid,
        channel,
        policy: createPolicy("fixed-2"),
        workDir: work,
      }, { ...planOf("delta", LAZY), freeze: "scan" }),
      (e: unknown) => {
        assert.ok(e instanceof MigrationError && e.sourceRunning, String(e));
        assert.match(e.message, /page 0x[0-9a-f]+ differs from the manifest/);
        assert.ok(e.message.includes(tampered.toString(16)), e.message);
        return true;
      },
    );
    assert.ok(tampered > 0, "no slot was tampered with");
    // The destination recorded the refusal: asked again, it holds nothing of the workload.
    if (channel.destination.list()[0].phase !== "discarded") {
      assert.equal(channel.destination.list()[0].fill, "refused");
    }
    assert.ok(isAlive(w.pid));
    assert.notEqual(processState(w.pid), "T", "the source is still stopped");
    // The destination's copy may have run a moment before the refused page: it wrote its ticks
    // from the file position it was restored with, which the source's own lines now overwrite
    // (the file is not O_APPEND). So the health check looks from before the migration on.
    Deno.kill(w.pid, "SIGUSR1");
    // (Only the running source was asked: its loop answers, having checked all of its memory.)
    await w.waitFor(/^verify ok/, 10_000, start);
    assert.equal(w.last(/CORRUPT|FAIL/), undefined, "memcheck reported corruption");
    assert.deepEqual(runningCopies(w.out), [w.pid], "exactly one copy runs");
  } finally {
    await stopLocalRun(r);
  }
});

Deno.test("verified lazy local restore between two agents: u2cm migrate ends ok only once every lazy page was checked at the destination", async () => {
  requireCriuBinary();
  const nodes = await makeNodes();
  const agent = await nodes.startB();
  const w = await startMemcheck(["--mib", "96", "--hot-mib", "4", "--write-pages", "256"]);
  let dest = 0;
  try {
    await w.waitFor(/^tick 5 /);
    const r = await u2cm([
      ...migrateTo(w.pid),
      ...["--policy", "u2c", "--format", "json", "--state-dir", nodes.a],
    ]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const result = JSON.parse(r.stdout);
    dest = result.dest_pid;
    assert.equal(result.ok, true);
    const lazy = result.verification?.lazy_pages;
    assert.ok(lazy >= LOCAL_LAZY_MIN_PAGES, JSON.stringify(result.verification));
    assert.equal(result.local_lazy?.checked_pages, lazy, JSON.stringify(result.local_lazy));
    assert.equal(result.local_lazy?.lazy_pages, lazy);
    assert.ok(result.local_lazy.fill_ms >= 0 && result.local_lazy.requests > 0);
    assert.ok(await waitGone(w.pid, 5000), "source still exists");
    await assertMemcheckHealthy(w, dest);
    assert.deepEqual(runningCopies(w.out), [dest], "exactly one copy runs");
  } finally {
    if (dest && isAlive(dest)) Deno.kill(dest, "SIGKILL");
    await w.stop();
    await agent.stop();
    nodes.cleanup();
    Deno.removeSync(w.dir, { recursive: true });
  }
});
