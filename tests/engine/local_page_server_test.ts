import assert from "node:assert/strict";
import { runMigration } from "../../src/engine/driver.ts";
import type { ComposeResult } from "../../src/engine/lazy_images.ts";
import {
  type LocalPageServerKind,
  startLocalPageServer,
} from "../../src/engine/local_page_server.ts";
import { maskedPageHash } from "../../src/engine/page_allowance.ts";
import { decodeManifest, ManifestBuilder, type PageManifest } from "../../src/engine/manifest.ts";
import { LOCAL_LAZY_MIN_PAGES, restoreMigration } from "../../src/engine/restore.ts";
import { planOf } from "../../src/engine/select.ts";
import { MigrationError } from "../../src/engine/types.ts";
import { pageHashes } from "../../src/native/page_hash.ts";
import { isAlive, processState, waitGone } from "../../src/tracker/proc.ts";
import { createPolicy } from "../../src/policy/mod.ts";
import { resultOf } from "../../src/cli/migrate_result.ts";
import { assertMemcheckHealthy, requireCriuBinary, startMemcheck } from "../criu/support.ts";
import { runningCopies } from "./support/memcheck_pids.ts";
import { startLocalRun, stopLocalRun } from "./support/local_run.ts";
import { makeNodes, migrateTo, u2cm } from "./support/agents.ts";

const P = 4096;
const LAZY = { softDirty: false, lazy: true };
/** Both servers: the native one (the default) and the TypeScript fallback. */
const KINDS: LocalPageServerKind[] = ["native", "ts"];

/** A slot file of `n` pages at 0x10000… (page i filled with i + 1), composed and its manifest. */
function fixture(n: number) {
  const dir = Deno.makeTempDirSync({ prefix: "u2cm-lps-" });
  const data = new Uint8Array(n * P);
  for (let i = 0; i < n; i++) data.fill(i + 1, i * P, (i + 1) * P);
  const file = `${dir}/pages-1.img`;
  Deno.writeFileSync(file, data);
  const addresses = Array.from({ length: n }, (_, i) => 0x10000 + i * P);
  const hashes = pageHashes(data);
  const composed: ComposeResult = {
    inPlace: n,
    copied: 0,
    processes: new Map([[5, {
      addresses,
      fileCount: n,
      hashes,
      covered: new Set<number>(),
      page: () => Promise.resolve(new Uint8Array(P)),
      pagesFile: file,
    }]]),
  };
  const b = new ManifestBuilder();
  b.add("process", 5, addresses, hashes);
  // The manifest as the destination reads it.
  const manifest: PageManifest = decodeManifest(b.encode());
  return { dir, file, composed, manifest };
}

/**
 * The daemon's side of one session (CRIU 4.1: 24-byte iovs; 4.2: 32): GET each range, then
 * CLOSE (or, with `leave`, close the connection without it).
 */
async function session(
  port: number,
  gets: [number, number][],
  { iovBytes = 24, leave = false }: { iovBytes?: 24 | 32; leave?: boolean } = {},
) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const answers: { nr: number; vaddr: number; data: Uint8Array }[] = [];
  let status: number | undefined;
  try {
    const read = async (n: number) => {
      const out = new Uint8Array(n);
      let got = 0;
      while (got < n) {
        const r = await conn.read(out.subarray(got));
        if (r === null) return undefined;
        got += r;
      }
      return out;
    };
    const wide = iovBytes === 32;
    for (const [vaddr, nr] of gets) {
      const iov = new Uint8Array(iovBytes);
      const v = new DataView(iov.buffer);
      v.setUint32(0, 7, true);
      if (wide) v.setBigUint64(8, BigInt(nr), true);
      else v.setUint32(4, nr, true);
      v.setBigUint64(wide ? 16 : 8, BigInt(vaddr), true);
      v.setBigUint64(wide ? 24 : 16, 5n, true);
      await conn.write(iov);
      const head = await read(iovBytes);
      if (!head) return { answers, status };
      const h = new DataView(head.buffer);
      assert.equal(h.getUint32(0, true), (4 << 16) | 6, "not PS_IOV_ADD_F | PE_PRESENT");
      const n = wide ? Number(h.getBigUint64(8, true)) : h.getUint32(4, true);
      const data = await read(n * P);
      if (!data) return { answers, status };
      answers.push({ nr: n, vaddr: Number(h.getBigUint64(wide ? 16 : 8, true)), data });
    }
    if (leave) return { answers, status };
    const close = new Uint8Array(iovBytes);
    new DataView(close.buffer).setUint32(0, 0x1023, true);
    await conn.write(close);
    const s = await read(4);
    status = s ? new DataView(s.buffer).getInt32(0, true) : undefined;
  } finally {
    conn.close();
  }
  return { answers, status };
}

