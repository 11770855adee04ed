import assert from "node:assert/strict";
import type { RestoreContext } from "../../src/engine/channel.ts";
import { runMigration } from "../../src/engine/driver.ts";
import { waitGone } from "../../src/tracker/proc.ts";
import { restoreMigration } from "../../src/engine/restore.ts";
import { type EngineChoice, planOf } from "../../src/engine/select.ts";
import { MigrationError } from "../../src/engine/types.ts";
import { createPolicy } from "../../src/policy/mod.ts";
import type { StopPolicy } from "../../src/policy/types.ts";
import { assertMemcheckHealthy, type Memcheck } from "../criu/support.ts";
import { runningCopies } from "./support/memcheck_pids.ts";
import { startLocalRun, stopLocalRun } from "./support/local_run.ts";

/** The parts of `engine` on this host (lazy restore works, soft-dirty does not). */
const plan = (engine: EngineChoice) => planOf(engine, { softDirty: true, lazy: true });

/** A policy that pre-copies `k` rounds, then asks for post-copy. */
function postCopyAfter(k: number): StopPolicy {
  return {
    name: `post-copy-after-${k}`,
    decide: ({ rounds }) => rounds.length >= k ? { action: "post-copy" } : { action: "continue" },
  };
}

/** memcheck (32 MiB) and an in-process channel to a fresh destination. */
const setup = (onRestore?: typeof restoreMigration) => startLocalRun({ id: "m1", onRestore });

/** The workload runs exactly once, keeps counting and its memory verifies. */
async function assertOneHealthyCopy(w: Memcheck): Promise<number> {
  const copies = runningCopies(w.out);
  assert.equal(copies.length, 1, `running copies: ${copies.join(", ")}`);
  await assertMemcheckHealthy(w, copies[0]);
  return copies[0];
}

for (
  const [engine, policy, final] of [
    ["lazy", createPolicy("post-copy"), "post-copy"],
    ["hybrid", postCopyAfter(2), "post-copy"],
    ["hybrid", createPolicy("fixed-2"), "stop-and-copy"],
  ] as const
) {
  Deno.test(`the ${engine} engine with ${policy.name} ends in ${final}: one copy, memory intact`, async () => {
    const r = await setup();
    try {
      const out = await runMigration({
        id: "m1",
        pid: r.w.pid,
        channel: r.channel,
        policy,
        workDir: r.work,
      }, plan(engine));
      assert.equal(out.engine, engine);
      assert.ok(await waitGone(r.w.pid, 5000), "source still exists");
      assert.equal(await assertOneHealthyCopy(r.w), out.destPid);
      // The policy's decision picks the final phase: post-copy leaves pages lazy.
      assert.equal(out.lazyPages !== undefined || engine === "lazy", final === "post-copy");
      if (engine === "hybrid" && final === "post-copy") {
        assert.equal(out.precopyRounds, 2);
        // Pages the destination already holds unchanged are restored from its store, not lazily.
        assert.ok(out.lazyPages! < 8192 / 2, `${out.lazyPages} of 8192+ pages left lazy`);
      }
    } finally {
      await stopLocalRun(r);
    }
  });
}

for (const engine of ["delta", "hybrid"] as const) {
  Deno.test(`a failing restore (${engine}) resumes the source: one copy, memory intact`, async () => {
    // The destination loses an image file before CRIU runs: a real `criu restore` failure.
    const breakIt = async (ctx: RestoreContext) => {
      await Deno.remove(`${ctx.dir}/core-1.img`);
      return await restoreMigration(ctx);
    };
    const r = await setup(breakIt);
    try {
      await assert.rejects(
        runMigration({
          id: "m1",
          pid: r.w.pid,
          channel: r.channel,
          policy: engine === "hybrid" ? postCopyAfter(2) : createPolicy("fixed-2"),
          workDir: r.work,
        }, plan(engine)),
        (err: unknown) => {
          assert.ok(err instanceof MigrationError, String(err));
          assert.equal(err.sourceRunning, true);
          assert.match(err.message, /restore/);
          return true;
        },
      );
      assert.equal(await assertOneHealthyCopy(r.w), r.w.pid);
    } finally {
      await stopLocalRun(r);
    }
  });
}

Deno.test("aborting during pre-copy (Ctrl-C) leaves the source running untouched", async () => {
  const r = await setup();
  const controller = new AbortController();
  try {
    const run = runMigration({
      id: "m1",
      pid: r.w.pid,
      channel: r.channel,
      policy: createPolicy("fixed-1000"),
      workDir: r.work,
      signal: controller.signal,
      onProgress: (ev) => {
        if (ev.kind === "round" && ev.round.index === 2) controller.abort();
      },
    }, plan("delta"));
    await assert.rejects(run, MigrationError);
    assert.equal(await assertOneHealthyCopy(r.w), r.w.pid);
  } finally {
    await stopLocalRun(r);
  }
});

Deno.test("the predump engine fails cleanly without soft-dirty and the source keeps running", async () => {
  const r = await setup();
  try {
    await assert.rejects(
      runMigration({
        id: "m1",
        pid: r.w.pid,
        channel: r.channel,
        policy: createPolicy("fixed-2"),
        workDir: r.work,
      }, plan("predump")),
      /pre-dump failed/,
    );
    assert.equal(await assertOneHealthyCopy(r.w), r.w.pid);
  } finally {
    await stopLocalRun(r);
  }
});
