/**
 * The fault matrix's case runner (tests/engine/fault_matrix_test.ts holds the cases): what a
 * case is, and {@linkcode runCase}, which sets up two agents, a memcheck and `u2cm migrate`,
 * injects the case's fault, recovers, and checks that exactly one copy runs with its memory intact.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type Memcheck, requireCriuBinary, startMemcheck } from "../../criu/support.ts";
import { type Proxy, startProxy } from "../../peer/support/proxy.ts";
import { makeNodes, migrateTo, type TestAgent, type TestNodes, u2cm } from "./agents.ts";
import { startAgentProcess } from "./agents.ts";
import {
  allCopies,
  criuProcesses,
  journal,
  journalPhase,
  spawnU2cm,
  until,
  watchCopies,
} from "./faults.ts";
import { runningCopies } from "./memcheck_pids.ts";

export type Phase = "pre-copy" | "frozen" | "restoring" | "committing";
export type Winner = "source" | "destination";

/** What a case's fault function gets. */
export interface CaseEnv {
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
  /** Fill the file system of the destination's state dir (disk-full cases); bytes written. */
  fill(): number;
}

export interface Case {
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
  /** What the failed migration's `error` must say. */
  error?: RegExp;
  /** Inject the fault. */
  inject(env: CaseEnv): Promise<void>;
  /** How the case is recovered. @default u2cm recover */
  recoverWith?: "recover" | "agent";
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

/** Write `dir/filler` until the file system holding it has no room left; bytes written. */
function fillDisk(dir: string): number {
  const file = Deno.openSync(`${dir}/filler`, { write: true, create: true });
  let written = 0;
  try {
    for (const size of [2 ** 20, 4096]) {
      const chunk = new Uint8Array(size).fill(0x5a);
      for (let i = 0; i < 1 << 16; i++) {
        try {
          written += file.writeSync(chunk);
        } catch {
          break; // ENOSPC: on to smaller chunks, then done
        }
      }
    }
  } finally {
    file.close();
  }
  return written;
}

function unmount(dir: string): void {
  new Deno.Command("umount", { args: ["-l", dir] }).outputSync();
  Deno.removeSync(dir, { recursive: true });
}

/**
 * Run one case: two agents (the destination behind a cuttable forwarder), a memcheck, `u2cm
 * migrate`, the fault, then recovery; asserts one running copy on the winner's side with its
 * memory intact, and no instant with two.
 */
export async function runCase(c: Case): Promise<void> {
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
      // The page store spills to a state dir with room for every page (the agent accepts the
      // migration), until the case's filler takes that room mid-transfer.
      bState = smallTmpfs("48m");
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
      fill: () => fillDisk(bState),
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
      if (c.error) {
        const error = JSON.parse(result.stdout).error;
        assert.match(error, c.error, `the migration's error says why: ${error}`);
      }
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
    // Nothing of the destination's restore outlives it: no CRIU, no task it was restoring.
    const restorePattern = new RegExp(`u2cm-restore-${id}-`);
    const stray = await until("no process of the restore left", () => {
      const p = criuProcesses(["restore", restorePattern]);
      return p.length === 0 ? [] : undefined;
    }, 5_000).catch(() => criuProcesses(["restore", restorePattern]));
    assert.deepEqual(stray, [], "processes of the destination's criu restore outlived it");
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
