/**
 * Post-copy is verified page by page: the destination checks every page that arrives after the
 * restore against the source's manifest before CRIU's lazy-pages daemon may place it, counts the
 * requests and faults, and a page that differs never reaches the workload.
 */
import assert from "node:assert/strict";
import { runMigration } from "../../src/engine/driver.ts";
import { POST_COPY_LINK_RISK } from "../../src/engine/final_post_copy.ts";
import { LocalChannel } from "../../src/engine/local_channel.ts";
import type { PageServerEndpoint } from "../../src/engine/parts.ts";
import { planOf } from "../../src/engine/select.ts";
import { MigrationError } from "../../src/engine/types.ts";
import { waitGone } from "../../src/tracker/proc.ts";
import { createPolicy } from "../../src/policy/mod.ts";
import { type Memcheck, requireCriuBinary, startMemcheck, tickOf } from "../criu/support.ts";
import { runningCopies } from "./support/memcheck_pids.ts";

const LAZY = planOf("lazy", { softDirty: false, lazy: true });

async function healthy(w: Memcheck, pid: number): Promise<void> {
  const before = tickOf(w.last(/^tick /));
  const mark = w.lines();
  Deno.kill(pid, "SIGUSR1");
  await w.waitFor(/^verify ok/, 10_000, mark);
  await w.waitFor(/^tick /, 5000, w.lines());
  assert.ok(tickOf(w.last(/^tick /)) > before, "the counter did not continue");
  assert.equal(w.last(/CORRUPT|FAIL/), undefined);
}

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
    await healthy(w, out.destPid);
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
    if (copies.length === 1) await healthy(w, w.pid);
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
