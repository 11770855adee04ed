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
  rebuildableShmem,
} from "../criu/images/mod.ts";
import { closeLazyDump, criuLazyDump } from "../criu/run.ts";
import {
  sendChangedPages,
  sendShmemPages,
  tcpDumpOptions,
  tcpRestoreRequest,
} from "./dump_pages.ts";
import {
  type HeldIndex,
  heldIndex,
  heldRuns,
  missingFrom,
  scanChanged,
  type ScanRun,
} from "./final_scan.ts";
import { imageFilesToSend } from "./files.ts";
import { PageReader, sendLivePages } from "./page_reader.ts";
import type { FinalContext, FinalPhase, FrozenTree } from "./parts.ts";
import { bootId, pidNamespaceMap, treePids } from "../tracker/proc.ts";
import { pageHashes } from "../native/page_hash.ts";
import { MANIFEST_FILE } from "./contract.ts";
import type { HeldPages } from "./ledger.ts";
import { ManifestBuilder } from "./manifest.ts";
import { DigestTable, withinRuns } from "./manifest_digest.ts";
import { SentRecorder, storedRuns } from "./freeze_sent.ts";
import { stepClock } from "./step_clock.ts";
import type { PhaseTimes } from "./types.ts";
import { inRuns, type RunBounds } from "../util/in_runs.ts";

const PAGE = 4096;

/** Milliseconds the lazy dump may take to come up and, once closed, to finish. */
const DUMP_TIMEOUT_MS = 60_000;

