/**
 * The scan-and-copy final phase: a stop-and-copy whose freeze does not grow with memory.
 *
 * Before the freeze ({@linkcode FinalPhase.prepare}) it indexes the hashes of what the
 * destination holds. Inside the freeze:
 *
 * 1. `criu dump --lazy-pages` writes every image but the anonymous memory (which it leaves in
 *    the frozen tree instead of writing it to tmpfs);
 * 2. the shim scans those runs of the frozen tree (process_vm_readv + hash, one worker per core)
 *    against the held hashes; only changed pages are read again and sent, with the few eager
 *    pages CRIU did write;
 * 3. the dump's page server is closed without serving a page (the tree stays stopped, the dump
 *    exits), and the pagemaps go out with the lazy runs marked present and lazy: the destination
 *    lays its page store out as the pages images and restores with `--lazy-pages` from its OWN
 *    images (`criu lazy-pages -D`), so CRIU's restore reads no bulk memory inside the freeze.
 *
 * Nothing is owed by the source after the restore: every page is at the destination before the
 * restore request. The lazy daemon there fills memory from local files.
 *
 * @module
 */
import {
  decodeDumpStats,
  encodePagemap,
  type Pagemap,
  PE_LAZY,
  PE_PARENT,
  PE_PRESENT,
  readDumpDir,
} from "../criu/images/mod.ts";
import { closeLazyDump, criuLazyDump } from "../criu/run.ts";
import { sendChangedPages, tcpDumpOptions, tcpRestoreRequest } from "./dump_pages.ts";
import { type HeldIndex, heldIndex, scanChanged, type ScanRun } from "./final_scan.ts";
import { imageFilesToSend } from "./files.ts";
import { PageReader, sendLivePages } from "./page_reader.ts";
import type { FinalContext, FinalPhase, FrozenTree } from "./parts.ts";
import { pidNamespaceMap } from "./proc.ts";
import type { PhaseTimes } from "./types.ts";

/** Milliseconds the lazy dump may take to come up and, once closed, to finish. */
const DUMP_TIMEOUT_MS = 60_000;

/** What the destination holds of one process: for the eager pages and for the scan. */
interface Held {
  map: ReadonlyMap<number, Uint8Array>;
  index: HeldIndex;
}

/** Options of {@linkcode scanAndCopy}. */
export interface ScanAndCopyOptions {
  /** Scan workers. @default the machine's cores */
  workers?: number;
}

/**
 * A scan-and-copy final phase (one per migration: it keeps what `prepare` indexed).
 *
 * @example
 * ```ts
 * const final = scanAndCopy();
 * await final.prepare?.(ctx); // before the freeze: index what the destination holds
 * const frozen = await final.freeze(ctx); // tree stopped, every page at the destination
 * ```
 */
export function scanAndCopy(options: ScanAndCopyOptions = {}): FinalPhase {
  let held: Map<number, Held> | undefined;
  const prepare = async (ctx: FinalContext) => {
    held = new Map();
    for (const ns of new Set(ctx.handoff.pidMap.values())) {
      const map = ctx.handoff.held?.(ns) ?? await ctx.channel.remoteHashes(ns);
      held.set(ns, { map, index: heldIndex(map) });
    }
  };
  return {
    name: "stop-and-copy",
    prepare,
    async freeze(ctx) {
      if (!held) await prepare(ctx);
      return await freezeAndScan(ctx, held!, options);
    },
  };
}

