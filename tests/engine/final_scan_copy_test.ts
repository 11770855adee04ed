import assert from "node:assert/strict";
import { runMigration } from "../../src/engine/driver.ts";
import type { MigrationChannel, PageBatch } from "../../src/engine/channel.ts";
import { LocalChannel } from "../../src/engine/local_channel.ts";
import { pageHashes } from "../../src/native/page_hash.ts";
import { isAlive, processState, waitGone } from "../../src/tracker/proc.ts";
import { restoreMigration } from "../../src/engine/restore.ts";
import { planOf } from "../../src/engine/select.ts";
import { MigrationError } from "../../src/engine/types.ts";
import { createPolicy } from "../../src/policy/mod.ts";
import { assertMemcheckHealthy, requireCriuBinary, startMemcheck } from "../criu/support.ts";
import { runningCopies } from "./support/memcheck_pids.ts";

const LAZY = { softDirty: false, lazy: true };

/** Nothing u2cm made for migration `id` is left in /dev/shm (restore scratch, images). */
function assertNoScratch(id: string): void {
  const left = [...Deno.readDirSync("/dev/shm")].map((e) => e.name)
    .filter((n) => n.startsWith("u2cm-") && n.includes(id));
  assert.deepEqual(left, [], `left in /dev/shm for ${id}`);
}

