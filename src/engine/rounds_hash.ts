/**
 * The content-hash round source (u2cm's own pre-copy, no soft-dirty needed): the dirty tracker
 * scans the tree, each round sends the pending pages (minus those the policy defers) while the
 * workload runs, and the next scan says what the round left dirty. Every scan feeds the
 * predictor.
 *
 * @module
 */
import { FeatureSampler } from "../history/features.ts";
import type { PredictionProvider } from "../predict/provider.ts";
import { createTracker } from "../tracker/mod.ts";
import { type Mapping, type PageSet, pageSetSize, type ScanResult } from "../tracker/types.ts";
import type { MigrationChannel } from "./channel.ts";
import { PageReader, sendLivePages } from "./page_reader.ts";
import { subtractPages, unionPages } from "./pageset.ts";
import type { RoundDone, RoundHandoff, RoundSource, RoundState } from "./parts.ts";
import { pidNamespaceMap } from "../tracker/proc.ts";

/** Options of {@linkcode hashRounds}. */
export interface HashRoundsOptions {
  /** Host pid of the tree's root. */
  pid: number;
  /** The channel the pages go to. */
  channel: MigrationChannel;
  /** The predictor fed with every scan. */
  provider: PredictionProvider;
  /** Milliseconds between scans when a round finishes quicker. @default 50 */
  minRoundMs?: number;
}

/**
 * Content-hash pre-copy rounds.
 *
 * @example
 * ```ts
 * const source = hashRounds({ pid, channel, provider: new MovingWindowProvider(20, 3) });
 * let state = await source.begin();
 * const done = await source.round(undefined); // one round, nothing deferred
 * source.close();
 * ```
 */
export function hashRounds(options: HashRoundsOptions): RoundSource {
  const { pid, channel, provider, minRoundMs = 50 } = options;
  const tracker = createTracker({ pid, backend: "auto" });
  const features = new FeatureSampler(pid);
  const pidMap = pidNamespaceMap(pid);
  const mappings = new Map<number, Mapping>();
  const readers = new Map<number, PageReader>();
  let pending: PageSet = new Map();
  let lastScan = 0;
  const absorb = (scan: ScanResult) => {
    for (const id of scan.removed) mappings.delete(id);
    for (const m of scan.added) mappings.set(m.id, m);
    for (const p of scan.pids) if (!pidMap.has(p)) refreshPidMap(pid, pidMap);
  };
  const state = (residentPages: number): RoundState => ({
    pending,
    pendingPages: pageSetSize(pending),
    residentPages,
  });
  return {
    name: "hash",
    begin() {
      const scan = tracker.scan();
      lastScan = performance.now();
      // The baseline brings the tree's mappings to the predictor; nothing is dirty yet.
      provider.observe({
        dirty: new Map(),
        intervalMs: 0,
        round: { ...scan, round: 0, features: features.sample(scan.pids) },
      });
      absorb(scan);
      pending = scan.dirty;
      return Promise.resolve(state(scan.residentPages));
    },
    async round(defer) {
      const toSend = defer ? subtractPages(pending, defer) : pending;
      const started = performance.now();
      const sent = await sendPageSet(channel, toSend, mappings, pidMap, readers);
      await channel.flush();
      const sendMs = performance.now() - started;
      const wait = minRoundMs - (performance.now() - lastScan);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const scan = tracker.scan();
      const now = performance.now();
      provider.observe({
        dirty: scan.dirty,
        intervalMs: now - lastScan,
        round: { ...scan, features: features.sample(scan.pids) },
      });
      lastScan = now;
      absorb(scan);
      pending = defer ? unionPages(scan.dirty, defer) : scan.dirty;
      const done: RoundDone = {
        ...state(scan.residentPages),
        sent,
        dirtied: pageSetSize(scan.dirty),
        sendMs,
        overheadMs: now - started - sendMs,
      };
      return done;
    },
    handoff: (): RoundHandoff => ({ pidMap }),
    close() {
      for (const r of readers.values()) r.close();
      tracker.close();
    },
  };
}

/** Send the pages of `set` (by mapping) and return how many were sent. */
async function sendPageSet(
  channel: MigrationChannel,
  set: PageSet,
  mappings: Map<number, Mapping>,
  pidMap: Map<number, number>,
  readers: Map<number, PageReader>,
): Promise<number> {
  const byPid = new Map<number, number[]>();
  for (const [id, pages] of set) {
    const m = mappings.get(id);
    if (!m) continue;
    let list = byPid.get(m.pid);
    if (!list) byPid.set(m.pid, list = []);
    for (const p of pages) list.push(m.start + p * 4096);
  }
  let sent = 0;
  for (const [pid, addresses] of byPid) {
    const nsPid = pidMap.get(pid);
    if (nsPid === undefined) continue;
    let reader = readers.get(pid);
    if (!reader) {
      try {
        reader = new PageReader(pid);
      } catch {
        continue; // exited
      }
      readers.set(pid, reader);
    }
    addresses.sort((a, b) => a - b);
    sent += await sendLivePages(channel, reader, nsPid, addresses);
  }
  return sent;
}

function refreshPidMap(root: number, map: Map<number, number>): void {
  for (const [host, ns] of pidNamespaceMap(root)) map.set(host, ns);
}
