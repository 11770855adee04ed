/**
 * Faults at random points, as issue 12 measured them before the commit protocol: in each run the
 * destination agent or the source `u2cm migrate` is killed at a random moment 0.3–6 s after the
 * migration's journal record appeared (the migration started), in a real migration (memcheck 64 MiB, `--engine delta --policy u2c`, two loopback agents), then the node
 * recovers (`u2cm recover`, the agent restarted). A run counts when exactly one copy runs
 * afterwards and its memory verifies; a watcher samples the process table throughout for two
 * running copies. Prints one JSON object.
 *
 * Usage: `deno run -A build/bench/faults.ts [RUNS] [SEED]` (defaults 12, 12)
 *
 * @module
 */
import { requireCriuBinary, startMemcheck } from "../../tests/criu/support.ts";
import {
  makeNodes,
  migrateTo,
  startAgentProcess,
  u2cm,
} from "../../tests/engine/support/agents.ts";
import {
  allCopies,
  journalPhase,
  spawnU2cm,
  until,
  watchCopies,
} from "../../tests/engine/support/faults.ts";
import { runningCopies } from "../../tests/engine/support/memcheck_pids.ts";

const runs = Number(Deno.args[0] ?? 12);
let seed = Number(Deno.args[1] ?? 12) >>> 0 || 1;
const random = () => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 2 ** 32;
};

requireCriuBinary();
const cases = [];
for (let i = 0; i < runs; i++) {
  const victim = random() < 0.5 ? "agent" : "migrate";
  const atMs = Math.round(300 + random() * 5700);
  cases.push({ victim, at_ms: atMs, ...await runOne(victim, atMs) });
}
const ok = cases.filter((c) => c.one_copy_verified).length;
console.log(JSON.stringify({
  name: "faults",
  runs,
  exactly_one_verified: ok,
  two_copies_seen: cases.filter((c) => c.two_copies).length,
  cases,
}));

async function runOne(victim: string, atMs: number) {
  const nodes = await makeNodes();
  let agent = await startAgentProcess(nodes.b, 0, 3);
  nodes.pinB(`127.0.0.1:${agent.port}`);
  const w = await startMemcheck(["--mib", "64", "--write-pages", "100", "--hot-percent", "10"]);
  const watcher = watchCopies(w.out);
  let result = {
    one_copy_verified: false,
    two_copies: false,
    migrate_exit: -1,
    phase_at_kill: "",
    winner: "",
  };
  try {
    await w.waitFor(/^tick 3 /);
    const migrate = spawnU2cm([
      ...migrateTo(w.pid),
      "--policy",
      "u2c",
      "--resume-timeout",
      "2",
      "--state-dir",
      nodes.a,
      "--format",
      "json",
    ]);
    await until("the migration's journal record", () => journalPhase(nodes.a) !== undefined);
    await new Promise((r) => setTimeout(r, atMs));
    result.phase_at_kill = journalPhase(nodes.a) ?? "";
    if (victim === "agent") await agent.stop("SIGKILL");
    else migrate.signal("SIGKILL");
    result.migrate_exit = (await migrate.done).code;
    if (victim === "agent") {
      agent = await startAgentProcess(nodes.b, 0, 3);
      nodes.pinB(`127.0.0.1:${agent.port}`);
    }
    for (let k = 0; k < 5; k++) {
      if ((await u2cm(["recover", "--state-dir", nodes.a])).code === 0) break;
    }
    let copies: number[] = [];
    for (let k = 0; k < 300 && (copies = runningCopies(w.out)).length !== 1; k++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    if (copies.length === 1) {
      const mark = w.lines();
      Deno.kill(copies[0], "SIGUSR1");
      try {
        await w.waitFor(/^verify ok/, 20_000, mark);
        result.one_copy_verified = w.last(/CORRUPT|FAIL/) === undefined;
        result.winner = copies[0] === w.pid ? "source" : "destination";
      } catch { /* not verified */ }
    }
  } finally {
    const report = watcher.stop();
    result = { ...result, two_copies: report.twoAt !== undefined };
    for (const p of allCopies(w.out)) Deno.kill(p, "SIGKILL");
    await w.stop();
    await agent.stop();
    nodes.cleanup();
    Deno.removeSync(w.dir, { recursive: true });
  }
  return result;
}
