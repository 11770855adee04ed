/**
 * Post-copy is verified page by page: the destination checks every page that arrives after the
 * restore against the source's manifest before CRIU's lazy-pages daemon may place it, counts the
 * requests and faults, and a page that differs never reaches the workload.
 */
import assert from "node:assert/strict";
import { runMigration } from "../../src/engine/driver.ts";
import { POST_COPY_LINK_RISK } from "../../src/engine/final_post_copy.ts";
import { LocalChannel } from "../../src/engine/local_channel.ts";
import { startLazyCheck } from "../../src/engine/lazy_check.ts";
import { type Area, areasOn, maskedPageHash } from "../../src/engine/page_allowance.ts";
import { decodeManifest, ManifestBuilder } from "../../src/engine/manifest.ts";
import { pageServerIovBytes } from "../../src/criu/page_server.ts";
import { pageHashes } from "../../src/native/page_hash.ts";
import type { PageServerEndpoint } from "../../src/engine/parts.ts";
import { planOf } from "../../src/engine/select.ts";
import { MigrationError } from "../../src/engine/types.ts";
import { waitGone } from "../../src/tracker/proc.ts";
import { createPolicy } from "../../src/policy/mod.ts";
import { assertMemcheckHealthy, requireCriuBinary, startMemcheck } from "../criu/support.ts";
import { runningCopies } from "./support/memcheck_pids.ts";

const LAZY = planOf("lazy", { softDirty: false, lazy: true });

Deno.test("post-copy: every lazy page is checked against the manifest as it arrives; requests and faults are reported", async () => {
  requireCriuBinary();
  const w = await startMemcheck(["--mib", "32", "--write-pages", "64", "--hot-percent", "10"]);
  const dest = Deno.makeTempDirSync({ prefix: "u2cm-dest-" });
  const work = Deno.makeTempDirSync({ prefix: "u2cm-work-" });
  const channel = new LocalChannel({ dir: dest, migrationId: "pc1" });
  try {
    await w.waitFor(/^tick 5 /);
    const out = await runMigration({
      id: "pc1",
      pid: w.pid,
      channel,
      policy: createPolicy("post-copy"),
      workDir: work,
    }, LAZY);
    const pc = out.postCopy;
    assert.ok(pc, "no post-copy report");
    assert.ok(pc.lazyPages > 8000, `only ${pc.lazyPages} pages left lazy`);
    assert.equal(pc.checkedPages, pc.lazyPages);
    assert.ok(pc.requests > 0 && pc.requests <= pc.lazyPages, JSON.stringify(pc));
    assert.ok(pc.remoteFaults !== undefined && pc.remoteFaults >= 0, JSON.stringify(pc));
    assert.equal(pc.linkRisk, POST_COPY_LINK_RISK);
    // The eager pages were checked in the images, the lazy ones on arrival: all of the manifest.
    const v = out.verified!;
    assert.equal(v.imagePages + pc.checkedPages, v.manifestPages);
    assert.ok(out.phases.manifest_ms !== undefined);
    assert.ok(await waitGone(w.pid, 5000), "source still exists");
    assert.deepEqual(runningCopies(w.out), [out.destPid]);
    await assertMemcheckHealthy(w, out.destPid);
  } finally {
    channel.close();
    for (const pid of runningCopies(w.out)) Deno.kill(pid, "SIGKILL");
    await w.stop();
    for (const d of [dest, work, w.dir]) Deno.removeSync(d, { recursive: true });
  }
});

Deno.test("post-copy: a page corrupted on its way is refused; no copy runs on memory that is not the workload's", async () => {
  requireCriuBinary();
  const w = await startMemcheck(["--mib", "32", "--write-pages", "64", "--hot-percent", "10"]);
  const dest = Deno.makeTempDirSync({ prefix: "u2cm-dest-" });
  const work = Deno.makeTempDirSync({ prefix: "u2cm-work-" });
  const channel = new LocalChannel({ dir: dest, migrationId: "pc2" });
  const relay = corruptingPageServer();
  try {
    await w.waitFor(/^tick 5 /);
    await assert.rejects(
      runMigration({
        id: "pc2",
        pid: w.pid,
        channel,
        policy: createPolicy("post-copy"),
        workDir: work,
        pageServer: relay.endpoint,
      }, LAZY),
      (e: unknown) => {
        assert.ok(e instanceof MigrationError, String(e));
        assert.match(e.message, /page 0x[0-9a-f]+ differs from the manifest/);
        return true;
      },
    );
    assert.ok(relay.flipped(), "no page was corrupted");
    // Refused before the commit, the source runs on; after it, the destination's copy was
    // stopped for good. Either way no copy runs on the corrupted page.
    const copies = runningCopies(w.out);
    assert.ok(copies.length === 0 || (copies.length === 1 && copies[0] === w.pid), `${copies}`);
    if (copies.length === 1) await assertMemcheckHealthy(w, w.pid);
  } finally {
    relay.close();
    channel.close();
    for (const pid of runningCopies(w.out)) Deno.kill(pid, "SIGKILL");
    await w.stop();
    for (const d of [dest, work, w.dir]) Deno.removeSync(d, { recursive: true });
  }
});

