/**
 * Every kind of state CRIU writes reaches the destination: workloads with shared anonymous
 * memory across fork, SysV shm, memfd, a zombie child, a FIFO holding unread data, threads, unix
 * sockets, and a 512 MiB child under a tiny init — each migrated between two real agents with
 * `u2cm migrate`, its contents checked by the workload itself after the move; each with the
 * default freeze (scan-and-copy) and with the full dump (`U2CM_FREEZE=dump`).
 */
import assert from "node:assert/strict";
import { type Memcheck, requireCriuBinary, startWorkload, tickOf } from "../criu/support.ts";
import { makeNodes, migrateTo, u2cm } from "./support/agents.ts";
import { runningCopies } from "./support/memcheck_pids.ts";

interface Shape {
  name: string;
  args: (dir: string) => string[];
  /** Command prefix (e.g. an IPC namespace for SysV shm). */
  prefix?: string[];
  /** The process name whose copies are counted. */
  comm: string;
  /** `/bin/sh -c` script starting the workload ($W) under a tiny init. */
  shell?: string;
  workload: string;
  /** The --verify mode. */
  verify: "sample" | "full";
}

const SHAPES: Shape[] = ([
  { name: "shared anonymous memory across fork", args: () => ["--shared"] },
  { name: "SysV shm", args: () => ["--sysv"], prefix: ["unshare", "--ipc", "--"] },
  { name: "memfd", args: () => ["--memfd"] },
  { name: "a zombie child", args: () => ["--zombie"] },
  { name: "a FIFO with unread data", args: (dir) => ["--fifo", `${dir}/fifo`] },
  { name: "threads", args: () => ["--threads", "4"] },
  { name: "unix sockets with queued data", args: () => ["--unix"] },
] as Omit<Shape, "comm" | "workload">[]).map((s) => ({
  ...s,
  comm: "shapes",
  workload: "shapes",
  verify: "full",
}));

SHAPES.push({
  name: "a 512 MiB child under a tiny init",
  args: () => [],
  comm: "memcheck",
  workload: "memcheck",
  verify: "sample",
  // The root (sh) is tiny; its child holds 512 MiB.
  shell: "$W --mib 512 --write-pages 64 --hot-percent 5 --check-pages 64; exit 0",
});

/** Ask the copy to check every part of its state; resolves with the line it printed. */
async function verifyCopy(w: Memcheck, pid: number): Promise<string> {
  const mark = w.lines();
  Deno.kill(pid, "SIGUSR1");
  const line = await w.waitFor(/^verify (ok|FAIL)/, 20_000, mark);
  await w.waitFor(/^tick /, 5000, w.lines());
  return line;
}

Deno.test("shapes of state migrate between two agents and the workloads verify themselves", async (t) => {
  requireCriuBinary();
  const nodes = await makeNodes();
  const agent = await nodes.startB();
  try {
    // Each shape with the default freeze (scan-and-copy) and with its fallback, the full dump.
    const runs = SHAPES.flatMap((shape) =>
      (["scan", "dump"] as const).map((freeze) => ({ shape, freeze }))
    );
    for (const { shape, freeze } of runs) {
      await t.step(
        `${shape.name} (${freeze === "scan" ? "scan-and-copy" : "full dump"})`,
        async () => {
          const w = await startWorkload(
            shape.workload,
            shape.args(nodes.root),
            shape.prefix,
            shape.shell,
          );
          let copies: number[] = [];
          try {
            await w.waitFor(/^tick 3 /, 20_000);
            // The child (not the tiny init) is the one that checks its memory.
            const checker = () => runningCopies(w.out, shape.comm, true)[0];
            assert.match(await verifyCopy(w, checker()), /^verify ok/, "before the migration");
            const r = await u2cm([
              ...migrateTo(w.pid),
              "--policy",
              "fixed-2",
              "--format",
              "json",
              "--verify",
              shape.verify,
              "--state-dir",
              nodes.a,
            ], freeze === "dump" ? { U2CM_FREEZE: "dump" } : {});
            assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}\n${agent.log().slice(-3000)}`);
            const result = JSON.parse(r.stdout);
            assert.equal(result.ok, true);
            // scan_ms appears with the scan-and-copy freeze only.
            assert.equal(result.phases.scan_ms !== undefined, freeze === "scan", r.stdout);
            // Every page of every private and shared mapping was checked against the manifest;
            // with --verify full every one of them was read back from the restored tree too.
            const v = result.verification;
            assert.equal(v.mode, shape.verify);
            assert.ok(result.verified_pages > 0 && result.verified_pages === v.manifest_pages);
            if (shape.verify === "full") assert.equal(v.read_back_pages, v.manifest_pages);
            else assert.ok(v.read_back_pages > 0 && v.read_back_pages < v.manifest_pages);
            copies = runningCopies(w.out, shape.comm, true);
            assert.equal(copies.length, 1, `running copies: ${copies.join(", ")}`);
            const before = tickOf(w.last(/^tick /));
            const line = await verifyCopy(w, copies[0]);
            assert.match(line, /^verify ok/);
            assert.ok(tickOf(w.last(/^tick /)) > before, "the counter did not continue");
            assert.equal(w.last(/CORRUPT|FAIL/), undefined);
          } finally {
            for (const pid of runningCopies(w.out, shape.comm)) {
              try {
                Deno.kill(pid, "SIGKILL");
              } catch { /* gone */ }
            }
            await w.stop();
            Deno.removeSync(w.dir, { recursive: true });
          }
        },
      );
    }
  } finally {
    await agent.stop();
    nodes.cleanup();
  }
});