/** What the destination holds of one process: for the eager pages and for the scan. */
interface Held {
  map: ReadonlyMap<number, Uint8Array>;
  index: HeldIndex;
  /** The held pages as runs (what the scan reads). */
  runs: ScanRun[];
  /** Their manifest chunk digests, brought up to date in the freeze for what it sent. */
  digests: DigestTable;
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
  const prepare = (ctx: FinalContext) => {
    held = new Map();
    for (const ns of new Set(ctx.handoff.pidMap.values())) {
      const map = ctx.ledger.held(ns);
      const index = heldIndex(map);
      const runs = heldRuns(index);
      const hashes = new Uint8Array(
        index.hashes.buffer,
        index.hashes.byteOffset,
        index.hashes.byteLength,
      );
      const digests = new DigestTable(runs.map((r) => [r.vaddr, r.nrPages] as const), hashes);
      held.set(ns, { map, index, runs, digests });
    }
    return Promise.resolve();
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
  const hostOf = new Map<number, number>();
  for (const [host, ns] of pidNamespaceMap(ctx.pid)) if (!hostOf.has(ns)) hostOf.set(ns, host);
  ctx.onProgress?.({ kind: "phase", phase: "dump" });
  const dumping = criuLazyDump({
    pid: ctx.pid,
    dir,
    leave: "stopped",
    lazyPages: true,
    listen,
    signal: ctx.signal,
    timeoutMs: DUMP_TIMEOUT_MS,
    // A lazy dump waits for its page server's client for ever, holding the tree: if this
    // process dies first, the dump must die too (the tree then runs on, as rollback wants).
    dieWithParent: true,
    ...tcpDumpOptions(ctx.tcp),
  });
  const dump = await dumping;
  let closing: Promise<void> | undefined;
  /** Close the dump's page server; the dump finishes and leaves the tree stopped. */
  const release = () =>
    closing ??= (async () => {
      const answer = await closeLazyDump(listen, { criuVersion: dump.criuVersion })
        .catch((e) => e as Error);
      const code = await withTimeout(dump.status, DUMP_TIMEOUT_MS, -1);
      if (typeof answer !== "number" || answer !== 0 || code !== 0) {
        await dump.stop();
        const why = typeof answer === "number" ? `answer ${answer}` : answer.message;
        throw new Error(`the lazy dump did not finish cleanly (${why}, exit ${code})`);
      }
    })();
  try {
    phases.dump_ms = dump.readyMs;
    const readyAt = performance.now();
    // The final scan, once the dump is ready: CRIU has seized every thread, run and removed its
    // parasite, and delivered the signals it lets the tree handle while seizing, so nothing in
    // the tree runs until the dump is released. (A scan alongside the dump could miss a page the
    // tree writes while CRIU seizes it: a signal handler's, for one.)
    const scanned = await scanHeld(ctx.pid, held, hostOf, options);
    const images = await readDumpDir(dir, true);
    const changed = new Map<number, number[]>();
    for (const mem of images.memory) {
      const runs = lazyRuns(mem.pagemap);
      if (runs.length === 0) continue;
      const host = hostOf.get(mem.pid);
      if (host === undefined) throw new Error(`pid ${mem.pid} of the dump has no host pid`);
      const h = held.get(mem.pid);
      const got = scanned.out.get(mem.pid);
      if (!h || !got) {
        changed.set(mem.pid, await scanChanged(host, runs, heldIndex(new Map()), options));
        continue;
      }
      const unreadable = got.unreadable.length
        ? got.unreadable.filter((a) => inRuns(runs, a, SCAN_RUN_BOUNDS))
        : [];
      if (unreadable.length > 0) {
        throw new Error(
          `final scan: page 0x${unreadable[0].toString(16)} of pid ${mem.pid} cannot be read`,
        );
      }
      changed.set(
        mem.pid,
        [...got.changed, ...missingFrom(h.index, runs)].sort((a, b) => a - b),
      );
    }
    const scanEnd = performance.now();
    phases.scan_ms = Math.max(0, scanEnd - readyAt);
    phases.scan_overlap_ms = 0;
    // Transfer: the changed pages, the eager pages CRIU wrote, then the image files.
    ctx.onProgress?.({ kind: "phase", phase: "transfer" });
    const transferAt = performance.now();
    const step = stepClock(phases);
    const manifest = new ManifestBuilder();
    // The pages sent in the freeze, with their hashes: what the manifest brings up to date.
    const sender = new SentRecorder(channel);
    let pages = 0;
    for (const mem of images.memory) {
      const list = changed.get(mem.pid) ?? [];
      if (list.length > 0) {
        const reader = new PageReader(hostOf.get(mem.pid)!);
        try {
          const sent = await sendLivePages(sender, reader, mem.pid, list);
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
      step("transfer_pages_ms");
      const file = `${dir}/${mem.pagesFile}`;
      pages += await sendChangedPages(
        sender,
        mem.pid,
        mem.addresses,
        file,
        held.get(mem.pid)?.map,
      );
      step("transfer_eager_ms");
      const final = presentAndLazy(mem.pagemap);
      await Deno.writeFile(`${dir}/${mem.pagemapFile}`, encodePagemap(final));
      const runs = storedRuns(final);
      step("transfer_pagemap_ms");
      // The manifest: every page of the frozen process, as chunk digests of the hashes the
      // destination now holds (the ledger recorded every page sent, the scan proved the others
      // unchanged); only the chunks of the pages sent in the freeze are hashed again.
      const table = held.get(mem.pid)?.digests ?? new DigestTable([], new Map());
      const now = withinRuns(sender.of(mem.pid), runs);
      const digests = table.digests(runs, ctx.ledger.held(mem.pid), now);
      manifest.addDigests(mem.pid, runs, digests, now);
      step("transfer_manifest_ms");
    }
    // The memory has been read: let the dump go while the image files travel.
    const releasing = release();
    releasing.catch(() => {});
    // Shared memory is not lazy: CRIU wrote it; as in stop-and-copy, what live processes map
    // travels as their pages, the rest as pages files hashed as sent.
    const viaPages = await rebuildableShmem(images);
    for (const obj of images.shmem) {
      const candidates = viaPages.get(obj.id);
      if (!candidates) continue;
      const file = `${dir}/${obj.pagesFile}`;
      pages += await sendShmemPages(channel, obj, file, candidates, ctx.ledger, manifest);
    }
    const shmemOf = new Map(images.shmem.map((x) => [x.pagesFile, x]));
    // The pages files the destination rebuilds, known from the images already read.
    const rebuilt = new Set(images.memory.map((m) => m.pagesFile));
    for (const obj of images.shmem) if (viaPages.has(obj.id)) rebuilt.add(obj.pagesFile);
    for (const name of await imageFilesToSend(dir, true, true, rebuilt)) {
      const data = await Deno.readFile(`${dir}/${name}`);
      const shmem = shmemOf.get(name);
      if (shmem) manifest.add("shmem", shmem.id, shmem.offsets, pageHashes(data));
      await channel.sendFile(name, data);
    }
    step("transfer_files_ms");
    const encoded = manifest.encode();
    step("transfer_manifest_ms");
    await channel.sendFile(MANIFEST_FILE, encoded);
    await channel.flush();
    step("transfer_flush_ms");
    phases.transfer_ms = performance.now() - transferAt;
    const releaseAt = performance.now();
    await releasing;
    phases.release_ms = performance.now() - releaseAt;
    phases.freeze_ms = await freezeMs(dir, dump.readyMs);
    return {
      request: {
        engine: "delta",
        rebuildPages: true,
        rebuildShmem: true,
        localLazy: true,
        sourceBootId: bootId(),
        verify: { mode: ctx.verify ?? "sample", pages: manifest.pages },
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

/** Add the pages `addresses` of process `pid` to the manifest with the ledger's hashes. */
export function addFromLedger(
  manifest: ManifestBuilder,
  pid: number,
  addresses: number[],
  held: HeldPages,
): void {
  const hashes = new Uint8Array(addresses.length * 16);
  for (let i = 0; i < addresses.length; i++) {
    const h = held.get(addresses[i]);
    if (!h) throw new Error(`page 0x${addresses[i].toString(16)} of pid ${pid} was never sent`);
    hashes.set(h, i * 16);
  }
  manifest.add("process", pid, addresses, hashes);
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

/** What the scan found per process: pages that differ from the held copy, and unreadable ones. */
interface Scanned {
  out: Map<number, { changed: number[]; unreadable: number[] }>;
}

/** Scan the held runs of every process of the (stopped) tree against the held hashes. */
async function scanHeld(
  root: number,
  held: Map<number, Held>,
  hostOf: Map<number, number>,
  options: ScanAndCopyOptions,
): Promise<Scanned> {
  const out = new Map<number, { changed: number[]; unreadable: number[] }>();
  for (const [ns, h] of held) {
    const host = hostOf.get(ns);
    if (host === undefined) continue; // exited since the rounds
    const unreadable: number[] = [];
    const changed = await scanChanged(host, h.runs, h.index, { ...options, unreadable });
    out.set(ns, { changed, unreadable });
  }
  if (treePids(root).length === 0) throw new Error("the tree vanished during the dump");
  return { out };
}

/** Where a final scan's runs start and end. */
const SCAN_RUN_BOUNDS: RunBounds<ScanRun> = {
  start: (r) => r.vaddr,
  end: (r) => r.vaddr + r.nrPages * PAGE,
};

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