/**
 * A page server endpoint whose traffic passes a relay that flips one byte inside the first page
 * the source answers with (stream offset 200: past the 24- or 32-byte header).
 */
function corruptingPageServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const relayPort = (listener.addr as Deno.NetAddr).port;
  let dumpPort = 0;
  let flipped = false;
  const conns: Deno.Conn[] = [];
  (async () => {
    for await (const daemon of listener) {
      conns.push(daemon);
      const source = await Deno.connect({ hostname: "127.0.0.1", port: dumpPort });
      conns.push(source);
      for (const c of [daemon, source] as Deno.TcpConn[]) c.setNoDelay(true);
      daemon.readable.pipeTo(source.writable).catch(() => {});
      let offset = 0;
      source.readable.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, ctl) {
            const at = 200 - offset;
            if (!flipped && at >= 0 && at < chunk.length) {
              chunk = chunk.slice();
              chunk[at] ^= 0x5a;
              flipped = true;
            }
            offset += chunk.length;
            ctl.enqueue(chunk);
          },
        }),
      ).pipeTo(daemon.writable).catch(() => {});
    }
  })().catch(() => {});
  const endpoint: PageServerEndpoint = {
    listen: () => {
      const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      dumpPort = (l.addr as Deno.NetAddr).port;
      l.close();
      return Promise.resolve({ address: "127.0.0.1", port: dumpPort });
    },
    remote: () => ({ address: "127.0.0.1", port: relayPort }),
  };
  return {
    endpoint,
    flipped: () => flipped,
    close: () => {
      try {
        listener.close();
      } catch { /* closed */ }
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
    },
  };
}

Deno.test("the relay speaks both page-server layouts (CRIU 4.1's 24-byte and 4.2's 32-byte commands) and refuses a page that differs", async () => {
  for (const version of ["4.1.1", "4.2.1"]) {
    for (const corrupt of [false, true]) {
      const page = new Uint8Array(4096).fill(7);
      const builder = new ManifestBuilder();
      builder.add("process", 5, [0x10000, 0x11000], pageHashes(concat(page, page)));
      const manifest = decodeManifest(builder.encode());
      const size = pageServerIovBytes(version);
      const iov = (cmd: number, nr: number, vaddr: number, pid: number) => {
        const b = new Uint8Array(size);
        const v = new DataView(b.buffer);
        v.setUint32(0, cmd, true);
        if (size === 24) v.setUint32(4, nr, true);
        else v.setBigUint64(8, BigInt(nr), true);
        v.setBigUint64(size === 24 ? 8 : 16, BigInt(vaddr), true);
        v.setBigUint64(size === 24 ? 16 : 24, BigInt(pid), true);
        return b;
      };
      // A page server: answers a GET with the pages, a CLOSE with status 0.
      const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const served = (async () => {
        const c = await server.accept();
        try {
          for (;;) {
            const req = await readExactly(c, size);
            if (!req) return;
            const cmd = new DataView(req.buffer).getUint32(0, true);
            if (cmd === 0x1023) {
              await c.write(new Uint8Array(4));
              continue;
            }
            const data = concat(page, page);
            if (corrupt) data[5000] ^= 1;
            await c.write(concat(iov(6 | (1 << 16), 2, 0x10000, 5), data));
          }
        } finally {
          c.close();
        }
      })();
      const check = startLazyCheck({
        upstream: { address: "127.0.0.1", port: (server.addr as Deno.NetAddr).port },
        manifest,
        expectedPages: 2,
        criuVersion: version,
      });
      // The daemon's side: one GET, then CLOSE.
      const d = await Deno.connect({ hostname: "127.0.0.1", port: check.port });
      await d.write(iov(7, 2, 0x10000, 5));
      const answer = await readExactly(d, size + 8192);
      if (!corrupt) {
        assert.ok(answer, version);
        assert.deepEqual(answer!.subarray(size), concat(page, page));
        await d.write(iov(0x1023, 0, 0, 0));
        assert.deepEqual(await readExactly(d, 4), new Uint8Array(4));
      } else {
        assert.equal(answer, undefined, "a differing page reached the daemon");
      }
      d.close();
      const stats = await check.done;
      assert.equal(stats.requests, 1);
      assert.equal(stats.checkedPages, corrupt ? 0 : 2, version);
      assert.equal(stats.closed, !corrupt);
      if (corrupt) assert.match(stats.mismatch ?? "", /pid 5: page 0x11000 differs/);
      server.close();
      await served.catch(() => {});
    }
  }
});

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

