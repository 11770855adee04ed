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
import { type Memcheck, requireCriuBinary, startMemcheck } from "../criu/support.ts";
import { type Proxy, startProxy } from "../peer/support/proxy.ts";
import { makeNodes, migrateTo, type TestAgent, type TestNodes, u2cm } from "./support/agents.ts";
import { startAgentProcess } from "./support/agents.ts";
import {
  allCopies,
  criuProcesses,
  journal,
  journalPhase,
  spawnU2cm,
  until,
  watchCopies,
} from "./support/faults.ts";
import { runningCopies } from "./support/memcheck_pids.ts";

type Phase = "pre-copy" | "frozen" | "restoring" | "committing";
type Winner = "source" | "destination";

/** What a case's fault function gets. */
interface CaseEnv {
  w: Memcheck;
  nodes: TestNodes;
  migrate: ReturnType<typeof spawnU2cm>;
  agent(): TestAgent;
  /** Restart b's agent (after killing it), behind the same forwarder. */
  restartAgent(): Promise<void>;
  cut(down: boolean): void;
  /** The forwarder (both ports: the agent's and its bulk stream's). */
  proxy: Proxy;
  /** Wait until pre-copy is under way: pages went through to the destination. */
  precopying(): Promise<void>;
  /** Wait until `pred` holds; fails at once when `u2cm migrate` exited first. */
  wait<T>(what: string, pred: () => T | undefined | false): Promise<T>;
}

interface Case {
  fault: string;
  phase: Phase;
  /** The copy that must run at the end. */
  winner: Winner;
  /** Extra `u2cm migrate` flags (policy). @default fixed-3 rounds */
  flags?: string[];
  /** Where `u2cm migrate` stops itself (U2CM_FAULT_PAUSE). */
  pause?: string;
  /** Agent environment and flags. */
  agentEnv?: Record<string, string>;
  agentArgs?: string[];
  /** `ws`: every frame on the WebSocket (`U2CM_BULK=ws`). @default the sealed bulk stream */
  bulk?: "ws";
  /** The migration survives the fault (it resumes) and must succeed. @default it fails */
  survives?: boolean;
  /** Inject the fault. */
  inject(env: CaseEnv): Promise<void>;
  /** How the case is recovered. @default u2cm recover */
  recoverWith?: "recover" | "agent";
}

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
  // the destination's disk full
  {
    fault: "destination disk full",
    phase: "pre-copy",
    winner: "source",
    flags: ["--policy", "fixed-500", "--max-rounds", "500"],
    agentArgs: ["--memory-limit", "1"],
    inject: async () => {},
  },
  {
    fault: "destination disk full",
    phase: "frozen",
    winner: "source",
    flags: ["--policy", "stop-and-copy"],
    agentArgs: ["--memory-limit", "1"],
    inject: async () => {},
  },
  {
    fault: "destination disk full",
    phase: "restoring",
    winner: "source",
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

/** A tmpfs of `size` (tmpfs's `size=`: "4k", "12m") at a fresh directory (the disk-full cases). */
function smallTmpfs(size: string): string {
  const dir = Deno.makeTempDirSync({ prefix: "u2cm-full-" });
  const r = new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir],
  }).outputSync();
  if (!r.success) throw new Error(`mount tmpfs failed: ${new TextDecoder().decode(r.stderr)}`);
  return dir;
}

function unmount(dir: string): void {
  new Deno.Command("umount", { args: ["-l", dir] }).outputSync();
  Deno.removeSync(dir, { recursive: true });
}

