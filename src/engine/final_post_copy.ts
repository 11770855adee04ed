/**
 * The post-copy final phase: freeze and dump the tree with `--lazy-pages`, leaving its memory with
 * the dump's page server. When pre-copy rounds ran, every lazy page the destination already holds
 * with the same hash becomes an eager page, rebuilt there from its store; only pages that changed
 * since they were sent stay lazy. The destination restores at once (stopped) and its
 * `criu lazy-pages` daemon fetches the lazy pages; the source is needed until it has them all.
 * The page server's endpoint comes from a {@linkcode PageServerEndpoint}.
 *
 * @module
 */
import {
  encodePagemap,
  type Pagemap,
  type PagemapEntry,
  PE_LAZY,
  PE_PARENT,
  PE_PRESENT,
  readDumpDir,
} from "../criu/images/mod.ts";
import { criuLazyDump, logTail } from "../criu/run.ts";
import { sameHash, sendChangedPages, tcpDumpOptions, tcpRestoreRequest } from "./dump_pages.ts";
import { imageFilesToSend } from "./files.ts";
import type { HeldPages } from "./ledger.ts";
import { ForwardingChannel } from "./forwarding_channel.ts";
import { bootId, pidNamespaceMap } from "../tracker/proc.ts";
import {
  carriesTunnels,
  type MigrationChannel as PeerMigrationChannel,
  openTunnel,
  type Tunnel,
} from "../peer/mod.ts";
import type { FinalContext, FinalPhase, FrozenTree, PageServerEndpoint } from "./parts.ts";
import type { PhaseTimes, PostCopyReport } from "./types.ts";
import { MANIFEST_FILE } from "./contract.ts";
import type { LazyCheckReport } from "./contract.ts";
import { postCopyManifest } from "./post_copy_manifest.ts";
import { hashFrozenRuns, UnreadablePageError } from "./live_hashes.ts";

const PAGE = 4096;

/**
 * Milliseconds the lazy dump may wait for its page server to start, and — where the page traffic
 * can be watched (the tunnel) — the longest stretch without any page traffic before the transfer
 * counts as stalled. A transfer that moves on is never cut short: a slow link or a big tree only
 * makes the drain longer (ending the dump then would lose the workload, which already runs at
 * the destination). Without a way to watch (in-process channels), the whole drain's limit.
 * `U2CM_DRAIN_IDLE_MS` overrides it (tests use a short one to prove a long drain goes on).
 */
const DRAIN_TIMEOUT_MS = 120_000;

function drainIdleMs(): number {
  const v = Number(Deno.env.get("U2CM_DRAIN_IDLE_MS"));
  return Number.isFinite(v) && v >= 100 ? v : DRAIN_TIMEOUT_MS;
}

/**
 * The post-copy final phase.
 *
 * @example
 * ```ts
 * const frozen = await postCopy.freeze(ctx); // lazy dump serving pages, small images at the peer
 * ```
 */
export const postCopy: FinalPhase = { name: "post-copy", freeze: freezeLazily };

/**
 * The page server's traffic through the peer channel's tunnel (src/peer/tunnel.ts): the dump's
 * page server binds a loopback port of the source, the destination's lazy-pages daemon connects
 * to its agent's end of the tunnel, and every byte between them crosses the link inside the
 * authenticated channel.
 */
export function tunnelPageServer(channel: PeerMigrationChannel): PageServerEndpoint {
  let tunnel: Tunnel | undefined;
  return {
    listen: async () => {
      tunnel = await openTunnel({ channel });
      return { address: "127.0.0.1", port: tunnel.localPort };
    },
    remote: () => ({ tunnel: true }),
    carried: () => tunnel ? tunnel.stats.bytesIn + tunnel.stats.bytesOut : 0,
    close: async () => {
      await tunnel?.close();
    },
  };
}

/** The peer agent's channel under the driver's wrappers (the ledger's and others), when there is one. */
function peerChannelOf(channel: unknown): PeerMigrationChannel | undefined {
  for (let c = channel, depth = 0; depth < 4; depth++) {
    if (carriesTunnels(c)) return c;
    if (!(c instanceof ForwardingChannel)) return undefined;
    c = c.inner;
  }
  return undefined;
}

/** A page server on a free TCP port of `address`, reached at the same address. */
export function tcpPageServer(address = "127.0.0.1"): PageServerEndpoint {
  return {
    listen: () => Promise.resolve({ address, port: freePort(address) }),
    remote: (local) => local,
  };
}

