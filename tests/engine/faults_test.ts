import assert from "node:assert/strict";
import { ExitCode } from "../../src/cli/errors.ts";
import type { MigrationChannel, PageBatch } from "../../src/engine/channel.ts";
import { runMigration } from "../../src/engine/driver.ts";
import { planOf } from "../../src/engine/select.ts";
import { MigrationError } from "../../src/engine/types.ts";
import { connectPeer } from "../../src/peer/mod.ts";
import { createPolicy } from "../../src/policy/mod.ts";
import {
  assertMemcheckHealthy,
  type Memcheck,
  requireCriuBinary,
  startMemcheck,
} from "../criu/support.ts";
import { makeNodes, migrateTo, startAgentProcess, u2cm } from "./support/agents.ts";
import { startProxy } from "../peer/support/proxy.ts";
import { allCopies, until, watchCopies } from "./support/faults.ts";
import { runningCopies } from "./support/memcheck_pids.ts";

async function assertSourceHealthy(w: Memcheck): Promise<void> {
  const copies = runningCopies(w.out);
  assert.deepEqual(copies, [w.pid], `running copies: ${copies.join(", ")}`);
  await assertMemcheckHealthy(w, w.pid);
}

Deno.test("killing the destination agent mid pre-copy fails the migration; the source runs on", async () => {
  requireCriuBinary();
  const nodes = await makeNodes();
  // Through a forwarder (both the agent's port and its bulk stream's: the agent announces the
  // forwarder's), whose byte count says when pages are flowing.
  const proxy = startProxy(0);
  const agent = await startAgentProcess(nodes.b, 0, 3, [], "127.0.0.1", {}, [
    "--bulk-advertise",
    String(proxy.bulkPort),
  ]);
  assert.ok(agent.bulkPort, "the agent has a sealed bulk stream");
  proxy.retarget(agent.port, agent.bulkPort);
  nodes.pinB(`127.0.0.1:${proxy.port}`);
  const w = await startMemcheck(["--mib", "128", "--write-pages", "200", "--hot-percent", "20"]);
  try {
    const run = u2cm([
      ...migrateTo(w.pid),
      "--policy",
      "fixed-500",
      "--max-rounds",
      "500",
      "--resume-timeout",
      "1",
      "--state-dir",
      nodes.a,
    ]);
    // Kill the agent once pre-copy is under way: 16 MiB of pages went through, on the sealed
    // bulk stream (the default path).
    await until("pages flowing", () => proxy.bulkForwarded > 16 * 2 ** 20);
    await agent.stop("SIGKILL");
    const r = await run;
    assert.ok(
      r.code === ExitCode.MigrationFailed || r.code === ExitCode.Peer,
      `exit ${r.code}: ${r.stderr}`,
    );
    assert.match(r.stderr, /keeps running here|source/);
    await assertSourceHealthy(w);
    const rec = [...Deno.readDirSync(`${nodes.a}/migrations`)].map((e) =>
      JSON.parse(Deno.readTextFileSync(`${nodes.a}/migrations/${e.name}`))
    );
    assert.equal(rec[0].phase, "rolled-back");
  } finally {
    proxy.close();
    await agent.stop();
    await w.stop();
    nodes.cleanup();
    Deno.removeSync(w.dir, { recursive: true });
  }
});

