/**
 * The stop-and-copy final phase: freeze the tree with a stock `criu dump` to local tmpfs (left
 * stopped), then send only the pages whose hash differs from what the destination holds, and the
 * other image files. After a pre-dump chain the dump's parent is the last pre-dump: it writes
 * only the pages changed since, and its parent runs are rewritten to plain present runs, since
 * the destination's store holds those pages.
 *
 * @module
 */
import {
  decodeDumpStats,
  encodePagemap,
  readDumpDir,
  rebuildableShmem,
} from "../criu/images/mod.ts";
import { criuDump } from "../criu/run.ts";
import { pageHashes } from "../native/page_hash.ts";
import { bootId } from "../tracker/proc.ts";
import { MANIFEST_FILE } from "./contract.ts";
import {
  sendChangedPages,
  sendShmemPages,
  tcpDumpOptions,
  tcpRestoreRequest,
} from "./dump_pages.ts";
import { imageFilesToSend } from "./files.ts";
import { ManifestBuilder } from "./manifest.ts";
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
  // A chained dump writes only the pages changed since its parent: the manifest (every page of
  // the frozen tree) is built from unchained dumps only.
  const manifest = chained ? undefined : new ManifestBuilder();
  // Pages the rounds still owe first: the final dump's own pages are newer and must win.
  let pages = await handoff.sendOwed?.(channel) ?? 0;
  for (const mem of images.memory) {
    const file = `${dir}/${mem.pagesFile}`;
    // The ledger: what this source sent, with the hash each page had (a chain sends it all).
    const held = chained ? undefined : ctx.ledger.held(mem.pid);
    pages += await sendChangedPages(
      channel,
      mem.pid,
      mem.addresses,
      file,
      held,
      undefined,
      manifest,
    );
    if (chained) {
      await Deno.writeFile(`${dir}/${mem.pagemapFile}`, encodePagemap(flattenParents(mem.pagemap)));
    }
  }
  // Shared memory (anonymous shared, SysV, memfd) that live processes map travels as their
  // pages, so what pre-copy sent of it counts; the destination rebuilds its pages file.
  const viaPages = manifest ? await rebuildableShmem(images) : new Map();
  for (const obj of images.shmem) {
    const candidates = viaPages.get(obj.id);
    if (!candidates) continue;
    const file = `${dir}/${obj.pagesFile}`;
    pages += await sendShmemPages(channel, obj, file, candidates, ctx.ledger, manifest);
  }
  // The other shared objects travel as their pages files, hashed as sent.
  const shmemOf = new Map(images.shmem.map((s) => [s.pagesFile, s]));
  for (const name of await imageFilesToSend(dir, true, manifest !== undefined)) {
    const data = await Deno.readFile(`${dir}/${name}`);
    const shmem = shmemOf.get(name);
    if (shmem) manifest?.add("shmem", shmem.id, shmem.offsets, pageHashes(data));
    await channel.sendFile(name, data);
  }
  if (manifest) await channel.sendFile(MANIFEST_FILE, manifest.encode());
  await channel.flush();
  phases.transfer_ms = performance.now() - transferAt;
  return {
    request: {
      engine: "delta",
      rebuildPages: true,
      ...(manifest ? { rebuildShmem: true } : {}),
      sourceBootId: bootId(),
      ...(manifest ? { verify: { mode: ctx.verify ?? "sample", pages: manifest.pages } } : {}),
      ...tcpRestoreRequest(ctx.tcp),
    },
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