async function runCase(c: Case): Promise<void> {
  requireCriuBinary();
  const nodes = await makeNodes();
  const mounts: string[] = [];
  let bState = nodes.b;
  const agentEnv = { ...c.agentEnv };
  if (c.fault === "destination disk full") {
    if (c.phase === "restoring") {
      // The restore's scratch runs out of room: the image files and the parent image of the
      // out-of-order pages do not fit in one page (the pages themselves are read in place).
      agentEnv.U2CM_RESTORE_TMP = smallTmpfs("4k");
      mounts.push(agentEnv.U2CM_RESTORE_TMP);
    } else {
      // The page store spills to a state dir with room for a fraction of the pages.
      bState = smallTmpfs("12m");
      mounts.push(bState);
      for (const e of Deno.readDirSync(nodes.b)) {
        if (e.isFile) Deno.copyFileSync(`${nodes.b}/${e.name}`, `${bState}/${e.name}`);
      }
    }
  }
  // The agent announces the forwarder's bulk port: every byte of the link passes the forwarder.
  const proxy = startProxy(0);
  const bulkArgs = ["--bulk-advertise", String(proxy.bulkPort)];
  const start = (args: string[] = []) =>
    startAgentProcess(bState, 0, 1, [], "127.0.0.1", agentEnv, [...args, ...bulkArgs]);
  let agent = await start(c.agentArgs);
  assert.ok(agent.bulkPort, "the agent has a sealed bulk stream");
  proxy.retarget(agent.port, agent.bulkPort);
  nodes.pinB(`127.0.0.1:${proxy.port}`);
  const w = await startMemcheck(["--mib", "32", "--write-pages", "64", "--hot-percent", "10"]);
  const watcher = watchCopies(w.out);
  let report;
  try {
    await w.waitFor(/^tick 3 /);
    const migrate = spawnU2cm([
      ...migrateTo(w.pid),
      ...(c.flags ?? ["--policy", "fixed-3"]),
      "--resume-timeout",
      "1",
      "--state-dir",
      nodes.a,
      "--format",
      "json",
    ], {
      ...(c.bulk === "ws" ? { U2CM_BULK: "ws" } : {}),
      ...(c.pause ? { U2CM_FAULT_PAUSE: c.pause } : {}),
    });
    let ended: { code: number; stderr: string } | undefined;
    migrate.done.then((r) => ended = r);
    const wait = <T>(what: string, pred: () => T | undefined | false) =>
      until(what, () => {
        const v = pred();
        if ((v === undefined || v === false) && ended) {
          throw new Error(`u2cm migrate exited (${ended.code}) before ${what}: ${ended.stderr}`);
        }
        return v;
      });
    await c.inject({
      w,
      wait,
      nodes,
      migrate,
      agent: () => agent,
      restartAgent: async () => {
        watcher.mark("agent restart");
        // A fresh port: the old one may have gone to another test's agent meanwhile.
        agent = await start();
        proxy.retarget(agent.port, agent.bulkPort);
      },
      cut: (down) => proxy.cut(down),
      proxy,
      precopying: async () => {
        await wait("pre-copy", () => journalPhase(nodes.a) === "precopy");
        await wait("pages flowing", () => proxy.forwarded > 8 * 2 ** 20);
      },
    });
    watcher.mark("injected");
    const result = await migrate.done;
    watcher.mark("migrate exited");
    if (c.survives) {
      assert.equal(
        result.code,
        0,
        `the migration resumes and succeeds: ${result.stderr}\n${agent.log().slice(-3000)}`,
      );
      assert.equal(JSON.parse(result.stdout).ok, true, result.stdout);
    } else {
      assert.notEqual(result.code, 0, `the fault must fail the migration: ${result.stdout}`);
    }
    // The path under test carried the pages: the sealed bulk stream, or only the WebSocket.
    // (Where few bytes crossed, the agent refused the migration at its start: no room.)
    if (c.bulk === "ws") assert.equal(proxy.bulkConnections, 0, "no bulk stream with U2CM_BULK=ws");
    else {
      assert.ok(proxy.bulkConnections >= 1, "a sealed bulk stream attached");
      if (proxy.forwarded > 4 * 2 ** 20) {
        assert.ok(proxy.bulkForwarded > 2 ** 20, `bulk bytes: ${proxy.bulkForwarded}`);
      }
    }
    const id = journal(nodes.a)?.id;
    assert.ok(id, "the migration was journalled");
    // Recovery: `u2cm recover` (or the source node's agent starting) asks the destination.
    if (c.recoverWith === "agent") {
      const a = await startAgentProcess(nodes.a, 0, 1);
      await until("the source agent's recovery", () => /recovered an interrupted/.test(a.log()));
      await a.stop("SIGTERM");
    }
    watcher.mark("recover");
    const rec = await u2cm(["recover", "--state-dir", nodes.a, "--format", "json"]);
    watcher.mark("recovered");
    if (Deno.env.get("U2CM_DEBUG_FAULTS")) {
      console.error(rec.stdout, rec.stderr, agent.log().slice(-3000));
      for (const e of Deno.readDirSync(`${bState}/incoming`)) {
        console.error(Deno.readTextFileSync(`${bState}/incoming/${e.name}`));
      }
    }
    assert.equal(
      rec.code,
      0,
      `u2cm recover: ${rec.stdout}${rec.stderr}\n${agent.log().slice(-2000)}`,
    );
    // Exactly one running copy, on the expected side, with its memory intact.
    const [copy] = await until("one running copy", () => {
      const r = runningCopies(w.out);
      return r.length === 1 ? r : undefined;
    }, 30_000);
    assert.equal(copy === w.pid, c.winner === "source", `running copy ${copy} (source ${w.pid})`);
    const mark = w.lines();
    Deno.kill(copy, "SIGUSR1");
    await w.waitFor(/^verify ok/, 30_000, mark);
    assert.equal(w.last(/CORRUPT|FAIL/), undefined);
    // Both journals ended; no scratch dump or restore directory is left.
    assert.ok(["done", "rolled-back"].includes(journalPhase(nodes.a)!), journalPhase(nodes.a));
    const leftovers = [...Deno.readDirSync("/dev/shm")].filter((e) => e.name.includes(id!));
    assert.deepEqual(leftovers.map((e) => e.name), [], "scratch left in /dev/shm");
  } finally {
    report = watcher.stop();
    for (const p of allCopies(w.out)) Deno.kill(p, "SIGKILL");
    await w.stop();
    await agent.stop();
    proxy.close();
    for (const m of mounts) unmount(m);
    nodes.cleanup();
    Deno.removeSync(w.dir, { recursive: true });
  }
  assert.ok(report.samples > 20, `the watcher sampled only ${report.samples} times`);
  assert.equal(
    report.twoAt,
    undefined,
    `two running copies at once: ${report.twoAt} (source ${w.pid}, ${report.twoWhen})`,
  );
}