async function readExactly(c: Deno.Conn, n: number): Promise<Uint8Array | undefined> {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const r = await c.read(out.subarray(got)).catch(() => null);
    if (r === null || r === 0) return undefined;
    got += r;
  }
  return out;
}

Deno.test("the relay allows what the read-back allows: a lazy page differing only in a thread's dead stack or rseq area passes, one differing outside is refused", async () => {
  const size = pageServerIovBytes("4.2.1");
  const page = new Uint8Array(4096).fill(9);
  // The allowance of pid 5: an area inside its second page (as allowedAreas gives for a thread).
  const areas: Area[] = [[0x11000 + 900, 0x11000 + 1200]];
  for (const [at, passes] of [[4096 + 1000, true], [4096 + 2000, false]] as const) {
    const builder = new ManifestBuilder();
    // The source hashes a page touching an allowed area with those bytes zeroed.
    const hashes = concat(pageHashes(page), maskedPageHash(page, 0x11000, areasOn(areas, 0x11000)));
    builder.add("process", 5, [0x10000, 0x11000], hashes);
    const iov = (cmd: number, nr: number, vaddr: number) => {
      const b = new Uint8Array(size);
      const v = new DataView(b.buffer);
      v.setUint32(0, cmd, true);
      v.setBigUint64(8, BigInt(nr), true);
      v.setBigUint64(16, BigInt(vaddr), true);
      v.setBigUint64(24, 5n, true);
      return b;
    };
    const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const served = (async () => {
      const c = await server.accept();
      try {
        for (;;) {
          const req = await readExactly(c, size);
          if (!req) return;
          if (new DataView(req.buffer).getUint32(0, true) === 0x1023) {
            await c.write(new Uint8Array(4));
            continue;
          }
          const data = concat(page, page);
          data[at] ^= 0x40; // the byte CRIU or the kernel changed
          await c.write(concat(iov(6 | (1 << 16), 2, 0x10000), data));
        }
      } finally {
        c.close();
      }
    })();
    const check = startLazyCheck({
      upstream: { address: "127.0.0.1", port: (server.addr as Deno.NetAddr).port },
      manifest: decodeManifest(builder.encode()),
      expectedPages: 2,
      criuVersion: "4.2.1",
      allowance: new Map([[5, areas]]),
    });
    const d = await Deno.connect({ hostname: "127.0.0.1", port: check.port });
    await d.write(iov(7, 2, 0x10000));
    const answer = await readExactly(d, size + 8192);
    assert.equal(answer !== undefined, passes, `byte ${at}`);
    if (passes) {
      await d.write(iov(0x1023, 0, 0));
      assert.deepEqual(await readExactly(d, 4), new Uint8Array(4));
    }
    d.close();
    const stats = await check.done;
    assert.equal(stats.checkedPages, passes ? 2 : 0);
    if (!passes) assert.match(stats.mismatch ?? "", /pid 5: page 0x11000 differs/);
    server.close();
    await served.catch(() => {});
  }
});

/**
 * A page server over TCP for pid 5's `n` pages from 0x10000 (page i filled with i & 0xff, page
 * `corrupt` with one byte flipped): answers each GET with the pages asked, a CLOSE with status 0,
 * and notes each GET's size.
 */
