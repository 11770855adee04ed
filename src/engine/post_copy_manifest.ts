/**
 * The page manifest of a post-copy final phase, taken while the lazy dump holds the tree
 * stopped: every page of every process (the eager ones with the hashes the ledger holds or
 * CRIU's pages file gives, the lazy ones read from the frozen tree and hashed) and every
 * shared-memory object (whose pages CRIU writes eagerly). A lazy page touching a thread's rseq
 * area or dead stack is hashed with those bytes zeroed (page_allowance.ts). The destination checks the eager
 * pages before it restores and each lazy page as it arrives (lazy_check.ts).
 *
 * @example
 * ```ts
 * const manifest = await postCopyManifest({ dir, images, hostOf, held: (pid) => ledger.held(pid) });
 * await channel.sendFile(MANIFEST_FILE, manifest.encode());
 * ```
 *
 * @module
 */
import {
  type DumpDir,
  PAGE_SIZE,
  type Pagemap,
  PE_LAZY,
  PE_PARENT,
  PE_PRESENT,
} from "../criu/images/mod.ts";
import { pageHashes } from "../native/page_hash.ts";
import type { HeldPages } from "./ledger.ts";
import { ManifestBuilder } from "./manifest.ts";
import { PageReader } from "./page_reader.ts";
import { allowedAreas, type Area, areasOn, maskedPageHash } from "./page_allowance.ts";
import { hashFrozenRuns, type PageRun, UnreadablePageError } from "./live_hashes.ts";

const HASH = 16;

/** Options of {@linkcode postCopyManifest}. */
export interface PostCopyManifestOptions {
  /** The lazy dump's directory. */
  dir: string;
  /** The dump as read (its pagemaps as CRIU wrote them). */
  images: DumpDir;
  /** The pagemap each process is restored with (after eager-where-held), by pid. */
  final: Map<number, Pagemap>;
  /** Host pid of each process (pid as CRIU names it). */
  hostOf: Map<number, number>;
  /**
   * What the destination holds of a process after the freeze's sends (every eager page's hash),
   * or undefined when the pages files travel whole (no pre-copy).
   */
  held?: (pid: number) => HeldPages;
}

/** Build the manifest; also returns how many pages stay lazy. */
export async function postCopyManifest(
  o: PostCopyManifestOptions,
): Promise<{ manifest: ManifestBuilder; lazyPages: number }> {
  const manifest = new ManifestBuilder();
  let lazyPages = 0;
  // A lazy page touching an area that may legitimately differ (page_allowance.ts) is hashed
  // with those bytes zeroed; the destination's relay hashes what arrives the same way.
  const allowed = allowedAreas(o.images);
  for (const mem of o.images.memory) {
    const pagemap = o.final.get(mem.pid) ?? mem.pagemap;
    const host = o.hostOf.get(mem.pid);
    const fileHashes = o.held ? undefined : await hashFile(`${o.dir}/${mem.pagesFile}`);
    const fileIndex = new Map(mem.addresses.map((a, i) => [a, i]));
    const held = o.held?.(mem.pid);
    const addresses: number[] = [];
    const parts: Uint8Array[] = [];
    // The lazy runs are read from the frozen tree and hashed all at once, on every core; their
    // places among the parts are filled in after.
    const lazyRuns: PageRun[] = [];
    const lazyParts: number[] = [];
    for (const e of pagemap.entries) {
      if ((e.flags & PE_PARENT) !== 0) continue;
      const lazy = (e.flags & PE_LAZY) !== 0 && (e.flags & PE_PRESENT) === 0;
      if (!lazy && (e.flags & PE_PRESENT) === 0) continue;
      const run = Array.from({ length: e.nrPages }, (_, i) => e.vaddr + i * PAGE_SIZE);
      for (const a of run) addresses.push(a);
      if (lazy) {
        lazyRuns.push({ vaddr: e.vaddr, nrPages: e.nrPages });
        lazyParts.push(parts.length);
        parts.push(new Uint8Array(0));
        lazyPages += run.length;
        continue;
      }
      const out = new Uint8Array(run.length * HASH);
      for (let i = 0; i < run.length; i++) {
        const h = held ? held.get(run[i]) : fileSlice(fileHashes!, fileIndex.get(run[i]));
        if (!h) throw new Error(`pid ${mem.pid}: page 0x${run[i].toString(16)} has no hash`);
        out.set(h, i * HASH);
      }
      parts.push(out);
    }
    if (lazyRuns.length > 0) {
      if (host === undefined) throw new Error(`pid ${mem.pid} of the dump has no host pid`);
      const live = await hashLive(host, lazyRuns, mem.pid, allowed.get(mem.pid) ?? []);
      let at = 0;
      lazyRuns.forEach((r, k) => {
        parts[lazyParts[k]] = live.subarray(at, at + r.nrPages * HASH);
        at += r.nrPages * HASH;
      });
    }
    const hashes = new Uint8Array(addresses.length * HASH);
    let at = 0;
    for (const p of parts) {
      hashes.set(p, at);
      at += p.length;
    }
    manifest.add("process", mem.pid, addresses, hashes);
  }
  for (const obj of o.images.shmem) {
    manifest.add("shmem", obj.id, obj.offsets, await hashFile(`${o.dir}/${obj.pagesFile}`));
  }
  return { manifest, lazyPages };
}

