/**
 * The migration driver: the whole live migration, top to bottom, in one function.
 *
 * checks → channel → journal → pre-copy rounds (the policy decides each one) → the final phase
 * the policy's decision names (stop-and-copy or post-copy) → page manifest → restore at the
 * destination, left stopped → **commit** (fsync'd journal record) → end the source → the
 * destination resumes.
 *
 * Until the commit record is on disk the source owns the workload, and any failure takes the one
 * rollback path: stop what the final phase started, resume the source, tell the destination to
 * discard its copy, keep CRIU's logs. After the commit the destination owns it: the source copy
 * is ended (and gone) before the destination is told to resume its stopped copy, so no instant
 * has two running copies; a failure there is left to `u2cm recover`, never resolved by guessing.
 * A verified lazy local restore (the destination still places, and checks, pages after its
 * resume) is the exception: the stopped source copy is kept — one copy runs, the destination's —
 * until the destination reports every lazy page matched, and resumed if one was refused (the
 * destination ended its copy first).
 *
 * @module
 */
import { MovingWindowProvider } from "../predict/moving_window.ts";
import type { MigrationChannel } from "./channel.ts";
import { postCopy, tcpPageServer } from "./final_post_copy.ts";
import { scanAndCopy } from "./final_scan_copy.ts";
import { stopAndCopy } from "./final_stop_copy.ts";
import type { Verification } from "./contract.ts";
import { pauseAt } from "./failpoint.ts";
import { awaitLocalFill, FillRefused, type LocalLazyReport } from "./local_fill.ts";
import { accountDowntime, freezePathOf } from "./freeze_path.ts";
import { MigrationJournal, type MigrationRecord } from "./journal.ts";
import { LedgerChannel, PageLedger } from "./ledger.ts";
import type { FinalPhase, FrozenTree, RoundHandoff, RoundSource } from "./parts.ts";
import { precopy } from "./precopy.ts";
import { isAlive, nsPids, signalSame, startTimes, treePids, waitDead } from "../tracker/proc.ts";
import { hashRounds } from "./rounds_hash.ts";
import { predumpRounds } from "./rounds_predump.ts";
import { engineNameOf, type EnginePlan, type FinalName, finalOf } from "./select.ts";
import { keepLogs, makeScratch, removeScratch } from "./scratch.ts";
import { type CpuThrottle, createThrottle } from "./throttle.ts";
import {
  type MigrationContext,
  MigrationError,
  type MigrationOutcome,
  type MigrationPhase,
  type PostCopyReport,
  type RoundReport,
} from "./types.ts";

/**
 * Migrate the tree `ctx.pid` with the parts `plan` names. Resolves once the destination runs
 * the tree and the source copy is ended. Before the commit any failure resumes the source and
 * throws {@linkcode MigrationError} (`sourceRunning`); errors opening the channel are rethrown
 * as they are, after the rollback. After the commit a failure throws a MigrationError of phase
 * `committed`: the destination owns the workload and `u2cm recover` finishes the rest.
 *
 * @example
 * ```ts
 * const outcome = await runMigration({ id, pid, engine: "delta", channel, policy, workDir }, plan);
 * ```
 */