for (const kind of KINDS) {
  Deno.test(`local page server (${kind}): serves the slot file's pages as CRIU's page server does, each checked`, async () => {
    const f = fixture(8);
    try {
      const server = startLocalPageServer({
        composed: f.composed,
        manifest: f.manifest,
        expectedPages: 8,
        criuVersion: "4.1.1",
      }, kind);
      assert.equal(server.kind, kind, "the server asked for does not serve");
      const got = await session(server.port, [[0x10000, 3], [0x13000, 5]]);
      const stats = await server.done;
      assert.equal(got.status, 0);
      assert.deepEqual(got.answers.map((a) => [a.vaddr, a.nr]), [[0x10000, 3], [0x13000, 5]]);
      assert.equal(got.answers[1].data[0], 4, "page 3 holds 4s");
      assert.deepEqual(
        { checked: stats.checkedPages, closed: stats.closed, requests: stats.requests },
        { checked: 8, closed: true, requests: 2 },
      );
      assert.equal(stats.mismatch, undefined);
    } finally {
      Deno.removeSync(f.dir, { recursive: true });
    }
  });

  Deno.test(`local page server (${kind}): a page changed in its slot after the image check is never sent`, async () => {
    const f = fixture(8);
    try {
      // Behind the store's recorded hashes (what the image check compares): byte 100 of page 5.
      const file = Deno.openSync(f.file, { write: true });
      file.seekSync(5 * P + 100, Deno.SeekMode.Start);
      file.writeSync(new Uint8Array([0xee]));
      file.close();
      let refused = "";
      const server = startLocalPageServer({
        composed: f.composed,
        manifest: f.manifest,
        expectedPages: 8,
        criuVersion: "4.1.1",
        onMismatch: (why) => void (refused = why),
      }, kind);
      const got = await session(server.port, [[0x10000, 4], [0x14000, 4]]);
      const stats = await server.done;
      assert.deepEqual(got.answers.map((a) => a.vaddr), [0x10000], "the bad range was sent");
      assert.equal(got.status, undefined, "the session was not cut");
      assert.match(refused, /pid 5: page 0x15000 differs from the manifest/);
      assert.equal(stats.mismatch, refused);
      assert.equal(stats.checkedPages, 4);
      assert.equal(stats.closed, false);
    } finally {
      Deno.removeSync(f.dir, { recursive: true });
    }
  });

  Deno.test(`local page server (${kind}): a range the images do not hold as one run is refused`, async () => {
    const f = fixture(4);
    try {
      const server = startLocalPageServer({
        composed: f.composed,
        manifest: f.manifest,
        expectedPages: 4,
        criuVersion: "4.1.1",
      }, kind);
      const got = await session(server.port, [[0x12000, 4]]);
      const stats = await server.done;
      assert.equal(got.answers.length, 0);
      assert.match(stats.mismatch ?? "", /page 0x12000 \(4 pages\) is not one run of the images/);
    } finally {
      Deno.removeSync(f.dir, { recursive: true });
    }
  });

  Deno.test(`local page server (${kind}): CRIU 4.2's 32-byte iovs`, async () => {
    const f = fixture(4);
    try {
      const server = startLocalPageServer({
        composed: f.composed,
        manifest: f.manifest,
        expectedPages: 4,
        criuVersion: "4.2.1",
      }, kind);
      const got = await session(server.port, [[0x11000, 2], [0x10000, 1], [0x13000, 1]], {
        iovBytes: 32,
      });
      const stats = await server.done;
      assert.equal(got.status, 0);
      assert.deepEqual(got.answers.map((a) => [a.vaddr, a.nr]), [
        [0x11000, 2],
        [0x10000, 1],
        [0x13000, 1],
      ]);
      assert.equal(got.answers[0].data[P], 3, "page 2 holds 3s");
      assert.deepEqual([stats.checkedPages, stats.requests, stats.closed], [4, 3, true]);
    } finally {
      Deno.removeSync(f.dir, { recursive: true });
    }
  });

  Deno.test(`local page server (${kind}): held, it answers nothing until released`, async () => {
    const f = fixture(4);
    try {
      const server = startLocalPageServer({
        composed: f.composed,
        manifest: f.manifest,
        expectedPages: 4,
        criuVersion: "4.1.1",
      }, kind);
      server.hold();
      const got = session(server.port, [[0x10000, 4]]);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(server.stats().checkedPages, 0, "a held server answered");
      server.release();
      const { answers, status } = await got;
      const stats = await server.done;
      assert.deepEqual([answers.length, status, stats.checkedPages], [1, 0, 4]);
    } finally {
      Deno.removeSync(f.dir, { recursive: true });
    }
  });

  Deno.test(`local page server (${kind}): closed before the daemon came, it ends without a refusal`, async () => {
    const f = fixture(2);
    try {
      let refused = "";
      const server = startLocalPageServer({
        composed: f.composed,
        manifest: f.manifest,
        expectedPages: 2,
        criuVersion: "4.1.1",
        onMismatch: (why) => void (refused = why),
      }, kind);
      server.close();
      const stats = await server.done;
      assert.deepEqual([stats.requests, stats.closed, stats.mismatch, refused], [
        0,
        false,
        undefined,
        "",
      ]);
    } finally {
      Deno.removeSync(f.dir, { recursive: true });
    }
  });

  Deno.test(`local page server (${kind}): a daemon that leaves without its CLOSE is a refusal`, async () => {
    const f = fixture(4);
    try {
      let refused = "";
      const server = startLocalPageServer({
        composed: f.composed,
        manifest: f.manifest,
        expectedPages: 4,
        criuVersion: "4.1.1",
        onMismatch: (why) => void (refused = why),
      }, kind);
      const got = await session(server.port, [[0x10000, 2]], { leave: true });
      const stats = await server.done;
      assert.equal(got.answers.length, 1);
      assert.match(refused, /the lazy-pages daemon left before every page was placed/);
      assert.equal(stats.mismatch, refused);
      assert.deepEqual([stats.checkedPages, stats.closed], [2, false]);
    } finally {
      Deno.removeSync(f.dir, { recursive: true });
    }
  });

  Deno.test(`local page server (${kind}): a page whose bytes differ only in an allowed area is served, outside it refused`, async () => {
    const f = fixture(4);
    try {
      // The source hashed page 1 (0x11000) with bytes 64..128 zeroed (a thread's rseq area);
      // the slot holds other bytes there, and page 2 (0x12000) differs outside its area.
      const areas: [number, number][] = [[0x11000 + 64, 0x11000 + 128], [0x12000, 0x12010]];
      const slot = Deno.readFileSync(f.file);
      const list = f.manifest.processes.get(5)!;
      list.hashes.set(maskedPageHash(slot.subarray(P, 2 * P), 0x11000, [areas[0]]), 16);
      slot.fill(0x77, P + 64, P + 128);
      slot[2 * P + 100] ^= 1;
      Deno.writeFileSync(f.file, slot);
      let refused = "";
      const server = startLocalPageServer({
        composed: f.composed,
        manifest: f.manifest,
        expectedPages: 4,
        allowance: new Map([[5, areas]]),
        criuVersion: "4.1.1",
        onMismatch: (why) => void (refused = why),
      }, kind);
      const got = await session(server.port, [[0x10000, 2], [0x12000, 1]]);
      const stats = await server.done;
      assert.deepEqual(got.answers.map((a) => [a.vaddr, a.nr]), [[0x10000, 2]]);
      assert.equal(got.answers[0].data[P + 64], 0x77, "the page was not sent as the slot holds it");
      assert.match(refused, /pid 5: page 0x12000 differs from the manifest/);
      assert.equal(stats.checkedPages, 2);
    } finally {
      Deno.removeSync(f.dir, { recursive: true });
    }
  });

  Deno.test(`local page server (${kind}): a page the manifest does not name is refused`, async () => {
    const f = fixture(4);
    try {
      const list = f.manifest.processes.get(5)!;
      f.manifest.processes.set(5, {
        addresses: list.addresses.slice(0, 2),
        hashes: list.hashes.slice(0, 32),
      });
      const server = startLocalPageServer({
        composed: f.composed,
        manifest: f.manifest,
        expectedPages: 4,
        criuVersion: "4.1.1",
      }, kind);
      const got = await session(server.port, [[0x11000, 2]]);
      const stats = await server.done;
      assert.equal(got.answers.length, 0);
      assert.match(stats.mismatch ?? "", /^pid 5: page 0x12000 is not in the manifest$/);
    } finally {
      Deno.removeSync(f.dir, { recursive: true });
    }
  });
}

Deno.test("local page server (native): after a refusal the daemon's connection is cut only once onMismatch is done", async () => {
  const f = fixture(4);
  try {
    Deno.writeFileSync(f.file, new Uint8Array([0xee]), { append: false, create: false });
    let ended = 0;
    const server = startLocalPageServer({
      composed: f.composed,
      manifest: f.manifest,
      expectedPages: 4,
      criuVersion: "4.1.1",
      // (Where the restored copy is ended: its faults wait for the daemon's answer meanwhile.)
      onMismatch: () => new Promise((r) => setTimeout(() => r(void (ended = Date.now())), 300)),
    }, "native");
    const got = await session(server.port, [[0x10000, 1]]);
    const cutAt = Date.now();
    const stats = await server.done;
    assert.equal(got.answers.length, 0);
    assert.ok(ended > 0 && cutAt >= ended, "the daemon saw the cut before onMismatch was done");
    assert.match(stats.mismatch ?? "", /the slot file ends early|differs from the manifest/);
  } finally {
    Deno.removeSync(f.dir, { recursive: true });
  }
});

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
