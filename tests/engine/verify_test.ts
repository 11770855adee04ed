/**
 * "ok" means verified: the destination checks the images it assembled against the source's
 * final page manifest and reads the restored, stopped tree back before confirming; a page that
 * differs rolls the migration back with the source running.
 */
import assert from "node:assert/strict";
import { readDumpDir } from "../../src/criu/images/mod.ts";
import { criuDump } from "../../src/criu/run.ts";
import type { MigrationChannel, PageBatch } from "../../src/engine/channel.ts";
import { runMigration } from "../../src/engine/driver.ts";
import { LocalChannel } from "../../src/engine/local_channel.ts";
import { decodeManifest, ManifestBuilder, ManifestError } from "../../src/engine/manifest.ts";
import { pageHashes } from "../../src/native/page_hash.ts";
import { waitGone } from "../../src/tracker/proc.ts";
import { LOCAL_LAZY_MIN_PAGES, restoreMigration } from "../../src/engine/restore.ts";
import { planOf } from "../../src/engine/select.ts";
import { MigrationError } from "../../src/engine/types.ts";
import { checkImages, readBackTree, VerificationError } from "../../src/engine/verify.ts";
import { connectPeer } from "../../src/peer/mod.ts";
import { createPolicy } from "../../src/policy/mod.ts";
import {
  assertMemcheckHealthy,
  type Memcheck,
  requireCriuBinary,
  startMemcheck,
  startWorkload,
} from "../criu/support.ts";
import { makeNodes } from "./support/agents.ts";
import { startLocalRun, stopLocalRun } from "./support/local_run.ts";
import { runningCopies } from "./support/memcheck_pids.ts";

/** The delta plan: hash pre-copy rounds, then stop-and-copy. */
const DELTA = planOf("delta", { softDirty: false, lazy: false });

Deno.test("a manifest survives encode → decode and malformed ones are refused", () => {
  const b = new ManifestBuilder();
  const h = new Uint8Array(3 * 16).map((_, i) => i);
  b.add("process", 1, [0x1000, 0x2000], h.subarray(0, 32));
  b.add("process", 1, [0x5000], h.subarray(32));
  b.add("shmem", 77, [0], h.subarray(0, 16));
  const m = decodeManifest(b.encode());
  assert.equal(m.pages, 4);
  assert.deepEqual(m.processes.get(1)!.addresses, [0x1000, 0x2000, 0x5000]);
  assert.deepEqual(m.processes.get(1)!.hashes, h);
  assert.deepEqual(m.shmem.get(77)!.addresses, [0]);
  const json = JSON.parse(new TextDecoder().decode(b.encode()));
  const bad = (mut: (j: typeof json) => void) => {
    const j = structuredClone(json);
    mut(j);
    return new TextEncoder().encode(JSON.stringify(j));
  };
  assert.throws(
    () => decodeManifest(bad((j) => j.processes[0].runs[0][0] = 0x1001)),
    ManifestError,
  );
  assert.throws(() => decodeManifest(bad((j) => j.processes[0].hashes = "AAAA")), ManifestError);
  assert.throws(() => decodeManifest(bad((j) => j.extra = 1)), ManifestError);
  assert.throws(() => decodeManifest(bad((j) => j.processes.push(j.processes[0]))), ManifestError);
  assert.throws(() => decodeManifest(new TextEncoder().encode("{")), ManifestError);
});

Deno.test("--verify full reads back every page of the restored tree before it runs", async () => {
  const r = await startLocalRun({
    id: "v1",
    memcheck: ["--mib", "16", "--write-pages", "64", "--hot-percent", "10"],
  });
  const { w, work, channel } = r;
  try {
    const out = await runMigration({
      id: "v1",
      pid: w.pid,
      channel,
      policy: createPolicy("fixed-2"),
      workDir: work,
      verify: "full",
    }, DELTA);
    const restored = out.destPid;
    const v = out.verified!;
    assert.equal(v.mode, "full");
    assert.ok(v.manifestPages >= 4096, `${v.manifestPages} pages in the manifest`);
    assert.equal(v.imagePages, v.manifestPages);
    assert.equal(v.readBackPages, v.manifestPages);
    assert.ok(await waitGone(w.pid, 5000), "source still exists");
    await assertOneHealthyCopy(w, restored);
  } finally {
    await stopLocalRun(r);
  }
});

/**
 * A channel that, once the tree is frozen, flips a byte of the first page batch and gives it
 * matching hashes — a page that reaches the destination's store intact by every frame check,
 * but is not the page CRIU dumped.
 */
