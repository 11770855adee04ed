/**
 * The pre-dump round source (CRIU's own pre-copy, soft-dirty hosts): each round's scan is a
 * `criu pre-dump --track-mem` chained to the previous one (`--prev-images-dir`), which writes the
 * pages dirtied since. The pages go to the destination in the next round, except those the policy
 * defers: they stay pending, with the pre-dump image that holds their latest contents, so the
 * predictor, deferral and throttling work exactly as with content-hash pre-copy. The final dump's
 * parent is the last pre-dump; the pages still pending then are sent before the restore.
 *
 * @module
 */
import { type Pagemap, PE_LAZY, PE_PARENT, PE_PRESENT, readDumpDir } from "../criu/images/mod.ts";
import { criuPreDump } from "../criu/run.ts";
import { FeatureSampler } from "../history/features.ts";
import type { PredictionProvider } from "../predict/provider.ts";
import { MappingTable } from "../tracker/mappings.ts";
import { pidNamespaceMap, readMaps } from "../tracker/proc.ts";
import type { Mapping, PageSet } from "../tracker/types.ts";
import type { MigrationChannel } from "./channel.ts";
import { pageHashes } from "../native/page_hash.ts";
import type { RoundDone, RoundSource, RoundState } from "./parts.ts";

const PAGE = 4096;

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

/** Where the latest contents of a pending page are: a pages file and its page index there. */
interface PageAt {
  file: string;
  index: number;
}

/** Options of {@linkcode predumpRounds}. */
export interface PredumpRoundsOptions {
  /** Host pid of the tree's root. */
  pid: number;
  /** The channel the pages go to. */
  channel: MigrationChannel;
  /** The predictor fed with every pre-dump. */
  provider: PredictionProvider;
  /** Directory the chain's images go to (`pre-<r>/`). */
  workDir: string;
  /** Milliseconds between pre-dumps when a round finishes quicker. @default 50 */
  minRoundMs?: number;
  /** Cancels a pre-dump. */
  signal?: AbortSignal;
}

/**
 * CRIU pre-dump chain rounds.
 *
 * @example
 * ```ts
 * const source = predumpRounds({ pid, channel, provider, workDir: "/dev/shm/u2cm-m1" });
 * await source.begin(); // pre-dump 0: every resident page pending
 * ```
 */
export function predumpRounds(options: PredumpRoundsOptions): RoundSource {
  const { pid, channel, provider, workDir, minRoundMs = 50 } = options;
  const features = new FeatureSampler(pid);
  const pidMap = pidNamespaceMap(pid);
  const tables = new Map<number, MappingTable>();
  let nextId = 1;
  /** ns pid → address → where its latest unsent contents are. */
  const pending = new Map<number, Map<number, PageAt>>();
  let r = 0;
  let lastScan = 0;
  let pendingSet: PageSet = new Map();

  /** Pre-dump round `r`, record its pages as pending, feed the predictor; the dirty count. */
  const scan = async (): Promise<{ dirtied: number; resident: number }> => {
    const link = chainLink(workDir, r);
    await Deno.mkdir(link.dir, { recursive: true });
    await criuPreDump({ pid, ...link, trackMem: true, signal: options.signal });
    for (const [host, ns] of pidNamespaceMap(pid)) pidMap.set(host, ns);
    const { added, removed, mappings } = refreshMappings(tables, pidMap, () => nextId++);
    const images = await readDumpDir(link.dir);
    let dirtied = 0;
    const dirtyLists = new Map<number, number[]>();
    for (const mem of images.memory) {
      let at = pending.get(mem.pid);
      if (!at) pending.set(mem.pid, at = new Map());
      const file = `${link.dir}/${mem.pagesFile}`;
      mem.addresses.forEach((addr, index) => at.set(addr, { file, index }));
      dirtied += mem.addresses.length;
      addToPageSet(dirtyLists, mappings.get(mem.pid) ?? [], mem.addresses);
    }
    const dirty = toPageSet(dirtyLists);
    const now = performance.now();
    provider.observe({
      dirty: r === 0 ? new Map() : dirty,
      intervalMs: r === 0 ? 0 : now - lastScan,
      round: {
        round: r,
        added,
        removed,
        dirty: r === 0 ? new Map() : dirty,
        features: features.sample([...pidMap.keys()]),
      },
    });
    lastScan = now;
    r++;
    pendingSet = pendingPageSet(pending, mappings);
    return { dirtied, resident: r === 1 ? dirtied : residentOf(pidMap) };
  };
  const state = (resident: number): RoundState => ({
    pending: pendingSet,
    pendingPages: countPending(pending),
    residentPages: resident,
  });
  return {
    name: "predump",
    async begin() {
      const { resident } = await scan();
      return state(resident);
    },
    async round(defer) {
      const started = performance.now();
      const keep = deferredAddresses(defer, tables, pidMap);
      const sent = await sendPending(channel, pending, keep);
      await channel.flush();
      const sendMs = performance.now() - started;
      const wait = minRoundMs - (performance.now() - lastScan);
      if (wait > 0) await new Promise((res) => setTimeout(res, wait));
      const { dirtied, resident } = await scan();
      const done: RoundDone = {
        ...state(resident),
        sent,
        dirtied,
        sendMs,
        overheadMs: performance.now() - started - sendMs,
      };
      return done;
    },
    handoff: () => ({
      pidMap,
      parentDir: r > 0 ? `../${preDumpDirName(r - 1)}` : undefined,
      sendOwed: (ch) => sendPending(ch, pending, new Map()),
    }),
    close() {},
  };
}

