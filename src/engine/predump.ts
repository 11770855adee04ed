/**
 * The `predump` engine: CRIU's own pre-copy. Each round is a `criu pre-dump --track-mem` chained
 * to the previous one (`--prev-images-dir`); the pages each round wrote are streamed to the
 * destination's page store at once. The final `criu dump` (parent: the last pre-dump) leaves the
 * tree stopped and writes only pages changed since; its pagemap's parent runs are rewritten to
 * plain present runs, so the destination rebuilds complete pages images from its store exactly
 * as for the delta engine. Needs soft-dirty (x86_64 kernels with CONFIG_MEM_SOFT_DIRTY).
 *
 * @module
 */
import {
  encodePagemap,
  type Pagemap,
  PE_LAZY,
  PE_PARENT,
  PE_PRESENT,
  readDumpDir,
} from "../criu/images/mod.ts";
import { criuDump, criuPreDump } from "../criu/run.ts";
import type { PolicyState, RoundRecord } from "../policy/types.ts";
import { restoreAtPeer, sendChangedPages, tcpDumpOptions } from "./delta.ts";
import { imageFilesToSend } from "./files.ts";
import { fixedDowntimeMs } from "./precopy.ts";
import { isAlive, nsPids, signalAll, treePids } from "../tracker/proc.ts";
import {
  type MigrationContext,
  type MigrationEngine,
  MigrationError,
  type MigrationOutcome,
  outcomeOf,
  type PhaseTimes,
  type RoundReport,
} from "./types.ts";

/** Directory name of pre-dump round `r` inside the work directory. */
export function preDumpDirName(r: number): string {
  return `pre-${r}`;
}

/**
 * The chain arguments of round `r` (`-D`, `--prev-images-dir`): CRIU resolves the parent path
 * relative to the images directory, so the parent is `../pre-<r-1>`.
 */
export function chainLink(workDir: string, r: number): { dir: string; prevImagesDir?: string } {
  return {
    dir: `${workDir}/${preDumpDirName(r)}`,
    prevImagesDir: r > 0 ? `../${preDumpDirName(r - 1)}` : undefined,
  };
}

/** Turn parent runs into present runs: the destination's store holds those pages. */
export function flattenParents(pagemap: Pagemap): Pagemap {
  return {
    ...pagemap,
    entries: pagemap.entries.map((e) =>
      (e.flags & PE_PARENT) !== 0 ? { ...e, flags: PE_PRESENT | (e.flags & PE_LAZY) } : e
    ),
  };
}

/** The predump engine. */
export const predumpEngine: MigrationEngine = {
  name: "predump",
  migrate: (ctx) => migratePredump(ctx),
};

async function migratePredump(ctx: MigrationContext): Promise<MigrationOutcome> {
  const started = performance.now();
  const maxRounds = ctx.maxRounds ?? 30;
  const rounds: RoundReport[] = [];
  const records: RoundRecord[] = [];
  let linkBps = 125e6;
  let last = -1;
  ctx.onPhase?.("precopy");
  try {
    for (let r = 0; r < maxRounds; r++) {
      ctx.signal?.throwIfAborted();
      const pending = records.at(-1)?.pagesDirtied ?? residentPages(ctx.pid);
      const state: PolicyState = {
        rounds: records,
        pendingPages: pending,
        pending: new Map(),
        link: { bandwidthBps: linkBps, rttMs: 1 },
        pageSize: 4096,
        wireBytesPerPage: 4096 + 24,
        totalPages: residentPages(ctx.pid),
        throttlePercent: 0,
        fixedDowntimeMs: fixedDowntimeMs(residentPages(ctx.pid)),
        maxDowntimeMs: ctx.maxDowntimeMs,
        downtimeSlack: ctx.downtimeSlack ?? 0.1,
      };
      const decision = ctx.policy.decide(state);
      if (decision.action === "stop-and-copy" || decision.action === "post-copy") break;
      const t0 = performance.now();
      const before = ctx.channel.bytesSent;
      const link = chainLink(ctx.workDir, r);
      await Deno.mkdir(link.dir, { recursive: true });
      await criuPreDump({ pid: ctx.pid, ...link, trackMem: true, signal: ctx.signal });
      const sent = await streamImagesPages(ctx, link.dir);
      await ctx.channel.flush();
      const ms = performance.now() - t0;
      const bytes = ctx.channel.bytesSent - before;
      if (bytes > 64 * 1024) linkBps = bytes / (ms / 1000);
      if (records.length > 0) records[records.length - 1].pagesDirtied = sent;
      records.push({
        index: r,
        pagesSent: sent,
        pagesDeferred: 0,
        pagesSkipped: 0,
        pagesDirtied: sent,
        durationMs: ms,
        bytesSent: bytes,
      });
      const round = {
        index: r,
        pages_sent: sent,
        pages_dirtied: sent,
        predicted_dirty: null,
        duration_ms: Math.round(ms * 10) / 10,
        bytes,
      };
      rounds.push(round);
      ctx.onProgress?.({ kind: "round", round, bytesSent: ctx.channel.bytesSent, linkBps });
      last = r;
    }
  } catch (e) {
    await ctx.channel.abort(`pre-dump failed: ${(e as Error).message}`).catch(() => {});
    throw new MigrationError(
      `pre-dump failed: ${(e as Error).message}`,
      "precopy",
      isAlive(ctx.pid),
    );
  }
  const final = await finalDump(ctx, last);
  return outcomeOf("predump", ctx, started, rounds, final);
}