function corruptingFinal(inner: MigrationChannel, frozen: () => boolean): MigrationChannel {
  let done = false;
  return {
    sendPages: (b: PageBatch) => {
      if (!frozen() || done) return inner.sendPages(b);
      done = true;
      const data = b.data.slice();
      data[123] ^= 0x5a;
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
}

Deno.test("a page corrupted in flight fails the manifest check; the source runs on, exactly once", async () => {
  requireCriuBinary();
  const nodes = await makeNodes();
  const agent = await nodes.startB();
  const w = await startMemcheck(["--mib", "16", "--write-pages", "200", "--hot-percent", "20"]);
  const client = await connectPeer({ stateDir: nodes.a, peer: "b", resumeTimeoutMs: 1000 });
  const work = Deno.makeTempDirSync({ prefix: "u2cm-work-" });
  try {
    await w.waitFor(/^tick 5 /);
    let frozen = false;
    const channel = corruptingFinal(await client.openMigration("v2", 16 << 20), () => frozen);
    await assert.rejects(
      runMigration({
        id: "v2",
        pid: w.pid,
        channel,
        policy: createPolicy("fixed-2"),
        workDir: work,
        onProgress: (ev) => frozen ||= ev.kind === "phase" && ev.phase === "transfer",
      }, DELTA),
      (e: unknown) => {
        assert.ok(e instanceof MigrationError, String(e));
        assert.equal(e.sourceRunning, true);
        assert.match(e.message, /verification failed: pid \d+: page 0x[0-9a-f]+ differs/);
        return true;
      },
    );
    assert.match(agent.log(), /verification failed/);
    assert.deepEqual(runningCopies(w.out), [w.pid]);
    // Nor a stopped one: what CRIU restored while the images were checked was ended.
    assert.deepEqual(copiesInAnyState(w.out).filter((p) => p !== w.pid), []);
    await assertOneHealthyCopy(w, w.pid);
  } finally {
    await client.close();
    await agent.stop();
    await w.stop();
    nodes.cleanup();
    Deno.removeSync(work, { recursive: true });
    Deno.removeSync(w.dir, { recursive: true });
  }
});

async function assertOneHealthyCopy(w: Memcheck, pid: number): Promise<void> {
  assert.deepEqual(runningCopies(w.out), [pid]);
  await assertMemcheckHealthy(w, pid);
}

Deno.test("reading back a stopped tree matches its dump, and a changed byte is found", async () => {
  requireCriuBinary();
  const w = await startMemcheck(["--mib", "8"]);
  const dir = Deno.makeTempDirSync({ prefix: "u2cm-dump-" });
  try {
    await w.waitFor(/^tick 3 /);
    await criuDump({ pid: w.pid, dir, leave: "stopped" });
    const dump = await readDumpDir(dir);
    const b = new ManifestBuilder();
    for (const mem of dump.memory) {
      b.add(
        "process",
        mem.pid,
        mem.addresses,
        pageHashes(Deno.readFileSync(`${dir}/${mem.pagesFile}`)),
      );
    }
    const manifest = decodeManifest(b.encode());
    assert.equal(await checkImages(dir, manifest), manifest.pages);
    // The dumped tree itself, still stopped, is what a restore would have produced.
    const all = await readBackTree({ root: w.pid, dir, manifest, mode: "full" });
    assert.equal(all, manifest.pages);
    const some = await readBackTree({ root: w.pid, dir, manifest, mode: "sample" });
    assert.ok(some > 0 && some < all, `${some} of ${all} sampled`);
    // One byte of the largest mapping changes: full read-back finds it.
    const list = manifest.processes.get(dump.memory[0].pid)!;
    const addr = list.addresses[Math.floor(list.addresses.length / 2)];
    const mem = Deno.openSync(`/proc/${w.pid}/mem`, { read: true, write: true });
    try {
      mem.seekSync(addr + 7, Deno.SeekMode.Start);
      const one = new Uint8Array(1);
      mem.readSync(one);
      mem.seekSync(addr + 7, Deno.SeekMode.Start);
      mem.writeSync(Uint8Array.of(one[0] ^ 1));
    } finally {
      mem.close();
    }
    await assert.rejects(
      readBackTree({ root: w.pid, dir, manifest, mode: "full" }),
      (e: unknown) => e instanceof VerificationError && e.message.includes(addr.toString(16)),
    );
  } finally {
    await w.stop();
    Deno.removeSync(dir, { recursive: true });
    Deno.removeSync(w.dir, { recursive: true });
  }
});

Deno.test("pre-copied shared memory is not sent again at the freeze; its pages file is rebuilt", async () => {
  requireCriuBinary();
  const w = await startWorkload("shapes", ["--shared", "--memfd", "--mib", "16"]);
  const dest = Deno.makeTempDirSync({ prefix: "u2cm-dest-" });
  const work = Deno.makeTempDirSync({ prefix: "u2cm-work-" });
  const channel = new LocalChannel({ dir: dest, migrationId: "v3" });
  let restored = 0;
  try {
    await w.waitFor(/^tick 3 /);
    const out = await runMigration({
      id: "v3",
      pid: w.pid,
      channel,
      policy: createPolicy("fixed-2"),
      workDir: work,
      verify: "full",
    }, DELTA);
    restored = out.destPid;
    // 2 × 4096 pages of shared memory (anonymous shared, memfd), both pre-copied; the child's
    // half of the anonymous region is resident only in the child, and travelled as its pages.
    const v = out.verified!;
    assert.ok(v.manifestPages >= 2 * 4096, `${v.manifestPages} pages in the manifest`);
    assert.equal(v.readBackPages, v.manifestPages);
    assert.ok(out.rounds[0].pages_sent >= 2 * 4096, `round 0 sent ${out.rounds[0].pages_sent}`);
    assert.ok(out.finalPages < 4096 / 4, `the freeze sent ${out.finalPages} pages`);
    const copies = runningCopies(w.out, "shapes", true);
    assert.deepEqual(copies, [restored]);
    const mark = w.lines();
    Deno.kill(restored, "SIGUSR1");
    assert.match(await w.waitFor(/^verify (ok|FAIL)/, 10_000, mark), /^verify ok shared memfd/);
  } finally {
    channel.close();
    for (const pid of runningCopies(w.out, "shapes")) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
    await w.stop();
    for (const d of [dest, work, w.dir]) Deno.removeSync(d, { recursive: true });
  }
});

Deno.test("a big composed tree whose image check fails while CRIU restores it: the restored copy is ended before it runs, the source runs on, exactly once", async () => {
  let changed = 0;
  const r = await startLocalRun({
    id: "vcc",
    memcheck: ["--mib", "96", "--hot-mib", "4", "--write-pages", "256"],
    // Every page has arrived: write other bytes into a slot far into the big run through the
    // pages image (which hashes what it writes), so that the composed check sees a difference.
    onRestore: (ctx, options) => {
      const image = ctx.store.pagesImage;
      const layout = image?.layout(1);
      if (image && layout && layout.ascending.length > LOCAL_LAZY_MIN_PAGES) {
        changed = layout.ascending[layout.ascending.length - 2048];
        image.put(1, [changed], new Uint8Array(4096).fill(0xa5));
      }
      return restoreMigration(ctx, options);
    },
  });
  const { w, work, channel } = r;
  try {
    await assert.rejects(
      runMigration({
        id: "vcc",
        pid: w.pid,
        channel,
        policy: createPolicy("fixed-2"),
        workDir: work,
      }, { ...planOf("delta", { softDirty: false, lazy: true }), freeze: "scan" }),
      (e: unknown) => {
        assert.ok(e instanceof MigrationError && e.sourceRunning, String(e));
        // Named by the composed check (the page) or by the digest manifest's check (the 1 MiB
        // chunk of held pages it lies in).
        const m = e.message.match(
          /page 0x([0-9a-f]+) differs in the images|pages in 0x([0-9a-f]+)–0x([0-9a-f]+) differ from the source's/,
        );
        assert.ok(m, e.message);
        if (m[1]) assert.equal(parseInt(m[1], 16), changed, e.message);
        else assert.ok(parseInt(m[2], 16) <= changed && changed < parseInt(m[3], 16), e.message);
        return true;
      },
    );
    assert.ok(changed > 0, "no slot was changed");
    // No other copy at all, not even a stopped one: CRIU's restore was ended.
    assert.deepEqual(copiesInAnyState(w.out).filter((p) => p !== w.pid), []);
    await assertOneHealthyCopy(w, w.pid);
  } finally {
    await stopLocalRun(r);
  }
});

/** Processes writing to `out` (memcheck's copies), stopped ones included; zombies not. */
function copiesInAnyState(out: string): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      if (!Deno.readTextFileSync(`/proc/${e.name}/comm`).startsWith("memcheck")) continue;
      if (Deno.readLinkSync(`/proc/${e.name}/fd/1`) !== out) continue;
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
      pids.push(Number(e.name));
    } catch { /* gone */ }
  }
  return pids;
}
