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

const HASH = 16;
const READ_PAGES = 2048;

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
    for (const e of pagemap.entries) {
      if ((e.flags & PE_PARENT) !== 0) continue;
      const lazy = (e.flags & PE_LAZY) !== 0 && (e.flags & PE_PRESENT) === 0;
      if (!lazy && (e.flags & PE_PRESENT) === 0) continue;
      const run = Array.from({ length: e.nrPages }, (_, i) => e.vaddr + i * PAGE_SIZE);
      addresses.push(...run);
      if (lazy) {
        if (host === undefined) throw new Error(`pid ${mem.pid} of the dump has no host pid`);
        parts.push(await hashLive(host, run, mem.pid, allowed.get(mem.pid) ?? []));
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
 * Read pages `addresses` of the stopped process `host` and hash them (a page touching `areas`
 * with the bytes inside them zeroed).
 */
function hashLive(
  host: number,
  addresses: number[],
  pid: number,
  areas: Area[],
): Promise<Uint8Array> {
  const reader = new PageReader(host);
  const out = new Uint8Array(addresses.length * HASH);
  const buf = new Uint8Array(READ_PAGES * PAGE_SIZE);
  try {
    for (let base = 0; base < addresses.length; base += READ_PAGES) {
      const addrs = addresses.slice(base, base + READ_PAGES);
      const data = buf.subarray(0, addrs.length * PAGE_SIZE);
      const ok = reader.read(addrs, data);
      const bad = ok.findIndex((x) => !x);
      if (bad >= 0) {
        throw new Error(
          `pid ${pid}: page 0x${addrs[bad].toString(16)} of the frozen tree cannot be read`,
        );
      }
      out.set(pageHashes(data), base * HASH);
      for (let i = 0; i < addrs.length; i++) {
        const on = areasOn(areas, addrs[i]);
        if (on.length === 0) continue;
        const page = data.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
        out.set(maskedPageHash(page, addrs[i], on), (base + i) * HASH);
      }
    }
  } finally {
    reader.close();
  }
  return Promise.resolve(out);
}