function patternServer(size: number, n: number, corrupt = -1) {
  const page = (i: number) => {
    const p = new Uint8Array(4096).fill(i & 0xff);
    if (i === corrupt) p[100] ^= 1;
    return p;
  };
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const asked: number[] = [];
  const served = (async () => {
    const c = await listener.accept();
    try {
      for (;;) {
        const req = await readExactly(c, size);
        if (!req) return;
        const v = new DataView(req.buffer);
        if (v.getUint32(0, true) === 0x1023) {
          await c.write(new Uint8Array(4));
          continue;
        }
        const nr = size === 24 ? v.getUint32(4, true) : Number(v.getBigUint64(8, true));
        const vaddr = Number(v.getBigUint64(size === 24 ? 8 : 16, true));
        asked.push(nr);
        const first = (vaddr - 0x10000) / 4096;
        const parts = Array.from({ length: nr }, (_, k) => page(first + k));
        const head = new Uint8Array(req);
        new DataView(head.buffer).setUint32(0, 6 | (4 << 16), true);
        for (let off = 0, all = concat(head, ...parts); off < all.length;) {
          off += await c.write(all.subarray(off));
        }
      }
    } catch {
      /* cut */
    } finally {
      c.close();
    }
  })();
  const addrs = Array.from({ length: n }, (_, i) => 0x10000 + i * 4096);
  return {
    port: (listener.addr as Deno.NetAddr).port,
    asked,
    // The source's manifest: what the pages were before any corruption.
    manifest: () => {
      const b = new ManifestBuilder();
      const good = addrs.map((_, i) => new Uint8Array(4096).fill(i & 0xff));
      b.add("process", 5, addrs, pageHashes(concat(...good)));
      return decodeManifest(b.encode());
    },
    close: async () => {
      listener.close();
      await served;
    },
  };
}

Deno.test("the relay reads ahead once the tree resumed: the daemon's requests are answered from pages fetched in large requests, each checked as it arrived", async () => {
  for (const version of ["4.1.1", "4.2.1"]) {
    const size = pageServerIovBytes(version);
    const n = 2000;
    const server = patternServer(size, n);
    const check = startLazyCheck({
      upstream: { address: "127.0.0.1", port: server.port },
      manifest: server.manifest(),
      expectedPages: n,
      criuVersion: version,
      readAhead: [{ pid: 5, vaddr: 0x10000, nrPages: n }],
    });
    const d = await Deno.connect({ hostname: "127.0.0.1", port: check.port });
    const command = (cmd: number, nr: number, vaddr: number) => {
      const b = new Uint8Array(size);
      const v = new DataView(b.buffer);
      v.setUint32(0, cmd, true);
      if (size === 24) v.setUint32(4, nr, true);
      else v.setBigUint64(8, BigInt(nr), true);
      v.setBigUint64(size === 24 ? 8 : 16, BigInt(vaddr), true);
      v.setBigUint64(size === 24 ? 16 : 24, 5n, true);
      return b;
    };
    const ask = async (first: number, nr: number) => {
      await d.write(command(7, nr, 0x10000 + first * 4096));
      const answer = await readExactly(d, size + nr * 4096);
      assert.ok(answer, `no answer for pages ${first}+${nr}`);
      for (let k = 0; k < nr; k++) {
        assert.equal(answer![size + k * 4096], (first + k) & 0xff, `page ${first + k}`);
      }
    };
    // Before the resume every request goes to the source as it is (a fault of the restore).
    await ask(1990, 10);
    check.startReadAhead!();
    // The daemon's background transfer: 16 pages a request, in order (and a fault out of it).
    await ask(1500, 1);
    for (let first = 0; first < 1990; first += 16) {
      if (first <= 1500 && 1500 < first + 16) {
        await ask(first, 1500 - first);
        if (first + 16 > 1501) await ask(1501, first + 16 - 1501);
        continue;
      }
      await ask(first, Math.min(16, 1990 - first));
    }
    await d.write(command(0x1023, 0, 0));
    assert.deepEqual(await readExactly(d, 4), new Uint8Array(4));
    d.close();
    const stats = await check.done;
    await server.close();
    // Every page reached the daemon once, checked; the source saw a few large requests.
    assert.equal(stats.checkedPages, n, version);
    assert.equal(stats.closed, true);
    assert.ok(stats.requests > 120, JSON.stringify(stats));
    assert.ok(
      server.asked.length < stats.requests / 4 && Math.max(...server.asked) >= 256,
      `the source was asked ${server.asked.length} times (${server.asked.slice(0, 20)}…) for ` +
        `${stats.requests} daemon requests`,
    );
  }
});

