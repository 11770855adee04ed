/**
 * The stop-and-copy final phase: freeze the tree with a stock `criu dump` to local tmpfs (left
 * stopped), then send only the pages whose hash differs from what the destination holds, and the
 * other image files. After a pre-dump chain the dump's parent is the last pre-dump: it writes
 * only the pages changed since, and its parent runs are rewritten to plain present runs, since
 * the destination's store holds those pages.
 *
 * @module
 */
import { decodeDumpStats, encodePagemap, readDumpDir } from "../criu/images/mod.ts";
import { criuDump } from "../criu/run.ts";
import { heldHashes, sendChangedPages, tcpDumpOptions, tcpRestoreRequest } from "./dump_pages.ts";
import { imageFilesToSend } from "./files.ts";
import type { FinalContext, FinalPhase, FrozenTree } from "./parts.ts";
import { flattenParents } from "./rounds_predump.ts";
import type { PhaseTimes } from "./types.ts";

/**
 * The stop-and-copy final phase.
 *
 * @example
 * ```ts
 * const frozen = await stopAndCopy.freeze(ctx); // tree stopped here, its state at the peer
 * ```
 */
export const stopAndCopy: FinalPhase = {
  name: "stop-and-copy",
  freeze: freezeAndCopy,
};

async function freezeAndCopy(ctx: FinalContext): Promise<FrozenTree> {
  const { channel, dir, handoff } = ctx;
  const phases: PhaseTimes = { freeze_ms: 0, dump_ms: 0, transfer_ms: 0, restore_ms: 0 };
  const chained = handoff.parentDir !== undefined;
  // Ask for the destination's hashes while CRIU dumps (a pre-dump chain needs none).
  const remote = chained
    ? Promise.resolve(undefined)
    : heldHashes(channel, handoff.pidMap.values());
  remote.catch(() => {});
  ctx.onProgress?.({ kind: "phase", phase: "dump" });
  const dump = await criuDump({
    pid: ctx.pid,
    dir,
    leave: "stopped",
    trackMem: chained,
    prevImagesDir: handoff.parentDir,
    signal: ctx.signal,
    ...tcpDumpOptions(ctx.tcp),
  });
  phases.dump_ms = dump.ms;
  phases.freeze_ms = await freezeMs(dir, dump.ms);
  ctx.onProgress?.({ kind: "phase", phase: "transfer" });
  const transferAt = performance.now();
  const images = await readDumpDir(dir);
  const held = await remote;
  // Pages the rounds still owe first: the final dump's own pages are newer and must win.
  let pages = await handoff.sendOwed?.(channel) ?? 0;
  for (const mem of images.memory) {
    const file = `${dir}/${mem.pagesFile}`;
    pages += await sendChangedPages(channel, mem.pid, mem.addresses, file, held?.get(mem.pid));
    if (chained) {
      await Deno.writeFile(`${dir}/${mem.pagemapFile}`, encodePagemap(flattenParents(mem.pagemap)));
    }
  }
  for (const name of await imageFilesToSend(dir, true)) {
    await channel.sendFile(name, await Deno.readFile(`${dir}/${name}`));
  }
  await channel.flush();
  phases.transfer_ms = performance.now() - transferAt;
  return {
    request: { engine: "delta", rebuildPages: true, ...tcpRestoreRequest(ctx.tcp) },
    pages,
    phases,
    dumpDir: dir,
    drain: () => Promise.resolve(),
    stop: () => Promise.resolve(),
  };
}

/** CRIU's own freezing time from `stats-dump`, else `fallback`. */
async function freezeMs(dir: string, fallback: number): Promise<number> {
  try {
    return decodeDumpStats(await Deno.readFile(`${dir}/stats-dump`)).freezingUs / 1000;
  } catch {
    return fallback;
  }
}
