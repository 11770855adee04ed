import assert from "node:assert/strict";
import { Destination } from "../../src/engine/destination.ts";
import { MigrationJournal, recordPath } from "../../src/engine/journal.ts";
import { processState, startTimes } from "../../src/tracker/proc.ts";
import { type PeerResolver, recoverMigrations } from "../../src/engine/recover.ts";
import { writeRecord } from "../../src/engine/journal.ts";
import { requireCriuBinary, startMemcheck } from "../criu/support.ts";

const unreachable: PeerResolver = () => Promise.reject(new Error("connection refused"));

async function waitState(pid: number, want: string): Promise<void> {
  for (let i = 0; i < 200 && processState(pid) !== want; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(processState(pid), want);
}

/** A journal record whose u2cm process has exited. */
async function orphan(state: string, pid: number, phase: "frozen" | "committed", id: string) {
  const j = new MigrationJournal(state, {
    id,
    pid,
    sourcePids: [pid],
    sourceStarts: startTimes([pid]),
    peer: "b",
    engine: "delta",
    policy: "u2c",
    phase,
  });
  const gone = new Deno.Command("true").spawn();
  await gone.status;
  writeRecord(recordPath(state, id), { ...j.record, owner: { pid: gone.pid, start: 1 } });
}

Deno.test("recovery: an uncommitted migration resumes the source even when the peer is away, and clears the peer later", async () => {
  requireCriuBinary();
  const w = await startMemcheck(["--mib", "2"]);
  const state = Deno.makeTempDirSync({ prefix: "u2cm-state-" });
  try {
    Deno.kill(w.pid, "SIGSTOP"); // what a dump with --leave-stopped leaves behind
    await waitState(w.pid, "T");
    const live = new MigrationJournal(state, {
      id: "live1",
      pid: w.pid,
      sourcePids: [w.pid],
      peer: "b",
      engine: "delta",
      policy: "u2c",
      phase: "frozen",
    });
    // While its u2cm process runs, the migration is in progress: recovery must not touch it.
    assert.deepEqual(await recoverMigrations({ stateDir: state, resolve: unreachable }), []);
    assert.equal(processState(w.pid), "T");
    Deno.removeSync(recordPath(state, live.record.id));
    await orphan(state, w.pid, "frozen", "dead1");
    const [first] = await recoverMigrations({ stateDir: state, resolve: unreachable });
    assert.equal(first.workload, "source");
    assert.equal(first.phase, "rolled-back");
    assert.equal(first.pending, true, "the destination was not told yet");
    await waitState(w.pid, "S");
    const mark = w.lines();
    await w.waitFor(/^tick /, 5000, mark);
    // The peer is back: it is told to discard; then nothing is left.
    const asked: string[] = [];
    const dest: PeerResolver = (_peer, id, action) => {
      asked.push(`${id}:${action}`);
      return Promise.resolve({ state: "unknown" });
    };
    const [second] = await recoverMigrations({ stateDir: state, resolve: dest });
    assert.equal(second.pending, false);
    assert.deepEqual(asked, ["dead1:discard"]);
    assert.deepEqual(await recoverMigrations({ stateDir: state, resolve: dest }), []);
  } finally {
    await w.stop();
    Deno.removeSync(state, { recursive: true });
    Deno.removeSync(w.dir, { recursive: true });
  }
});

Deno.test("recovery: a committed migration stays frozen while the peer is away, then the destination copy runs and the source ends", async () => {
  requireCriuBinary();
  const src = await startMemcheck(["--mib", "2"]);
  const copy = await startMemcheck(["--mib", "2"]); // stands for the restored, stopped copy
  const state = Deno.makeTempDirSync({ prefix: "u2cm-state-" });
  const peerState = Deno.makeTempDirSync({ prefix: "u2cm-peer-" });
  try {
    for (const p of [src.pid, copy.pid]) Deno.kill(p, "SIGSTOP");
    await waitState(src.pid, "T");
    await waitState(copy.pid, "T");
    await orphan(state, src.pid, "committed", "c1");
    const [frozen] = await recoverMigrations({ stateDir: state, resolve: unreachable });
    assert.equal(frozen.workload, "frozen");
    assert.equal(frozen.pending, true);
    assert.equal(processState(src.pid), "T", "a partition must not resume the source");
    // The destination recorded the copy ready (as Destination.restore does) and restarts.
    const dest = new Destination({ stateDir: peerState });
    writeRecord(`${peerState}/incoming/c1.json`, {
      id: "c1",
      owner: "key-a",
      phase: "ready",
      pids: [copy.pid],
      starts: startTimes([copy.pid]),
      updatedAt: new Date().toISOString(),
    });
    assert.deepEqual(dest.recover().map((r) => r.id), ["c1"], "a ready copy waits");
    assert.equal(processState(copy.pid), "T");
    assert.equal(dest.resolve("c1", "key-other", "resume").state, "unknown", "owner checked");
    const resolve: PeerResolver = (_peer, id, action) =>
      Promise.resolve(dest.resolve(id, "key-a", action));
    const [done] = await recoverMigrations({ stateDir: state, resolve });
    assert.equal(done.workload, "destination");
    assert.equal(done.phase, "done");
    await waitState(copy.pid, "S");
    for (let i = 0; i < 200 && processState(src.pid) !== undefined; i++) {
      if (processState(src.pid) === "Z") break;
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(["Z", undefined].includes(processState(src.pid)), "the source copy was ended");
    assert.equal(dest.resolve("c1", "key-a", "discard").state, "resumed", "no discard after it");
  } finally {
    await src.stop();
    await copy.stop();
    for (const d of [state, peerState, src.dir, copy.dir]) Deno.removeSync(d, { recursive: true });
  }
});

Deno.test("recovery: a committed migration whose destination holds nothing resumes the source", async () => {
  requireCriuBinary();
  const w = await startMemcheck(["--mib", "2"]);
  const state = Deno.makeTempDirSync({ prefix: "u2cm-state-" });
  try {
    Deno.kill(w.pid, "SIGSTOP");
    await waitState(w.pid, "T");
    await orphan(state, w.pid, "committed", "c2");
    const none: PeerResolver = () => Promise.resolve({ state: "unknown" });
    const [r] = await recoverMigrations({ stateDir: state, resolve: none });
    assert.equal(r.workload, "source");
    await waitState(w.pid, "S");
  } finally {
    await w.stop();
    Deno.removeSync(state, { recursive: true });
    Deno.removeSync(w.dir, { recursive: true });
  }
});

/** A committed record of a verified lazy local restore (`lazyFill` pages still to be placed). */
async function orphanFill(state: string, pid: number, id: string, lazyFill: number) {
  await orphan(state, pid, "committed", id);
  const rec = JSON.parse(Deno.readTextFileSync(recordPath(state, id)));
  writeRecord(recordPath(state, id), { ...rec, lazyFill });
}

Deno.test("recovery: a committed lazy local restore keeps the stopped source until the fill is verified; a destination restart mid-fill discards its copy and the source runs again", async () => {
  requireCriuBinary();
  const src = await startMemcheck(["--mib", "2"]);
  const copy = await startMemcheck(["--mib", "2"]); // the resumed copy whose fill is pending
  const state = Deno.makeTempDirSync({ prefix: "u2cm-state-" });
  const peerState = Deno.makeTempDirSync({ prefix: "u2cm-peer-" });
  try {
    Deno.kill(src.pid, "SIGSTOP");
    await waitState(src.pid, "T");
    await orphanFill(state, src.pid, "f1", 100);
    const dest = new Destination({ stateDir: peerState });
    writeRecord(`${peerState}/incoming/f1.json`, {
      id: "f1",
      owner: "key-a",
      phase: "resumed",
      fill: "pending",
      pids: [copy.pid],
      starts: startTimes([copy.pid]),
      updatedAt: new Date().toISOString(),
    });
    const resolve: PeerResolver = (_peer, id, action) =>
      Promise.resolve(dest.resolve(id, "key-a", action));
    // The destination runs the copy, its fill not reported: neither copy is ended or resumed.
    const [waiting] = await recoverMigrations({ stateDir: state, resolve });
    assert.equal(waiting.workload, "destination");
    assert.equal(waiting.pending, true);
    assert.equal(processState(src.pid), "T", "the source copy must be kept");
    // The destination's agent restarts: the page server of the fill died with it.
    dest.recover();
    assert.equal(dest.list()[0].phase, "discarded");
    for (let i = 0; i < 200 && !["Z", undefined].includes(processState(copy.pid)); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(["Z", undefined].includes(processState(copy.pid)), "the copy was not ended");
    const [back] = await recoverMigrations({ stateDir: state, resolve });
    assert.equal(back.workload, "source");
    assert.equal(back.phase, "rolled-back");
    await waitState(src.pid, "S");
  } finally {
    await src.stop();
    await copy.stop();
    for (const d of [state, peerState, src.dir, copy.dir]) Deno.removeSync(d, { recursive: true });
  }
});

Deno.test("recovery: a committed lazy local restore's fill report decides: a refused page resumes the source, a complete fill ends it", async () => {
  requireCriuBinary();
  for (const refused of [true, false]) {
    const src = await startMemcheck(["--mib", "2"]);
    const state = Deno.makeTempDirSync({ prefix: "u2cm-state-" });
    try {
      Deno.kill(src.pid, "SIGSTOP");
      await waitState(src.pid, "T");
      await orphanFill(state, src.pid, "f2", 64);
      const lazy = {
        requests: 3,
        checkedPages: refused ? 16 : 64,
        expectedPages: 64,
        closed: !refused,
        faults: 0,
        ...(refused ? { mismatch: "pid 1: page 0x1000 differs from the manifest" } : {}),
      };
      const resolve: PeerResolver = () => Promise.resolve({ state: "resumed", lazy });
      const [r] = await recoverMigrations({ stateDir: state, resolve });
      assert.equal(r.workload, refused ? "source" : "destination", r.detail);
      assert.equal(r.phase, refused ? "rolled-back" : "done");
      assert.equal(r.pending, false);
      if (refused) await waitState(src.pid, "S");
      else {
        for (let i = 0; i < 200 && !["Z", undefined].includes(processState(src.pid)); i++) {
          await new Promise((r) => setTimeout(r, 10));
        }
        assert.ok(["Z", undefined].includes(processState(src.pid)), "the source was not ended");
      }
    } finally {
      await src.stop();
      Deno.removeSync(state, { recursive: true });
      Deno.removeSync(src.dir, { recursive: true });
    }
  }
});