Deno.test("scan-and-copy migrates a writing memcheck: lazy dump, shim scan, verified restore; memory intact, one copy", async () => {
  requireCriuBinary();
  const w = await startMemcheck(["--mib", "64", "--hot-mib", "4", "--write-pages", "256"]);
  const dest = Deno.makeTempDirSync({ prefix: "u2cm-dest-" });
  const work = Deno.makeTempDirSync({ prefix: "u2cm-work-" });
  let composed = false;
  const channel = new LocalChannel({
    dir: dest,
    migrationId: "scan1",
    // The verified restore reads the pages in place (pages-1.img is the store's slot file).
    onRestore: (ctx, options) =>
      restoreMigration(ctx, {
        ...options,
        verify: async (_pid, dir) => {
          composed = (await Deno.readLink(`${dir}/pages-1.img`).catch(() => "")) !== "";
        },
      }),
  });
  let restored = 0;
  try {
    await w.waitFor(/^tick 5 /);
    // Scan-and-copy is the default freeze after content-hash rounds where a lazy dump works.
    const plan = planOf("delta", LAZY);
    assert.equal(plan.freeze, "scan");
    const out = await runMigration({
      id: "scan1",
      pid: w.pid,
      channel,
      policy: createPolicy("fixed-2"),
      workDir: work,
    }, plan);
    restored = out.destPid;
    assert.ok(composed, "the verified restore rebuilt flat pages images");
    const v = out.verified;
    assert.ok(v && v.imagePages > 0 && v.readBackPages > 0, JSON.stringify(v));
    assert.equal(v.imagePages, v.manifestPages);
    // The freeze sent only what changed since the last round, not the 16 384 resident pages.
    assert.ok(out.finalPages > 0 && out.finalPages < 8192, `final sent ${out.finalPages}`);
    const p = out.phases;
    // The scan runs once the dump is ready (the tree is quiescent then): all of it is scan_ms.
    assert.ok(p.scan_ms !== undefined && p.scan_overlap_ms === 0, JSON.stringify(p));
    assert.ok(p.scan_ms > 0, `no final scan time: ${JSON.stringify(p)}`);
    assert.ok(p.resume_ms !== undefined && p.other_ms !== undefined);
    const named = p.dump_ms + p.scan_ms + p.transfer_ms + (p.release_ms ?? 0) + p.restore_ms +
      p.resume_ms + p.other_ms;
    assert.ok(
      Math.abs(named - out.downtimeMs) < 1,
      `phases ${named} vs downtime ${out.downtimeMs}`,
    );
    assert.ok(await waitGone(w.pid, 5000), "source still exists");
    assert.ok(isAlive(restored));
    assert.deepEqual(channel.destination.list().map((r) => r.phase), ["resumed"]);
    // memcheck checks its own memory: every page the lazy daemon filled in is what it wrote.
    await assertMemcheckHealthy(w, restored);
    assert.deepEqual(runningCopies(w.out), [restored], "exactly one copy runs");
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
  assertNoScratch("scan1");
});

Deno.test("scan-and-copy: a failing restore resumes the source, which still verifies", async () => {
  requireCriuBinary();
  const w = await startMemcheck(["--mib", "32", "--hot-mib", "2", "--write-pages", "128"]);
  const dest = Deno.makeTempDirSync({ prefix: "u2cm-dest-" });
  const work = Deno.makeTempDirSync({ prefix: "u2cm-work-" });
  const channel = new LocalChannel({
    dir: dest,
    migrationId: "scan2",
    // The restore really runs (lazy daemon and all), then the destination reports a failure.
    onRestore: async (ctx, options) => {
      const r = await restoreMigration(ctx, options);
      if (r.ok && r.pid) Deno.kill(r.pid, "SIGKILL");
      return { ok: false, error: "injected: the destination lost its copy" };
    },
  });
  try {
    await w.waitFor(/^tick 5 /);
    await assert.rejects(
      runMigration({
        id: "scan2",
        pid: w.pid,
        channel,
        policy: createPolicy("fixed-1"),
        workDir: work,
      }, { ...planOf("delta", LAZY), freeze: "scan" }),
      (e) => e instanceof MigrationError && e.sourceRunning,
    );
    assert.ok(isAlive(w.pid));
    assert.notEqual(processState(w.pid), "T", "the source is still stopped");
    await assertMemcheckHealthy(w, w.pid);
    assert.deepEqual(runningCopies(w.out), [w.pid], "exactly one copy runs");
  } finally {
    channel.close();
    await w.stop();
    for (const d of [dest, work, w.dir]) Deno.removeSync(d, { recursive: true });
  }
  assertNoScratch("scan2");
});

Deno.test("scan-and-copy without a manifest check: pages images read in place, a local lazy restore; memcheck verifies every page", async () => {
  requireCriuBinary();
  const w = await startMemcheck(["--mib", "96", "--hot-mib", "4", "--write-pages", "256"]);
  const dest = Deno.makeTempDirSync({ prefix: "u2cm-dest-" });
  const work = Deno.makeTempDirSync({ prefix: "u2cm-work-" });
  let composed = false;
  const channel = new LocalChannel({
    dir: dest,
    migrationId: "scan3",
    // The path a request without a manifest takes (the manifest check reads flat images): the
    // store's pages images in place and `criu lazy-pages -D`. memcheck's own check of all of its
    // memory below stands in for the manifest check the driver insists on.
    onRestore: async (ctx, options) => {
      const request = { ...ctx.request, verify: undefined, rebuildShmem: undefined };
      const r = await restoreMigration({ ...ctx, request }, {
        ...options,
        verify: async (_pid, dir) => {
          composed = (await Deno.readLink(`${dir}/pages-1.img`).catch(() => "")) !== "";
        },
      });
      const none = { manifestPages: 0, imagePages: 0, readBackPages: 0, imageMs: 0, readBackMs: 0 };
      return r.ok ? { ...r, verified: { mode: "sample", ...none } } : r;
    },
  });
  let restored = 0;
  try {
    await w.waitFor(/^tick 5 /);
    const out = await runMigration({
      id: "scan3",
      pid: w.pid,
      channel,
      policy: createPolicy("fixed-2"),
      workDir: work,
    }, { ...planOf("delta", LAZY), freeze: "scan" });
    restored = out.destPid;
    assert.ok(composed, "the restore did not read the pages image in place");
    assert.ok(await waitGone(w.pid, 5000), "source still exists");
    await assertMemcheckHealthy(w, restored);
    assert.deepEqual(runningCopies(w.out), [restored], "exactly one copy runs");
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
  assertNoScratch("scan3");
});

Deno.test("scan-and-copy: a page corrupted in flight at the freeze fails the composed layout's manifest check; the source runs on", async () => {
  requireCriuBinary();
  const w = await startMemcheck(["--mib", "32", "--hot-mib", "2", "--write-pages", "128"]);
  const dest = Deno.makeTempDirSync({ prefix: "u2cm-dest-" });
  const work = Deno.makeTempDirSync({ prefix: "u2cm-work-" });
  const inner = new LocalChannel({ dir: dest, migrationId: "scan4" });
  let frozen = false, corrupted = false;
  // Inside the driver's ledger: the ledger (and so the manifest) keeps the true hash, the
  // destination receives a flipped byte with a batch hash that matches it.
  const channel: MigrationChannel = {
    sendPages: (b: PageBatch) => {
      if (!frozen || corrupted) return inner.sendPages(b);
      corrupted = true;
      const data = b.data.slice();
      data[77] ^= 0x5a;
      return inner.sendPages({ ...b, data, hashes: pageHashes(data) });
    },
    sendFile: (name, data) => inner.sendFile(name, data),
    flush: () => inner.flush(),
    restore: (req) => inner.restore(req),
    resume: () => inner.resume(),
    abort: (reason) => inner.abort(reason),
    get bytesSent() {
      return inner.bytesSent;
    },
  };
  try {
    await w.waitFor(/^tick 5 /);
    await assert.rejects(
      runMigration({
        id: "scan4",
        pid: w.pid,
        channel,
        policy: createPolicy("fixed-1"),
        workDir: work,
        onProgress: (ev) => frozen ||= ev.kind === "phase" && ev.phase === "transfer",
      }, planOf("delta", LAZY)),
      (e: unknown) => {
        assert.ok(e instanceof MigrationError && e.sourceRunning, String(e));
        assert.match(e.message, /verification failed: pid \d+: page 0x[0-9a-f]+ differs/);
        return true;
      },
    );
    assert.ok(corrupted, "no page travelled in the freeze");
    assert.ok(isAlive(w.pid));
    await assertMemcheckHealthy(w, w.pid);
    assert.deepEqual(runningCopies(w.out), [w.pid], "exactly one copy runs");
  } finally {
    inner.close();
    await w.stop();
    for (const d of [dest, work, w.dir]) Deno.removeSync(d, { recursive: true });
  }
  assertNoScratch("scan4");
});

Deno.test("scan-and-copy: pre-copied pages the destination holds wrong, never sent again, fail the digest manifest's check; the source runs on", async () => {
  requireCriuBinary();
  const w = await startMemcheck(["--mib", "32", "--hot-mib", "2", "--write-pages", "128"]);
  const dest = Deno.makeTempDirSync({ prefix: "u2cm-dest-" });
  const work = Deno.makeTempDirSync({ prefix: "u2cm-work-" });
  const inner = new LocalChannel({ dir: dest, migrationId: "scan5" });
  let frozen = false, corrupted = 0;
  // Before the freeze, the first page of every batch arrives with a flipped byte (and a batch
  // hash that matches it) while the ledger keeps the true hash: the scan finds the cold ones
  // unchanged and does not send them again, so only the manifest's chunk digests, checked over
  // the destination's own hashes, can tell.
  const channel: MigrationChannel = {
    sendPages: (b: PageBatch) => {
      if (frozen) return inner.sendPages(b);
      corrupted++;
      const data = b.data.slice();
      data[123] ^= 0xa5;
      return inner.sendPages({ ...b, data, hashes: pageHashes(data) });
    },
    sendFile: (name, data) => inner.sendFile(name, data),
    flush: () => inner.flush(),
    restore: (req) => inner.restore(req),
    resume: () => inner.resume(),
    abort: (reason) => inner.abort(reason),
    get bytesSent() {
      return inner.bytesSent;
    },
  };
  try {
    await w.waitFor(/^tick 5 /);
    await assert.rejects(
      runMigration({
        id: "scan5",
        pid: w.pid,
        channel,
        policy: createPolicy("fixed-1"),
        workDir: work,
        onProgress: (ev) => frozen ||= ev.kind === "phase" && ev.phase === "freeze",
      }, planOf("delta", LAZY)),
      (e: unknown) => {
        assert.ok(e instanceof MigrationError && e.sourceRunning, String(e));
        assert.match(
          e.message,
          /verification failed: pid \d+: the pages in 0x[0-9a-f]+–0x[0-9a-f]+ differ from the source's/,
        );
        return true;
      },
    );
    assert.ok(corrupted > 10, `only ${corrupted} batches before the freeze`);
    assert.ok(isAlive(w.pid));
    await assertMemcheckHealthy(w, w.pid);
    assert.deepEqual(runningCopies(w.out), [w.pid], "exactly one copy runs");
  } finally {
    inner.close();
    await w.stop();
    for (const d of [dest, work, w.dir]) Deno.removeSync(d, { recursive: true });
  }
  assertNoScratch("scan5");
});