export async function runMigration(
  ctx: MigrationContext,
  plan: EnginePlan,
): Promise<MigrationOutcome> {
  const started = performance.now();
  // Checks.
  ctx.signal?.throwIfAborted();
  if (!isAlive(ctx.pid)) {
    throw new MigrationError(`pid ${ctx.pid} is not running`, "precopy", false);
  }
  const ownPidNs = nsPids(ctx.pid).at(-1) === 1;
  const scratch = await makeScratch(ctx.workDir, ctx.id);
  // Journal.
  const journal = ctx.stateDir === undefined ? undefined : new MigrationJournal(ctx.stateDir, {
    id: ctx.id,
    pid: ctx.pid,
    sourcePids: treePids(ctx.pid),
    peer: ctx.peer ?? "local",
    engine: plan.name ?? "auto",
    policy: ctx.policy.name,
    phase: "precopy",
    scratchDir: scratch,
    ...(ctx.container ? { container: ctx.container } : {}),
  });
  let phase: MigrationPhase = "precopy";
  let sourcePids: number[] = [];
  let sourceStarts: number[] = [];
  const record = (next: MigrationPhase, change: Partial<MigrationRecord> = {}) => {
    // Every phase but `restoring` (on the downtime path, and recovered like `frozen`) is fsync'd.
    journal?.update({ phase: next, ...change }, next !== "restoring");
    phase = next; // only once it is on disk: a failed commit write is no commit
    pauseAt(next);
  };
  let channel: MigrationChannel | undefined;
  let source: RoundSource | undefined;
  let throttle: CpuThrottle | undefined;
  let frozen: FrozenTree | undefined;
  let rounds: RoundReport[] = [];
  let final: FinalName = plan.finals[0];
  let freezeAt = 0;
  let commitAt = 0;
  let destPid = 0;
  const ledger = new PageLedger();
  let verified: Verification | undefined;
  try {
    // Channel.
    const opened = typeof ctx.channel === "function" ? await ctx.channel() : ctx.channel;
    // Every page sent is recorded with its hash: the final phase sends what the ledger lacks.
    channel = new LedgerChannel(opened, ledger);
    // Pre-copy rounds, as long as the policy wants them.
    let handoff: RoundHandoff = { pidMap: new Map() };
    if (plan.rounds !== "none") {
      const provider = ctx.provider ?? new MovingWindowProvider(20, 3);
      throttle = ctx.throttle === false ? undefined : tryThrottle(ctx);
      source = plan.rounds === "hash"
        ? hashRounds({ pid: ctx.pid, channel, provider, minRoundMs: ctx.minRoundMs })
        : predumpRounds({
          pid: ctx.pid,
          channel,
          provider,
          workDir: scratch,
          minRoundMs: ctx.minRoundMs,
          signal: ctx.signal,
        });
      const pre = await precopy(source, { ctx, channel, provider, throttle });
      rounds = pre.rounds;
      final = finalOf(plan, pre.final);
      handoff = source.handoff();
      source.close();
      source = undefined;
      throttle?.release();
      throttle = undefined;
    }
    // The final phase the decision asked for.
    ctx.signal?.throwIfAborted();
    // A container target brings its own final phase (its runtime checkpoints and restores).
    const finalPhase: FinalPhase = ctx.finalPhase ??
      (final === "post-copy"
        ? postCopy
        : freezePathOf(plan) === "scan"
        ? scanAndCopy()
        : stopAndCopy);
    const dir = `${scratch}/final`;
    await Deno.mkdir(dir, { recursive: true });
    const finalCtx = {
      pid: ctx.pid,
      channel,
      dir,
      handoff,
      tcp: ctx.tcp,
      onProgress: ctx.onProgress,
      pageServer: ctx.pageServer ?? tcpPageServer(),
      signal: ctx.signal,
      ledger,
      verify: ctx.verify,
    };
    await finalPhase.prepare?.(finalCtx);
    sourcePids = treePids(ctx.pid);
    sourceStarts = startTimes(sourcePids);
    record("frozen", { sourcePids, sourceStarts, engine: engineNameOf(plan, final) });
    ctx.onProgress?.({ kind: "phase", phase: "freeze" });
    freezeAt = performance.now();
    frozen = await finalPhase.freeze(finalCtx);
    if (frozen.helperPids?.length) {
      const pids = frozen.helperPids;
      journal?.update({ helpers: { pids, starts: startTimes(pids) } });
    }
    pauseAt("dumped");
    // The page manifest the destination checks its images against.
    await ctx.beforeRestore?.(frozen, channel);
    ctx.signal?.throwIfAborted();
    // Restore at the destination, left stopped (phase one of the commit).
    record("restoring");
    ctx.onProgress?.({ kind: "phase", phase: "restore" });
    const restoreAt = performance.now();
    const result = await channel.restore({ ...frozen.request, engine: engineNameOf(plan, final) });
    frozen.phases.restore_ms = performance.now() - restoreAt;
    if (!result.ok || result.pid === undefined) {
      throw new Error(`destination could not restore: ${result.error ?? "no pid"}`);
    }
    if (frozen.request.verify !== undefined && result.verified === undefined) {
      throw new Error("the destination did not verify the restored tree against the manifest");
    }
    destPid = result.pid;
    verified = result.verified;
    // The commit point: from this record on, the destination owns the workload.
    ctx.onProgress?.({ kind: "phase", phase: "commit" });
    commitAt = performance.now();
    record("committed", {
      destPid,
      ...(verified?.lazyPages ? { lazyFill: verified.lazyPages } : {}),
    });
  } catch (e) {
    const failedIn = phase;
    const why = await rollback(e);
    if (!channel) throw e; // the channel never opened: the peer's error says it best
    throw new MigrationError(`${what(failedIn)} failed: ${why}`, failedIn, true);
  }
  // Phase two: the source copy is ended, then the destination resumes the tree. A verified lazy
  // local restore still places (and checks) pages after the resume: the stopped source copy is
  // kept until every one matched (one copy runs, the destination's), then ended.
  const fillPages = verified?.lazyPages ?? 0;
  // A post-copy's lazy dump holds the stopped source and serves its pages until the destination
  // has every one: the source is ended after the drain, never under CRIU's hands (a tree killed
  // while the dump holds it fails the dump: "Unable to detach … No such process").
  const servedByDump = fillPages === 0 && (frozen.lazyPages ?? 0) > 0;
  try {
    if (fillPages === 0 && !servedByDump) {
      await endSource(ctx.pid, sourcePids, sourceStarts, ownPidNs);
    }
    await resumeAtDestination(channel, ctx.resumeTimeoutMs ?? 30_000);
    const resumedAt = performance.now();
    const downtimeMs = resumedAt - freezeAt;
    accountDowntime(frozen.phases, downtimeMs, resumedAt - commitAt);
    ctx.onProgress?.({ kind: "phase", phase: "done" });
    let localLazy: LocalLazyReport | undefined;
    if (fillPages > 0) {
      localLazy = await awaitFill(fillPages, resumedAt);
      await endSource(ctx.pid, sourcePids, sourceStarts, ownPidNs);
    }
    let fetched: PostCopyReport | undefined;
    try {
      fetched = (await frozen.drain()) ?? undefined;
    } catch (e) {
      record("failed", { error: (e as Error).message });
      throw new MigrationError((e as Error).message, "committed", false);
    } finally {
      if (servedByDump) await endSource(ctx.pid, sourcePids, sourceStarts, ownPidNs);
    }
    record("done", { destPid });
    return {
      engine: engineNameOf(plan, final),
      policy: ctx.policy.name,
      totalMs: performance.now() - started,
      downtimeMs,
      bytesSent: channel.bytesSent,
      precopyRounds: rounds.length,
      destPid,
      rounds,
      phases: frozen.phases,
      finalPages: frozen.pages,
      lazyPages: frozen.lazyPages,
      ...(verified ? { verified } : {}),
      ...(fetched ? { postCopy: fetched } : {}),
      ...(localLazy ? { localLazy } : {}),
    };
  } catch (e) {
    if (e instanceof MigrationError) throw e;
    const why = `committed, but the destination did not confirm it resumed the tree: ` +
      `${(e as Error).message}; the workload stays frozen until 'u2cm recover' reaches the peer`;
    journal?.update({ error: why });
    throw new MigrationError(why, "committed", false);
  } finally {
    await removeScratch(scratch);
  }

  /**
   * Wait for the destination's fill of a verified lazy local restore. A refused page: the
   * destination ended its copy before saying so, so the source runs again (recorded).
   */
  async function awaitFill(pages: number, resumedAt: number): Promise<LocalLazyReport> {
    try {
      return await awaitLocalFill(channel!, pages, resumedAt);
    } catch (e) {
      if (!(e instanceof FillRefused)) {
        const why = `committed, but the lazy restore's fill was not verified: ${e}; the ` +
          "destination runs the copy, the source copy is kept stopped for 'u2cm recover'";
        journal?.update({ error: why });
        throw new MigrationError(why, "committed", false);
      }
      signalSame(sourcePids, sourceStarts, "SIGCONT");
      const why = `the destination refused a page of the lazy restore (${e.message}): it ended ` +
        "its copy; the source runs again";
      record("rolled-back", { error: why, peerCleared: true });
      // Not left to `u2cm recover`: the workload is the source's again, as after a rollback.
      throw new MigrationError(why, "rolled-back", true);
    }
  }

  /**
   * The one rollback: everything the migration started is undone; the source runs. Returns why
   * it failed, naming the kept CRIU logs.
   */
  async function rollback(e: unknown): Promise<string> {
    ctx.onProgress?.({ kind: "phase", phase: "rollback" });
    await frozen?.stop().catch(() => {});
    source?.close();
    throttle?.release();
    if (phase !== "precopy") signalSame(sourcePids, sourceStarts, "SIGCONT");
    const cleared = channel
      ? await channel.abort(`source rolled back: ${(e as Error).message}`).catch(() => false)
      : true;
    const logs = ctx.stateDir ? await keepLogs(scratch, ctx.stateDir, ctx.id) : [];
    await removeScratch(scratch);
    // Errors cite CRIU's logs in the scratch directory, which is gone now: cite the kept copies.
    const message = (e as Error).message.replaceAll(/\(log: [^)]*\)/g, "").trim() +
      (logs.length ? ` (CRIU logs kept: ${logs.join(", ")})` : "");
    try {
      record("rolled-back", {
        error: message,
        peerCleared: cleared !== false,
        logs: logs.length ? logs : undefined,
      });
    } catch (w) {
      // The journal cannot be written (disk full): the source runs; recovery finds it running.
      return `${message}; the journal could not record the rollback: ${(w as Error).message}`;
    }
    return message;
  }
}