/** Re-read every process's mappings; returns the changes and the mappings by ns pid. */
function refreshMappings(
  tables: Map<number, MappingTable>,
  pidMap: Map<number, number>,
  nextId: () => number,
): { added: Mapping[]; removed: number[]; mappings: Map<number, Mapping[]> } {
  const added: Mapping[] = [];
  const removed: number[] = [];
  const mappings = new Map<number, Mapping[]>();
  for (const [host, ns] of pidMap) {
    let table = tables.get(host);
    if (!table) tables.set(host, table = new MappingTable(host, nextId));
    const entries = readMaps(host);
    const change = entries ? table.update(entries) : { added: [], removed: table.clear() };
    added.push(...change.added);
    removed.push(...change.removed.map((m) => m.id));
    mappings.set(ns, table.current());
  }
  return { added, removed, mappings };
}

/** Add sorted `addresses` of one process to per-mapping page lists. */
export function addToPageSet(
  lists: Map<number, number[]>,
  mappings: Mapping[],
  addresses: number[],
): void {
  let m = 0;
  for (const addr of addresses) {
    while (m < mappings.length && mappings[m].end <= addr) m++;
    if (m >= mappings.length) break;
    const map = mappings[m];
    if (addr < map.start) continue;
    let list = lists.get(map.id);
    if (!list) lists.set(map.id, list = []);
    list.push((addr - map.start) / PAGE);
  }
}

function toPageSet(lists: Map<number, number[]>): PageSet {
  const set: PageSet = new Map();
  for (const [id, list] of lists) set.set(id, Uint32Array.from(list).sort());
  return set;
}

function pendingPageSet(
  pending: Map<number, Map<number, PageAt>>,
  mappings: Map<number, Mapping[]>,
): PageSet {
  const lists = new Map<number, number[]>();
  for (const [ns, at] of pending) {
    addToPageSet(lists, mappings.get(ns) ?? [], [...at.keys()].sort((a, b) => a - b));
  }
  return toPageSet(lists);
}

function countPending(pending: Map<number, Map<number, PageAt>>): number {
  let n = 0;
  for (const at of pending.values()) n += at.size;
  return n;
}

/** The deferred pages as ns pid → addresses. */
function deferredAddresses(
  defer: PageSet | undefined,
  tables: Map<number, MappingTable>,
  pidMap: Map<number, number>,
): Map<number, Set<number>> {
  const out = new Map<number, Set<number>>();
  if (!defer) return out;
  for (const [host, table] of tables) {
    const ns = pidMap.get(host);
    if (ns === undefined) continue;
    for (const m of table.current()) {
      const pages = defer.get(m.id);
      if (!pages) continue;
      let set = out.get(ns);
      if (!set) out.set(ns, set = new Set());
      for (const p of pages) set.add(m.start + p * PAGE);
    }
  }
  return out;
}

/** Send every pending page not in `keep` from the image holding it; returns how many. */
async function sendPending(
  channel: MigrationChannel,
  pending: Map<number, Map<number, PageAt>>,
  keep: Map<number, Set<number>>,
): Promise<number> {
  let sent = 0;
  for (const [ns, at] of pending) {
    const byFile = new Map<string, { addr: number; index: number }[]>();
    for (const [addr, loc] of at) {
      if (keep.get(ns)?.has(addr)) continue;
      let list = byFile.get(loc.file);
      if (!list) byFile.set(loc.file, list = []);
      list.push({ addr, index: loc.index });
    }
    for (const [file, list] of byFile) {
      list.sort((a, b) => a.index - b.index);
      sent += await sendFromFile(channel, ns, file, list);
      for (const { addr } of list) at.delete(addr);
    }
  }
  return sent;
}

async function sendFromFile(
  channel: MigrationChannel,
  pid: number,
  file: string,
  pages: { addr: number; index: number }[],
): Promise<number> {
  const f = await Deno.open(file, { read: true });
  try {
    for (let i = 0; i < pages.length; i += 256) {
      const part = pages.slice(i, i + 256);
      const data = new Uint8Array(part.length * PAGE);
      part.forEach((p, k) => {
        f.seekSync(p.index * PAGE, Deno.SeekMode.Start);
        const view = data.subarray(k * PAGE, (k + 1) * PAGE);
        for (let off = 0; off < PAGE;) {
          const n = f.readSync(view.subarray(off));
          if (!n) throw new Error(`${file} ends before page ${p.index}`);
          off += n;
        }
      });
      await channel.sendPages({
        pid,
        addresses: Float64Array.from(part, (p) => p.addr),
        data,
        hashes: pageHashes(data),
      });
    }
  } finally {
    f.close();
  }
  return pages.length;
}

function residentOf(pidMap: Map<number, number>): number {
  let n = 0;
  for (const host of pidMap.keys()) {
    try {
      n += Number(Deno.readTextFileSync(`/proc/${host}/statm`).split(" ")[1]);
    } catch { /* exited */ }
  }
  return n;
}
