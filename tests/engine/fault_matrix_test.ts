/**
 * The fault matrix: real `u2cm migrate` between two real agents (loopback, optionally through a
 * cuttable proxy), real CRIU, and a memcheck workload that checks its own memory. Each case
 * injects one fault at one phase, recovers (`u2cm recover`, or the source agent's start), and
 * requires exactly one running copy with its memory intact; a watcher samples the process table
 * throughout and fails the case on any instant with two running copies.
 *
 * The cases run on the default path: page and file frames on the sealed bulk stream, which the
 * agent (`--bulk-advertise`) sends through the proxy's second port, so a link cut cuts it too and
 * the bulk connection can be cut alone. The link-cut cases run again with every frame on the
 * WebSocket (`U2CM_BULK=ws`).
 *
 * Phases: pre-copy (rounds running), frozen (tree dumped, state at the destination), restoring
 * (the destination's `criu restore` running), committing (commit record written, destination not
 * yet told to resume). Cells that cannot happen (a CRIU dump outside the frozen phase, …) are
 * listed in the README's guarantees section.
 */
import assert from "node:assert/strict";
import { processState } from "../../src/tracker/proc.ts";
import type { TestNodes } from "./support/agents.ts";
import { type Case, runCase } from "./support/fault_case.ts";
import { allCopies, criuProcesses, journal } from "./support/faults.ts";
import { runningCopies } from "./support/memcheck_pids.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The destination's `criu restore` of this case's migration (its images dir names the id). */
function ourRestore(nodes: TestNodes): number[] | undefined {
  const id = journal(nodes.a)?.id;
  if (!id) return undefined;
  const p = criuProcesses(["restore", new RegExp(`u2cm-restore-${id}-`)]);
  return p.length ? p : undefined;
}