function freePort(address: string): number {
  const l = Deno.listen({ hostname: address, port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function freezeLazily(ctx: FinalContext): Promise<FrozenTree> {
  const { channel, dir, handoff } = ctx;
  const phases: PhaseTimes = { freeze_ms: 0, dump_ms: 0, transfer_ms: 0, restore_ms: 0 };
  // Over a peer agent the page traffic goes through the channel's tunnel, never beside it.
  const peer = peerChannelOf(channel);
  const pageServer = peer ? tunnelPageServer(peer) : ctx.pageServer;
  const listen = await pageServer.listen();
  ctx.onProgress?.({ kind: "phase", phase: "dump" });
  const dump = await criuLazyDump({
    pid: ctx.pid,
    dir,
    leave: "stopped",
    lazyPages: true,
    listen,
    signal: ctx.signal,
    ...tcpDumpOptions(ctx.tcp),
    timeoutMs: DRAIN_TIMEOUT_MS,
  }).catch(async (e) => {
    await pageServer.close?.();
    throw e;
  });
  const stop = () => dump.stop().finally(() => pageServer.close?.());
  try {
    phases.dump_ms = dump.readyMs;
    phases.freeze_ms = dump.readyMs;
    ctx.onProgress?.({ kind: "phase", phase: "transfer" });
    const transferAt = performance.now();
    const precopied = handoff.pidMap.size > 0;
    let pages = 0;
    const hostOf = new Map<number, number>();
    for (const [host, ns] of pidNamespaceMap(ctx.pid)) if (!hostOf.has(ns)) hostOf.set(ns, host);
    const images = await readDumpDir(dir, true);
    const final = new Map<number, Pagemap>();
    if (precopied) {
      for (const mem of images.memory) {
        const held = ctx.ledger.held(mem.pid);
        // Eager pages CRIU wrote to the file (non-anonymous memory): send what differs.
        const file = `${dir}/${mem.pagesFile}`;
        pages += await sendChangedPages(channel, mem.pid, mem.addresses, file, held);
        const host = hostOf.get(mem.pid);
        const rewritten = host === undefined
          ? mem.pagemap
          : await eagerWhereHeld(mem.pagemap, host, held);
        await Deno.writeFile(`${dir}/${mem.pagemapFile}`, encodePagemap(rewritten));
        final.set(mem.pid, rewritten);
      }
    }
    // The manifest: every page, the lazy ones hashed from the frozen tree (the destination
    // checks each as it arrives), the eager ones with the hashes the destination now holds.
    const manifestAt = performance.now();
    const { manifest, lazyPages } = await postCopyManifest({
      dir,
      images,
      final,
      hostOf,
      held: precopied ? (pid) => ctx.ledger.held(pid) : undefined,
    });
    const manifestMs = performance.now() - manifestAt;
    for (const name of await imageFilesToSend(dir, precopied)) {
      await channel.sendFile(name, await Deno.readFile(`${dir}/${name}`));
    }
    await channel.sendFile(MANIFEST_FILE, manifest.encode());
    await channel.flush();
    phases.manifest_ms = manifestMs;
    phases.transfer_ms = performance.now() - transferAt - manifestMs;
    return {
      request: {
        engine: "lazy",
        rebuildPages: precopied,
        lazy: pageServer.remote(listen),
        sourceBootId: bootId(),
        verify: { mode: ctx.verify ?? "sample", pages: manifest.pages },
        ...tcpRestoreRequest(ctx.tcp),
      },
      pages,
      lazyPages,
      phases,
      dumpDir: dir,
      helperPids: [dump.pid],
      drain: async () => {
        const drainAt = performance.now();
        try {
          await drained(dump.status, pageServer.carried, dump.logFile);
        } finally {
          await pageServer.close?.();
        }
        const drainMs = performance.now() - drainAt;
        return { ...postCopyReport(await channel.postCopyReport?.(), lazyPages), drainMs };
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** What post-copy risks until its last page arrived (stated in every post-copy result). */
export const POST_COPY_LINK_RISK =
  "between the resume and the last page's arrival the workload ran at the destination with " +
  "part of its memory still at the source: a link or source failure, or a page the destination " +
  "refused as differing from the manifest, then would have lost it (the source copy ended at " +
  "the commit)";

/**
 * The post-copy figures from the destination's report; throws unless every lazy page arrived and
 * matched the manifest (only then is the migration verified).
 */
export function postCopyReport(
  report: LazyCheckReport | undefined,
  lazyPages: number,
): PostCopyReport {
  if (!report) {
    throw new Error("post-copy not verified: the destination reported no check of the pages");
  }
  if (report.mismatch) {
    throw new Error(
      `post-copy verification failed at the destination: ${report.mismatch}; the restored copy ` +
        "was stopped",
    );
  }
  if (!report.closed || report.checkedPages !== lazyPages) {
    throw new Error(
      `post-copy not verified: ${report.checkedPages} of ${lazyPages} lazy pages arrived and ` +
        `matched the manifest${report.closed ? "" : " (the page session did not end cleanly)"}`,
    );
  }
  return {
    lazyPages,
    checkedPages: report.checkedPages,
    requests: report.requests,
    remoteFaults: report.faults,
    linkRisk: POST_COPY_LINK_RISK,
  };
}

/**
 * Wait for the lazy dump to end (every page served). With `carried` (bytes the page traffic moved
 * so far) it waits as long as the traffic moves, and gives up after an idle stretch; without, after
 * the drain limit. A failed dump's error carries the tail of its log (`logFile`).
 */
async function drained(
  status: Promise<number>,
  carried?: () => number,
  logFile?: string,
): Promise<void> {
  const idleMs = drainIdleMs();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let last = carried?.() ?? 0, lastAt = performance.now();
  const stalled = new Promise<number>((resolve) => {
    const tick = () => {
      const now = performance.now(), bytes = carried?.() ?? last;
      if (bytes !== last) [last, lastAt] = [bytes, now];
      if (now - lastAt >= idleMs) return resolve(-1);
      timer = setTimeout(tick, Math.min(1000, idleMs / 4));
    };
    timer = setTimeout(tick, Math.min(1000, idleMs / 4));
  });
  const code = await Promise.race([status, stalled]).finally(() => clearTimeout(timer));
  if (code !== 0) {
    const log = code !== -1 && logFile ? `: ${await logTail(logFile)} (log: ${logFile})` : "";
    throw new Error(
      `the page transfer after the lazy restore did not finish (${
        code === -1 ? `no page traffic for ${Math.round(idleMs / 1000)} s` : `dump exit ${code}`
      }); the destination copy may fault on missing pages${log}`,
    );
  }
}

/**
 * Rewrite a lazy dump's pagemap: within each lazy run, pages whose current contents (read from
 * the frozen process `hostPid`, hashed in the shim on every core) hash equal to what the
 * destination holds become eager (PE_PRESENT only, rebuilt from the store); the rest stay lazy.
 * A page that cannot be read stays lazy. Nothing is read when the destination holds nothing.
 *
 * @example
 * ```ts
 * const rewritten = await eagerWhereHeld(mem.pagemap, hostPid, ledger.held(mem.pid));
 * ```
 */
export async function eagerWhereHeld(
  pagemap: Pagemap,
  hostPid: number,
  held: HeldPages,
): Promise<Pagemap> {
  if (held.size === 0) return pagemap;
  const entries: PagemapEntry[] = [];
  for (const e of pagemap.entries) {
    // A lazy dump marks the runs it left with its page server PE_LAZY (without PE_PRESENT).
    const lazy = (e.flags & PE_LAZY) !== 0 && (e.flags & PE_PARENT) === 0;
    if (!lazy) {
      entries.push(e);
      continue;
    }
    const eager = await eagerMask(hostPid, e, held);
    let i = 0;
    while (i < e.nrPages) {
      let j = i + 1;
      while (j < e.nrPages && eager[j] === eager[i]) j++;
      entries.push({
        vaddr: e.vaddr + i * PAGE,
        nrPages: j - i,
        flags: eager[i] ? PE_PRESENT : e.flags,
      });
      i = j;
    }
  }
  return { ...pagemap, entries };
}

async function eagerMask(hostPid: number, e: PagemapEntry, held: HeldPages): Promise<Uint8Array> {
  const mask = new Uint8Array(e.nrPages);
  const hashes = await hashFrozenRuns(hostPid, [{ vaddr: e.vaddr, nrPages: e.nrPages }])
    .catch((err) => {
      if (!(err instanceof UnreadablePageError)) throw err;
      return undefined; // some page cannot be read: the run stays lazy, as it was
    });
  if (!hashes) return mask;
  for (let k = 0; k < e.nrPages; k++) {
    const have = held.get(e.vaddr + k * PAGE);
    if (have && sameHash(have, hashes, k * 16)) mask[k] = 1;
  }
  return mask;
}