function fileSlice(hashes: Uint8Array, i: number | undefined): Uint8Array | undefined {
  return i === undefined ? undefined : hashes.subarray(i * HASH, (i + 1) * HASH);
}

async function hashFile(file: string): Promise<Uint8Array> {
  const data = await Deno.readFile(file).catch(() => new Uint8Array(0));
  return pageHashes(data.subarray(0, data.length - (data.length % PAGE_SIZE)));
}

/**
 * Hash the pages of `runs` of the stopped process `host` (on every core, in the shim); a page
 * touching `areas` is hashed again with the bytes inside them zeroed.
 */
async function hashLive(
  host: number,
  runs: PageRun[],
  pid: number,
  areas: Area[],
): Promise<Uint8Array> {
  const out = await hashFrozenRuns(host, runs).catch((e) => {
    if (!(e instanceof UnreadablePageError)) throw e;
    throw new Error(
      `pid ${pid}: page 0x${e.address.toString(16)} of the frozen tree cannot be read`,
    );
  });
  if (areas.length === 0) return out;
  const touched: { index: number; address: number; on: Area[] }[] = [];
  const seen = new Set<number>();
  let index = 0;
  for (const r of runs) {
    for (const [start, end] of areas) {
      // The pages of this run that an allowed area touches.
      const lo = Math.max(r.vaddr, start - (start % PAGE_SIZE));
      const hi = Math.min(r.vaddr + r.nrPages * PAGE_SIZE, end);
      for (let p = lo; p < hi; p += PAGE_SIZE) {
        const i = index + (p - r.vaddr) / PAGE_SIZE;
        if (seen.has(i)) continue;
        seen.add(i);
        touched.push({ index: i, address: p, on: areasOn(areas, p) });
      }
    }
    index += r.nrPages;
  }
  if (touched.length === 0) return out;
  const reader = new PageReader(host);
  try {
    const data = new Uint8Array(touched.length * PAGE_SIZE);
    const ok = reader.read(touched.map((t) => t.address), data);
    const bad = ok.findIndex((x) => !x);
    if (bad >= 0) {
      throw new Error(
        `pid ${pid}: page 0x${touched[bad].address.toString(16)} of the frozen tree cannot be read`,
      );
    }
    touched.forEach((t, k) => {
      const page = data.subarray(k * PAGE_SIZE, (k + 1) * PAGE_SIZE);
      out.set(maskedPageHash(page, t.address, t.on), t.index * HASH);
    });
  } finally {
    reader.close();
  }
  return out;
}