const CASES: Case[] = [
  // source `u2cm migrate` killed
  {
    fault: "source migrate killed",
    phase: "pre-copy",
    winner: "source",
    flags: ["--policy", "fixed-500", "--max-rounds", "500"],
    inject: async ({ migrate, precopying }) => {
      await precopying();
      migrate.signal("SIGKILL");
    },
  },
  {
    fault: "source migrate killed",
    phase: "frozen",
    winner: "source",
    pause: "dumped",
    recoverWith: "agent",
    inject: async ({ migrate, wait }) => {
      await wait("migrate to stop itself", () => processState(migrate.pid) === "T");
      migrate.signal("SIGKILL");
    },
  },
  {
    // The dump outlives its `migrate` and leaves the tree stopped when it ends: recovery waits.
    fault: "source migrate killed (mid-dump)",
    phase: "frozen",
    winner: "source",
    inject: async ({ w, migrate, wait }) => {
      const dump = await wait("criu dump", () => {
        const p = criuProcesses(["dump", "-t", String(w.pid)]);
        return p.length ? p : undefined;
      });
      migrate.signal("SIGKILL");
      // A slow dump: it is still running when recovery starts, and ends 5 s later. (A lazy dump
      // — scan-and-copy's — dies with its migrate instead: it would wait for a client for ever.)
      const signal = (p: number, s: Deno.Signal) => {
        try {
          Deno.kill(p, s);
        } catch { /* gone */ }
      };
      for (const p of dump) signal(p, "SIGSTOP");
      setTimeout(() => dump.forEach((p) => signal(p, "SIGCONT")), 5000);
      await migrate.done;
    },
  },
  {
    fault: "source migrate killed",
    phase: "restoring",
    winner: "source",
    inject: async ({ nodes, migrate, wait }) => {
      await wait("criu restore", () => ourRestore(nodes));
      migrate.signal("SIGKILL");
    },
  },
  {
    fault: "source migrate killed",
    phase: "committing",
    winner: "destination",
    pause: "committed",
    inject: async ({ migrate, wait }) => {
      await wait("migrate to stop itself", () => processState(migrate.pid) === "T");
      migrate.signal("SIGKILL");
    },
  },
  // destination agent killed
  {
    fault: "destination agent killed",
    phase: "pre-copy",
    winner: "source",
    flags: ["--policy", "fixed-500", "--max-rounds", "500"],
    inject: async ({ agent, restartAgent, precopying }) => {
      await precopying();
      await agent().stop("SIGKILL");
      await restartAgent();
    },
  },
  {
    fault: "destination agent killed",
    phase: "frozen",
    winner: "source",
    pause: "dumped",
    inject: async ({ migrate, agent, restartAgent, wait }) => {
      await wait("migrate to stop itself", () => processState(migrate.pid) === "T");
      await agent().stop("SIGKILL");
      migrate.signal("SIGCONT");
      await migrate.done;
      await restartAgent();
    },
  },
  {
    fault: "destination agent killed",
    phase: "restoring",
    winner: "source",
    inject: async ({ nodes, migrate, agent, restartAgent, wait }) => {
      await wait("criu restore", () => ourRestore(nodes));
      await agent().stop("SIGKILL");
      await migrate.done;
      await restartAgent();
    },
  },
  {
    fault: "destination agent killed",
    phase: "committing",
    winner: "destination",
    pause: "committed",
    inject: async ({ migrate, agent, restartAgent, wait }) => {
      await wait("migrate to stop itself", () => processState(migrate.pid) === "T");
      await agent().stop("SIGKILL");
      migrate.signal("SIGCONT");
      const r = await migrate.done;
      assert.equal(r.code, 7, `a committed migration whose peer is gone exits 7: ${r.stderr}`);
      await restartAgent();
    },
  },
  // CRIU killed
  {
    fault: "CRIU dump killed",
    phase: "frozen",
    winner: "source",
    inject: async ({ w, wait }) => {
      const dump = await wait("criu dump", () => {
        const p = criuProcesses(["dump", "-t", String(w.pid)]);
        return p.length ? p : undefined;
      });
      for (const p of dump) Deno.kill(p, "SIGKILL");
    },
  },
  {
    fault: "CRIU restore killed",
    phase: "restoring",
    winner: "source",
    inject: async ({ nodes, wait }) => {
      const pids = await wait("criu restore", () => ourRestore(nodes));
      for (const p of pids) Deno.kill(p, "SIGKILL");
    },
  },
  // the link cut (a proxy between source and destination)
  {
    fault: "link cut",
    phase: "pre-copy",
    winner: "source",
    flags: ["--policy", "fixed-500", "--max-rounds", "500"],
    inject: async ({ migrate, cut, precopying }) => {
      await precopying();
      cut(true);
      await migrate.done;
      cut(false);
    },
  },
  {
    fault: "link cut",
    phase: "frozen",
    winner: "source",
    pause: "dumped",
    inject: async ({ migrate, cut, wait }) => {
      await wait("migrate to stop itself", () => processState(migrate.pid) === "T");
      cut(true);
      migrate.signal("SIGCONT");
      await migrate.done;
      cut(false);
    },
  },
  {
    fault: "link cut",
    phase: "restoring",
    winner: "source",
    inject: async ({ nodes, migrate, cut, wait }) => {
      await wait("criu restore", () => ourRestore(nodes));
      cut(true);
      await migrate.done;
      cut(false);
    },
  },
  {
    fault: "link cut",
    phase: "committing",
    winner: "destination",
    pause: "committed",
    inject: async ({ w, migrate, cut, wait }) => {
      await wait("migrate to stop itself", () => processState(migrate.pid) === "T");
      cut(true);
      migrate.signal("SIGCONT");
      const r = await migrate.done;
      assert.equal(r.code, 7, r.stderr);
      // A partition: the workload stays frozen, never guessed into two copies.
      await sleep(500);
      assert.deepEqual(runningCopies(w.out), [], "nothing may run during the partition");
      // The source ended its copy at the commit; the destination's waits, stopped.
      assert.ok(!["R", "S", "T"].includes(processState(w.pid) ?? ""), "the source copy is gone");
      const held = allCopies(w.out).filter((p) => p !== w.pid);
      assert.deepEqual(held.map(processState), ["T"], "the destination's copy waits, stopped");
      cut(false);
    },
  },
  // the bulk connection alone cut: the source resumes (a new bulk stream, or the WebSocket)
  {
    fault: "bulk stream cut (reattached)",
    phase: "pre-copy",
    winner: "destination",
    survives: true,
    // Uncompressed, so that the first round's 32 MiB are on the wire and the cut falls inside it
    // (memcheck's pages compress well: with `auto` on an idle box the round could end first).
    flags: ["--policy", "fixed-3", "--compress", "off"],
    inject: async ({ proxy, wait }) => {
      // Mid-record, in the first round (32 MiB of pages); the resumed link gets a fresh stream.
      const cut = await proxy.cutBulkAt(8 * 2 ** 20, false);
      assert.ok(cut >= 1, "a bulk connection was open at the cut");
      await wait("a second bulk stream", () => proxy.bulkConnections >= 2);
    },
  },
  {
    fault: "bulk stream cut (port stays down)",
    phase: "pre-copy",
    winner: "destination",
    survives: true,
    flags: ["--policy", "fixed-3", "--compress", "off"],
    inject: async ({ proxy, migrate }) => {
      // The resumed link cannot attach a bulk stream: its frames go over the WebSocket.
      const cut = await proxy.cutBulkAt(8 * 2 ** 20, true);
      assert.ok(cut >= 1, "a bulk connection was open at the cut");
      const ws = () => proxy.forwarded - proxy.bulkForwarded;
      const before = ws();
      await migrate.done;
      assert.equal(proxy.bulkConnections, 1, "no bulk stream attached after the cut");
      // The rest of the first round (24 MiB) and the later rounds crossed on the WebSocket.
      assert.ok(ws() - before > 16 * 2 ** 20, `WebSocket bytes after the cut: ${ws() - before}`);
    },
  },
  {
    fault: "bulk stream cut (reattached)",
    phase: "frozen",
    winner: "destination",
    survives: true,
    // Every page travels with the tree frozen, uncompressed (the cut falls inside them).
    flags: ["--policy", "stop-and-copy", "--compress", "off"],
    inject: async ({ proxy, wait }) => {
      const cut = await proxy.cutBulkAt(8 * 2 ** 20, false);
      assert.ok(cut >= 1, "a bulk connection was open at the cut");
      await wait("a second bulk stream", () => proxy.bulkConnections >= 2);
    },
  },
  // the destination's disk full: the agent accepts the migration (its state dir has room for
  // every page), then another process fills that file system mid-transfer.
  {
    fault: "destination disk full",
    phase: "pre-copy",
    winner: "source",
    flags: ["--policy", "fixed-500", "--max-rounds", "500"],
    agentArgs: ["--memory-limit", "1"],
    error: /destination has no room left .*No space left on device/,
    inject: async ({ precopying, fill }) => {
      await precopying();
      assert.ok(fill() > 0, "the filler took the room that was left");
    },
  },
  {
    fault: "destination disk full",
    phase: "frozen",
    winner: "source",
    flags: ["--policy", "stop-and-copy"],
    agentArgs: ["--memory-limit", "1"],
    pause: "frozen",
    error: /destination has no room left .*No space left on device/,
    inject: async ({ migrate, wait, fill }) => {
      // The tree is about to freeze, nothing sent yet: the whole tree goes out into a full disk.
      await wait("migrate to stop itself", () => processState(migrate.pid) === "T");
      assert.ok(fill() > 0, "the filler took the room that was left");
      migrate.signal("SIGCONT");
    },
  },
  {
    fault: "destination disk full",
    phase: "restoring",
    winner: "source",
    error: /restore failed: No space left on device/,
    inject: async () => {},
  },
];

// The link cut again with every frame on the WebSocket (the path without a bulk stream).
CASES.push(
  ...CASES.filter((c) => c.fault === "link cut").map((c): Case => ({
    ...c,
    fault: "link cut (WebSocket only)",
    bulk: "ws",
  })),
);

for (const c of CASES) {
  Deno.test(`fault matrix: ${c.fault} while ${c.phase} → one running copy (${c.winner}), memory intact`, async () => {
    await runCase(c);
  });
}