async function freezeAndScan(
  ctx: FinalContext,
  held: Map<number, Held>,
  options: ScanAndCopyOptions,
): Promise<FrozenTree> {
  const { channel, dir } = ctx;
  const phases: PhaseTimes = { freeze_ms: 0, dump_ms: 0, transfer_ms: 0, restore_ms: 0 };
  const listen = { address: "127.0.0.1", port: freePort("127.0.0.1") };
  ctx.onProgress?.({ kind: "phase", phase: "dump" });
  const dump = await criuLazyDump({
    pid: ctx.pid,
    dir,
    leave: "stopped",
    lazyPages: true,
    listen,
    signal: ctx.signal,
    timeoutMs: DUMP_TIMEOUT_MS,
    ...tcpDumpOptions(ctx.tcp),
  });
  let closing: Promise<void> | undefined;
  /** Close the dump's page server; the dump finishes and leaves the tree stopped. */
  const release = () =>
    closing ??= (async () => {
      const answer = await closeLazyDump(listen).catch((e) => e as Error);
      const code = await withTimeout(dump.status, DUMP_TIMEOUT_MS, -1);
      if (typeof answer !== "number" || answer !== 0 || code !== 0) {
        await dump.stop();
        const why = typeof answer === "number" ? `answer ${answer}` : answer.message;
        throw new Error(`the lazy dump did not finish cleanly (${why}, exit ${code})`);
      }
    })();
  try {
    phases.dump_ms = dump.readyMs;
    // The final scan: which pages CRIU left in memory differ from what the destination holds.
    const scanAt = performance.now();
    const images = await readDumpDir(dir, true);
    const hostOf = new Map<number, number>();
    for (const [host, ns] of pidNamespaceMap(ctx.pid)) if (!hostOf.has(ns)) hostOf.set(ns, host);
    const changed = new Map<number, number[]>();
    for (const mem of images.memory) {
      const host = hostOf.get(mem.pid);
      const runs = lazyRuns(mem.pagemap);
      if (runs.length === 0) continue;
      if (host === undefined) throw new Error(`pid ${mem.pid} of the dump has no host pid`);
      const index = held.get(mem.pid)?.index ?? heldIndex(new Map());
      changed.set(mem.pid, await scanChanged(host, runs, index, options));
    }
    phases.scan_ms = performance.now() - scanAt;
    // Transfer: the changed pages, the eager pages CRIU wrote, then the image files.
    ctx.onProgress?.({ kind: "phase", phase: "transfer" });
    const transferAt = performance.now();
    let pages = 0;
    for (const mem of images.memory) {
      const list = changed.get(mem.pid) ?? [];
      if (list.length > 0) {
        const reader = new PageReader(hostOf.get(mem.pid)!);
        try {
          const sent = await sendLivePages(channel, reader, mem.pid, list);
          if (sent !== list.length) {
            throw new Error(
              `pid ${mem.pid}: ${list.length - sent} changed pages became unreadable`,
            );
          }
          pages += sent;
        } finally {
          reader.close();
        }
      }
      const file = `${dir}/${mem.pagesFile}`;
      pages += await sendChangedPages(
        channel,
        mem.pid,
        mem.addresses,
        file,
        held.get(mem.pid)?.map,
      );
      await Deno.writeFile(`${dir}/${mem.pagemapFile}`, encodePagemap(presentAndLazy(mem.pagemap)));
    }
    // The memory has been read: let the dump go while the image files travel.
    const releasing = release();
    releasing.catch(() => {});
    for (const name of await imageFilesToSend(dir, true)) {
      await channel.sendFile(name, await Deno.readFile(`${dir}/${name}`));
    }
    await channel.flush();
    phases.transfer_ms = performance.now() - transferAt;
    const releaseAt = performance.now();
    await releasing;
    phases.release_ms = performance.now() - releaseAt;
    phases.freeze_ms = await freezeMs(dir, dump.readyMs);
    return {
      request: {
        engine: "delta",
        rebuildPages: true,
        localLazy: true,
        ...tcpRestoreRequest(ctx.tcp),
      },
      pages,
      phases,
      dumpDir: dir,
      drain: () => Promise.resolve(),
      stop: async () => {
        await release().catch(() => dump.stop());
      },
    };
  } catch (e) {
    await release().catch(() => {});
    throw e;
  }
}

/** The runs a lazy dump left in memory (PE_LAZY, not in its pages file, not in a parent). */
export function lazyRuns(pagemap: Pagemap): ScanRun[] {
  return pagemap.entries
    .filter((e) => (e.flags & PE_LAZY) !== 0 && (e.flags & (PE_PRESENT | PE_PARENT)) === 0)
    .map((e) => ({ vaddr: e.vaddr, nrPages: e.nrPages }));
}

/**
 * The pagemap the destination restores with: the lazy runs become present and lazy (in the
 * pages image it lays out from its store, served by its local lazy-pages daemon).
 */
export function presentAndLazy(pagemap: Pagemap): Pagemap {
  return {
    ...pagemap,
    entries: pagemap.entries.map((e) =>
      (e.flags & PE_LAZY) !== 0 && (e.flags & (PE_PRESENT | PE_PARENT)) === 0
        ? { ...e, flags: PE_LAZY | PE_PRESENT }
        : e
    ),
  };
}

function freePort(address: string): number {
  const l = Deno.listen({ hostname: address, port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function withTimeout<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return await Promise.race([p, new Promise<T>((r) => timer = setTimeout(() => r(fallback), ms))])
    .finally(() => clearTimeout(timer));
}

/** CRIU's own freezing time from `stats-dump`, else `fallback`. */
async function freezeMs(dir: string, fallback: number): Promise<number> {
  try {
    return decodeDumpStats(await Deno.readFile(`${dir}/stats-dump`)).freezingUs / 1000;
  } catch {
    return fallback;
  }
}