Deno.test("a page that differs in a read-ahead answer is refused before the daemon asks for it", async () => {
  const size = pageServerIovBytes("4.1.1");
  const n = 1200;
  const server = patternServer(size, n, 1000);
  let refused = "";
  const check = startLazyCheck({
    upstream: { address: "127.0.0.1", port: server.port },
    manifest: server.manifest(),
    expectedPages: n,
    criuVersion: "4.1.1",
    readAhead: [{ pid: 5, vaddr: 0x10000, nrPages: n }],
    onMismatch: (why) => refused = why,
  });
  const d = await Deno.connect({ hostname: "127.0.0.1", port: check.port });
  check.startReadAhead!();
  // The daemon asks only for the first pages: the read-ahead meets the bad page on its own.
  const get = new Uint8Array(size);
  const v = new DataView(get.buffer);
  v.setUint32(0, 7, true);
  v.setUint32(4, 16, true);
  v.setBigUint64(8, 0x10000n, true);
  v.setBigUint64(16, 5n, true);
  await d.write(get);
  await readExactly(d, size + 16 * 4096); // answered, or cut once the bad page arrived
  // Then the daemon is done: its CLOSE reaches the source after what the read-ahead asked.
  const close = new Uint8Array(size);
  new DataView(close.buffer).setUint32(0, 0x1023, true);
  await d.write(close).catch(() => {});
  await readExactly(d, 4);
  d.close();
  const stats = await check.done;
  await server.close();
  assert.match(stats.mismatch ?? "", /pid 5: page 0x3f8000 differs/);
  assert.equal(refused, stats.mismatch);
  assert.ok(stats.checkedPages <= 16, "pages past the refusal reached the daemon");
  assert.equal(stats.closed, false);
});

Deno.test("a relay whose manifest has not arrived yet fetches and delivers nothing; once it arrives the pages are checked against it, and a manifest that never comes ends the session with nothing delivered", async () => {
  const version = "4.2.1";
  const size = pageServerIovBytes(version);
  const iov = (cmd: number, nr: number, vaddr: number, pid: number) => {
    const b = new Uint8Array(size);
    const v = new DataView(b.buffer);
    v.setUint32(0, cmd, true);
    v.setBigUint64(8, BigInt(nr), true);
    v.setBigUint64(16, BigInt(vaddr), true);
    v.setBigUint64(24, BigInt(pid), true);
    return b;
  };
  const page = new Uint8Array(4096).fill(9);
  const builder = new ManifestBuilder();
  builder.add("process", 5, [0x10000], pageHashes(page));
  const manifest = decodeManifest(builder.encode());
  for (const outcome of ["arrives", "fails"] as const) {
    // A page server that counts the relay's connections and answers every GET with the page.
    const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    let connections = 0;
    const served = (async () => {
      const c = await server.accept();
      connections++;
      try {
        for (;;) {
          const req = await readExactly(c, size);
          if (!req) return;
          if (new DataView(req.buffer).getUint32(0, true) === 0x1023) {
            await c.write(new Uint8Array(4));
            continue;
          }
          await c.write(concat(iov(6 | (1 << 16), 1, 0x10000, 5), page));
        }
      } finally {
        c.close();
      }
    })();
    let arrive!: (m: typeof manifest) => void, fail!: (e: Error) => void;
    const pending = new Promise<typeof manifest>((res, rej) => [arrive, fail] = [res, rej]);
    const check = startLazyCheck({
      upstream: { address: "127.0.0.1", port: (server.addr as Deno.NetAddr).port },
      manifest: pending,
      expectedPages: pending.then(() => 1),
      criuVersion: version,
    });
    const d = await Deno.connect({ hostname: "127.0.0.1", port: check.port });
    await d.write(iov(7, 1, 0x10000, 5));
    // While the manifest is missing: no answer reaches the daemon, the source is never asked.
    const answering = readExactly(d, size + 4096);
    const early = await Promise.race([
      answering.then((b) => b ? "answered" : "closed"),
      new Promise<string>((r) => setTimeout(() => r("waiting"), 300)),
    ]);
    assert.equal(early, "waiting", "the relay answered before the manifest arrived");
    assert.equal(connections, 0, "the relay reached the source before the manifest arrived");
    assert.equal(check.stats().checkedPages, 0);
    if (outcome === "arrives") {
      arrive(manifest);
      const answer = await answering;
      assert.ok(answer, "no answer after the manifest arrived");
      assert.deepEqual(answer!.subarray(size), page);
      await d.write(iov(0x1023, 0, 0, 0));
      assert.deepEqual(await readExactly(d, 4), new Uint8Array(4));
    } else {
      fail(new Error("the eager images differ from the manifest"));
      assert.equal(await answering, undefined, "a page was delivered without a manifest");
    }
    d.close();
    const stats = await check.done;
    assert.equal(stats.checkedPages, outcome === "arrives" ? 1 : 0);
    assert.equal(stats.closed, outcome === "arrives");
    assert.equal(connections, outcome === "arrives" ? 1 : 0);
    server.close();
    await served.catch(() => {});
  }
});
