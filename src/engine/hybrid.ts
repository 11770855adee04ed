/**
 * The `hybrid` engine: delta pre-copy rounds while the tree runs, then a lazy final. At the
 * freeze, CRIU dumps with `--lazy-pages` (memory stays in its page server, nothing is written);
 * u2cm reads the frozen tree's lazy pages, and every page the destination already holds with the
 * same hash is turned into an eager page in the pagemap, rebuilt there from its page store. Only
 * pages that changed since they were sent stay lazy and are fetched after the restore. Downtime
 * is then independent of how much the last round left dirty.
 *
 * @module
 */
import { pageHashes } from "../native/page_hash.ts";
import {
  encodePagemap,
  type Pagemap,
  type PagemapEntry,
  PE_LAZY,
  PE_PARENT,
  PE_PRESENT,
  readDumpDir,
} from "../criu/images/mod.ts";
import { sendChangedPages } from "./delta.ts";
import { imageFilesToSend } from "./files.ts";
import { type HeldPages, LedgerChannel, PageLedger } from "./ledger.ts";
import { lazyFinal } from "./lazy.ts";
import { PageReader } from "./page_reader.ts";
import { precopy } from "./precopy.ts";
import { isAlive, treePids } from "../tracker/proc.ts";
import { type CpuThrottle, createThrottle } from "./throttle.ts";
import { type MigrationEngine, MigrationError, outcomeOf } from "./types.ts";

const PAGE = 4096;

/** The hybrid engine. */
export const hybridEngine: MigrationEngine = {
  name: "hybrid",
  migrate: async (ctx) => {
    const started = performance.now();
    let throttle: CpuThrottle | undefined;
    try {
      throttle = ctx.throttle === false
        ? undefined
        : createThrottle(ctx.id, () => treePids(ctx.pid));
    } catch {
      throttle = undefined;
    }
    // Every page sent is recorded with its hash: the final phase compares against this ledger.
    const ledger = new PageLedger();
    ctx = { ...ctx, channel: new LedgerChannel(ctx.channel, ledger) };
    let pre;
    try {
      ctx.onPhase?.("precopy");
      pre = await precopy(ctx, throttle);
    } catch (e) {
      await ctx.channel.abort(`pre-copy failed: ${(e as Error).message}`).catch(() => {});
      throw new MigrationError(
        `pre-copy failed: ${(e as Error).message}`,
        "precopy",
        isAlive(ctx.pid),
      );
    } finally {
      throttle?.release();
    }
    const hostOf = new Map<number, number>();
    for (const [host, ns] of pre.pidMap) if (!hostOf.has(ns)) hostOf.set(ns, host);
    let lazyPages = 0;
    const final = await lazyFinal(ctx, {
      engine: "hybrid",
      prepare: async (_dump, dir) => {
        const images = await readDumpDir(dir, true);
        let pages = 0;
        for (const mem of images.memory) {
          const held = ledger.held(mem.pid);
          // Eager pages CRIU wrote to the file (non-anonymous memory): send what differs.
          pages += await sendChangedPages(
            ctx.channel,
            mem.pid,
            mem.addresses,
            `${dir}/${mem.pagesFile}`,
            held,
          );
          const host = hostOf.get(mem.pid);
          const rewritten = host === undefined
            ? mem.pagemap
            : eagerWhereHeld(mem.pagemap, host, held);
          await Deno.writeFile(`${dir}/${mem.pagemapFile}`, encodePagemap(rewritten));
          for (const e of rewritten.entries) if (e.flags & PE_LAZY) lazyPages += e.nrPages;
        }
        for (const name of await imageFilesToSend(dir, true)) {
          await ctx.channel.sendFile(name, await Deno.readFile(`${dir}/${name}`));
        }
        return pages;
      },
    });
    return { ...outcomeOf("hybrid", ctx, started, pre.rounds, final), lazyPages };
  },
};

/**
 * Rewrite a lazy dump's pagemap: within each lazy run, pages whose current contents (read from
 * the frozen process `hostPid`) hash equal to what the destination holds become eager
 * (PE_PRESENT only, rebuilt from the store); the rest stay lazy.
 */
export function eagerWhereHeld(
  pagemap: Pagemap,
  hostPid: number,
  held: HeldPages,
): Pagemap {
  const reader = new PageReader(hostPid);
  const entries: PagemapEntry[] = [];
  try {
    for (const e of pagemap.entries) {
      // A lazy dump marks the runs it left with its page server PE_LAZY (without PE_PRESENT).
      const lazy = (e.flags & PE_LAZY) !== 0 && (e.flags & PE_PARENT) === 0;
      if (!lazy) {
        entries.push(e);
        continue;
      }
      const eager = eagerMask(reader, e, held);
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
  } finally {
    reader.close();
  }
  return { ...pagemap, entries };
}

function eagerMask(reader: PageReader, e: PagemapEntry, held: HeldPages): Uint8Array {
  const mask = new Uint8Array(e.nrPages);
  const step = 2048;
  const buf = new Uint8Array(step * PAGE);
  for (let base = 0; base < e.nrPages; base += step) {
    const n = Math.min(step, e.nrPages - base);
    const addrs = Array.from({ length: n }, (_, k) => e.vaddr + (base + k) * PAGE);
    const data = buf.subarray(0, n * PAGE);
    const ok = reader.read(addrs, data);
    const hashes = pageHashes(data);
    for (let k = 0; k < n; k++) {
      const have = held.get(addrs[k]);
      if (!ok[k] || !have) continue;
      let same = true;
      for (let b = 0; b < 16 && same; b++) same = have[b] === hashes[k * 16 + b];
      mask[base + k] = same ? 1 : 0;
    }
  }
  return mask;
}