function what(phase: MigrationPhase): string {
  if (phase === "precopy") return "pre-copy";
  return phase === "frozen" ? "stop-and-copy" : "restore";
}

function tryThrottle(ctx: MigrationContext): CpuThrottle | undefined {
  try {
    return createThrottle(ctx.id, () => treePids(ctx.pid));
  } catch {
    return undefined; // no cpu controller: policies asking to throttle just continue
  }
}

/**
 * Ask the destination to resume until it confirms, bounded in time (the link may be resuming).
 * Ctrl-C after the commit does not undo it, so no signal cuts this short.
 */
async function resumeAtDestination(channel: MigrationChannel, timeoutMs: number): Promise<void> {
  const until = performance.now() + timeoutMs;
  for (let attempt = 1;; attempt++) {
    try {
      return await channel.resume();
    } catch (e) {
      if (performance.now() > until) throw e;
      await new Promise((r) => setTimeout(r, Math.min(200 * attempt, 2000)));
    }
  }
}

/** Kill the stopped source tree after the commit, and wait until none of it is left alive. */
async function endSource(
  root: number,
  pids: number[],
  starts: number[],
  ownPidNs: boolean,
): Promise<void> {
  // The root first: as its pid namespace's init it takes the rest with it.
  if (ownPidNs) signalSame([root], [starts[pids.indexOf(root)] ?? 0], "SIGKILL");
  signalSame(pids, starts, "SIGKILL");
  await waitDead(pids, starts);
}
