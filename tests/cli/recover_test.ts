import assert from "node:assert/strict";
import { ExitCode } from "../../src/cli/errors.ts";
import { MigrationJournal, recordPath, writeRecord } from "../../src/engine/journal.ts";
import { processState, startTimes } from "../../src/tracker/proc.ts";
import { makeNodes, u2cm } from "../engine/support/agents.ts";
import { requireRoot } from "../support/env.ts";

async function waitState(pid: number, want: string): Promise<void> {
  for (let i = 0; i < 500 && processState(pid) !== want; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(processState(pid), want);
}

Deno.test("u2cm recover: nothing to do exits 0; an unreachable peer exits 7 with the source resumed; once the peer is back, 0", async () => {
  requireRoot("signals a stopped process recorded in the journal");
  const nodes = await makeNodes();
  nodes.pinB("127.0.0.1:1"); // nobody listens there
  const source = new Deno.Command("sleep", { args: ["60"] }).spawn();
  try {
    let r = await u2cm(["recover", "--state-dir", nodes.a, "--format", "json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { migrations: [], pending: 0 });
    // A migration that died frozen (its u2cm process is gone): the source stays stopped.
    Deno.kill(source.pid, "SIGSTOP");
    await waitState(source.pid, "T");
    const j = new MigrationJournal(nodes.a, {
      id: "dead1",
      pid: source.pid,
      sourcePids: [source.pid],
      sourceStarts: startTimes([source.pid]),
      peer: "b",
      engine: "delta",
      policy: "u2c",
      phase: "frozen",
    });
    writeRecord(recordPath(nodes.a, "dead1"), { ...j.record, owner: { pid: 1, start: -1 } });
    r = await u2cm(["recover", "--state-dir", nodes.a, "--format", "json"]);
    assert.equal(r.code, ExitCode.Peer, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.pending, 1);
    assert.equal(out.migrations[0].workload, "source");
    assert.equal(out.migrations[0].from, "frozen");
    await waitState(source.pid, "S");
    // The peer is back: it is told to discard, and nothing is left.
    const agent = await nodes.startB();
    try {
      r = await u2cm(["recover", "--state-dir", nodes.a]);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.match(r.stdout, /dead1 +rolled-back → rolled-back +workload: source/);
      r = await u2cm(["recover", "--state-dir", nodes.a]);
      assert.equal(r.stdout.trim(), "nothing to recover");
    } finally {
      await agent.stop();
    }
  } finally {
    source.kill("SIGKILL");
    await source.status;
    nodes.cleanup();
  }
});
