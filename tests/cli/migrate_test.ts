import assert from "node:assert/strict";
import { ExitCode } from "../../src/cli/errors.ts";
import { isAlive, processState, waitGone } from "../../src/tracker/proc.ts";
import { assertMemcheckHealthy, requireCriuBinary, startMemcheck } from "../criu/support.ts";
import { makeNodes, migrateTo, startAgentProcess, u2cm } from "../engine/support/agents.ts";
import { connectPeer } from "../../src/peer/mod.ts";

Deno.test("u2cm migrate moves memcheck between two agents on loopback: memory intact, counter continues", async () => {
  requireCriuBinary();
  const nodes = await makeNodes();
  const agent = await nodes.startB();
  const w = await startMemcheck(["--mib", "64", "--write-pages", "100", "--hot-percent", "10"]);
  // --work-dir holds someone else's file: u2cm removes only what it created there.
  const workDir = Deno.makeTempDirSync({ prefix: "u2cm-test-work-" });
  Deno.writeTextFileSync(`${workDir}/keep-me`, "not u2cm's");
  let dest = 0;
  try {
    await w.waitFor(/^tick 10 /);
    const r = await u2cm([
      ...migrateTo(w.pid),
      "--policy",
      "u2c",
      "--format",
      "json",
      "--state-dir",
      nodes.a,
      "--work-dir",
      workDir,
    ]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.deepEqual([...Deno.readDirSync(workDir)].map((e) => e.name), ["keep-me"]);
    const result = JSON.parse(r.stdout);
    for (
      const key of [
        "ok",
        "engine",
        "policy",
        "total_ms",
        "downtime_ms",
        "bytes_sent",
        "precopy_rounds",
        "dest_pid",
        "rounds",
        "phases",
      ]
    ) assert.ok(key in result, `missing ${key}`);
    assert.equal(result.ok, true);
    assert.equal(result.engine, "delta");
    assert.equal(result.policy, "u2c");
    assert.ok(result.precopy_rounds >= 1);
    assert.ok(result.bytes_sent >= 64 * 2 ** 20, `sent ${result.bytes_sent}`);
    assert.ok(result.downtime_ms > 0 && result.downtime_ms < result.total_ms);
    for (const k of ["freeze_ms", "dump_ms", "transfer_ms", "restore_ms"]) {
      assert.equal(typeof result.phases[k], "number");
    }
    for (const k of ["index", "pages_sent", "pages_dirtied", "predicted_dirty", "duration_ms"]) {
      assert.ok(k in result.rounds[0], `round lacks ${k}`);
    }
    dest = result.dest_pid;
    assert.ok(await waitGone(w.pid, 5000), "source still exists");
    assert.ok(isAlive(dest), "restored copy not running");
    await assertMemcheckHealthy(w, dest);
    const record = JSON.parse(
      Deno.readTextFileSync(
        `${nodes.a}/migrations/${[...Deno.readDirSync(`${nodes.a}/migrations`)][0].name}`,
      ),
    );
    assert.equal(record.phase, "done");
    assert.equal(record.destPid, dest);
    // The destination's journal says which phase it reached: resumed.
    const incoming = [...Deno.readDirSync(`${nodes.b}/incoming`)].map((e) =>
      JSON.parse(Deno.readTextFileSync(`${nodes.b}/incoming/${e.name}`))
    );
    assert.deepEqual(incoming.map((x) => x.phase), ["resumed"]);
  } finally {
    if (dest && processState(dest)) Deno.kill(dest, "SIGKILL");
    await w.stop();
    await agent.stop();
    nodes.cleanup();
    Deno.removeSync(w.dir, { recursive: true });
    Deno.removeSync(workDir, { recursive: true });
  }
});

Deno.test("finished migrations stop counting against --max-migrations; a refusal exits 7", async () => {
  requireCriuBinary();
  const nodes = await makeNodes();
  const agent = await startAgentProcess(nodes.b, 0, 3, [], "127.0.0.1", {}, [
    "--max-migrations",
    "1",
  ]);
  nodes.pinB(`127.0.0.1:${agent.port}`);
  const copies: number[] = [];
  const ws = [];
  try {
    for (let i = 0; i < 2; i++) {
      const w = await startMemcheck(["--mib", "4"]);
      ws.push(w);
      const r = await u2cm([
        ...migrateTo(w.pid),
        "--policy",
        "stop-and-copy",
        "--format",
        "json",
        "--state-dir",
        nodes.a,
      ]);
      assert.equal(r.code, 0, `migration ${i + 1}: ${r.stderr}`);
      copies.push(JSON.parse(r.stdout).dest_pid);
    }
    // One migration in flight fills the agent: the next is refused as a peer error.
    const client = await connectPeer({ stateDir: nodes.a, peer: "b" });
    try {
      await client.openMigration("busy1", 4096);
      const w = await startMemcheck(["--mib", "4"]);
      ws.push(w);
      const r = await u2cm([
        "migrate",
        "--pid",
        String(w.pid),
        "--to",
        "b",
        "--state-dir",
        nodes.a,
      ]);
      assert.equal(r.code, ExitCode.Peer, r.stderr);
      assert.match(r.stderr, /already receives 1 migrations/);
      assert.ok(isAlive(w.pid));
    } finally {
      await client.close();
    }
  } finally {
    for (const p of copies) if (processState(p)) Deno.kill(p, "SIGKILL");
    for (const w of ws) {
      await w.stop();
      Deno.removeSync(w.dir, { recursive: true });
    }
    await agent.stop();
    nodes.cleanup();
  }
});

Deno.test("u2cm migrate to an unreachable peer exits 7 and leaves the workload running", async () => {
  requireCriuBinary();
  const nodes = await makeNodes();
  const agent = await nodes.startB();
  await agent.stop(); // pinned, but nobody listens any more
  const w = await startMemcheck(["--mib", "4"]);
  try {
    const r = await u2cm(["migrate", "--pid", String(w.pid), "--to", "b", "--state-dir", nodes.a]);
    assert.equal(r.code, ExitCode.Peer, r.stderr);
    assert.ok(isAlive(w.pid));
    const mark = w.lines();
    await w.waitFor(/^tick /, 5000, mark);
  } finally {
    await w.stop();
    nodes.cleanup();
    Deno.removeSync(w.dir, { recursive: true });
  }
});

Deno.test("u2cm migrate rejects bad usage with exit 2 and a missing pid with exit 3", async () => {
  let r = await u2cm(["migrate", "--to", "b"]);
  assert.equal(r.code, ExitCode.Usage);
  assert.match(r.stderr, /missing --pid/);
  r = await u2cm(["migrate", "--pid", "1", "--to", "b", "--engine", "warp"]);
  assert.equal(r.code, ExitCode.Usage);
  assert.match(r.stderr, /--engine must be one of auto, delta, predump, lazy, hybrid/);
  r = await u2cm(["migrate", "--pid", "1", "--to", "b", "--policy", "nope"]);
  assert.equal(r.code, ExitCode.Usage);
  r = await u2cm(["migrate", "--pid", "999999999", "--to", "b"]);
  assert.equal(r.code, ExitCode.NoTarget);
});