Deno.test("a bulk stream that cannot attach: u2cm migrate completes over the WebSocket; one verified copy at the destination", async () => {
  requireCriuBinary();
  const nodes = await makeNodes();
  // The agent announces the forwarder's bulk port, which closes every connection at once.
  const proxy = startProxy(0);
  proxy.cutBulk(true);
  const agent = await startAgentProcess(nodes.b, 0, 3, [], "127.0.0.1", {}, [
    "--bulk-advertise",
    String(proxy.bulkPort),
  ]);
  proxy.retarget(agent.port, agent.bulkPort);
  nodes.pinB(`127.0.0.1:${proxy.port}`);
  const w = await startMemcheck(["--mib", "32", "--write-pages", "64"]);
  const watcher = watchCopies(w.out);
  try {
    await w.waitFor(/^tick 3 /);
    const r = await u2cm([
      ...migrateTo(w.pid),
      "--policy",
      "fixed-2",
      "--state-dir",
      nodes.a,
      "--format",
      "json",
    ]);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}\n${agent.log().slice(-2000)}`);
    assert.equal(JSON.parse(r.stdout).ok, true, r.stdout);
    assert.equal(proxy.bulkConnections, 0, "no bulk stream attached");
    assert.ok(proxy.forwarded > 32 * 2 ** 20, `WebSocket bytes: ${proxy.forwarded}`);
    const [copy] = await until("one running copy", () => {
      const c = runningCopies(w.out);
      return c.length === 1 ? c : undefined;
    }, 30_000);
    assert.notEqual(copy, w.pid, "the copy runs at the destination");
    const mark = w.lines();
    Deno.kill(copy, "SIGUSR1");
    await w.waitFor(/^verify ok/, 30_000, mark);
    assert.equal(w.last(/CORRUPT|FAIL/), undefined);
  } finally {
    const report = watcher.stop();
    for (const p of allCopies(w.out)) Deno.kill(p, "SIGKILL");
    proxy.close();
    await agent.stop();
    await w.stop();
    nodes.cleanup();
    Deno.removeSync(w.dir, { recursive: true });
    assert.equal(report.twoAt, undefined, `two running copies: ${report.twoAt}`);
  }
});

/** A channel that flips one byte of the `nth` page batch after its hashes were computed. */
function corrupting(inner: MigrationChannel, nth: number): MigrationChannel {
  let n = 0;
  return {
    sendPages: (b: PageBatch) => {
      if (++n === nth && b.hashes) {
        const data = b.data.slice();
        data[100] ^= 0xff;
        return inner.sendPages({ ...b, data });
      }
      return inner.sendPages(b);
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

for (
  const [phase, policy] of [["pre-copy", "fixed-2"], ["frozen", "stop-and-copy"]] as const
) {
  Deno.test(`a corrupted page chunk (${phase}) is refused by the agent; the source runs on, exactly once`, async () => {
    requireCriuBinary();
    const nodes = await makeNodes();
    const agent = await nodes.startB();
    const w = await startMemcheck(["--mib", "16", "--write-pages", "50"]);
    const watcher = watchCopies(w.out);
    const client = await connectPeer({ stateDir: nodes.a, peer: "b", resumeTimeoutMs: 1000 });
    const work = Deno.makeTempDirSync({ prefix: "u2cm-work-" });
    try {
      // With stop-and-copy every page travels in the final phase, the tree frozen.
      const channel = corrupting(await client.openMigration("c1", 16 << 20), 3);
      await assert.rejects(
        runMigration({
          id: "c1",
          pid: w.pid,
          channel,
          policy: createPolicy(policy),
          workDir: work,
          stateDir: nodes.a,
        }, planOf("delta", { softDirty: false, lazy: false })),
        (e: unknown) => {
          assert.ok(e instanceof MigrationError);
          assert.equal(e.phase, phase === "pre-copy" ? "precopy" : "frozen");
          return true;
        },
      );
      assert.match(
        agent.log(),
        /page data does not match its hashes/,
        "the agent saw the corruption",
      );
      await assertSourceHealthy(w);
      assert.deepEqual([...Deno.readDirSync(work)], [], "scratch left behind");
    } finally {
      const report = watcher.stop();
      assert.equal(report.twoAt, undefined, `two running copies: ${report.twoAt}`);
      await client.close();
      await agent.stop();
      await w.stop();
      nodes.cleanup();
      Deno.removeSync(work, { recursive: true });
      Deno.removeSync(w.dir, { recursive: true });
    }
  });
}