/** Send the pages a (pre-)dump wrote to its pages files; returns how many. */
async function streamImagesPages(ctx: MigrationContext, dir: string): Promise<number> {
  const images = await readDumpDir(dir);
  let sent = 0;
  for (const mem of images.memory) {
    sent += await sendChangedPages(
      ctx.channel,
      mem.pid,
      mem.addresses,
      `${dir}/${mem.pagesFile}`,
      undefined,
    );
  }
  return sent;
}

async function finalDump(
  ctx: MigrationContext,
  lastRound: number,
): Promise<{ downtimeMs: number; destPid: number; phases: PhaseTimes; pages: number }> {
  const dir = `${ctx.workDir}/final`;
  await Deno.mkdir(dir, { recursive: true });
  const sourcePids = treePids(ctx.pid);
  const ownPidNs = nsPids(ctx.pid).at(-1) === 1;
  const phases: PhaseTimes = { freeze_ms: 0, dump_ms: 0, transfer_ms: 0, restore_ms: 0 };
  const freezeAt = performance.now();
  try {
    ctx.onPhase?.("frozen");
    const dump = await criuDump({
      pid: ctx.pid,
      dir,
      leave: "stopped",
      trackMem: lastRound >= 0,
      prevImagesDir: lastRound >= 0 ? `../${preDumpDirName(lastRound)}` : undefined,
      signal: ctx.signal,
      ...tcpDumpOptions(ctx),
    });
    phases.dump_ms = dump.ms;
    phases.freeze_ms = dump.ms;
    const transferAt = performance.now();
    const images = await readDumpDir(dir);
    let pages = 0;
    for (const mem of images.memory) {
      pages += await sendChangedPages(
        ctx.channel,
        mem.pid,
        mem.addresses,
        `${dir}/${mem.pagesFile}`,
        undefined,
      );
      await Deno.writeFile(`${dir}/${mem.pagemapFile}`, encodePagemap(flattenParents(mem.pagemap)));
    }
    for (const name of await imageFilesToSend(dir, true)) {
      if (name === "parent") continue;
      await ctx.channel.sendFile(name, await Deno.readFile(`${dir}/${name}`));
    }
    await ctx.channel.flush();
    phases.transfer_ms = performance.now() - transferAt;
    ctx.onPhase?.("restoring");
    const { pid: destPid } = await restoreAtPeer(ctx, "predump", phases);
    const downtimeMs = performance.now() - freezeAt;
    if (ownPidNs) signalAll([ctx.pid], "SIGKILL");
    signalAll(sourcePids, "SIGKILL");
    ctx.onPhase?.("done");
    return { downtimeMs, destPid, phases, pages };
  } catch (e) {
    signalAll(sourcePids, "SIGCONT");
    await ctx.channel.abort(`source rolled back: ${(e as Error).message}`).catch(() => {});
    throw new MigrationError(
      `final dump failed: ${(e as Error).message}`,
      "frozen",
      isAlive(ctx.pid),
    );
  }
}

function residentPages(pid: number): number {
  try {
    return Number(Deno.readTextFileSync(`/proc/${pid}/statm`).split(" ")[1]);
  } catch {
    return 0;
  }
}
