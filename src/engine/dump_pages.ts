/**
 * Sending the pages of a CRIU dump: stream a `pages-N.img`, hash each page once, and send the
 * pages whose hash differs from what the destination holds. Shared by every final phase and the
 * pre-dump round source.
 *
 * @module
 */
import type { MigrationChannel } from "./channel.ts";
import { pageHashes } from "../native/page_hash.ts";
import { covers, shmemAddress, type ShmemMapping } from "../criu/images/mod.ts";
import type { HeldPages, PageLedger } from "./ledger.ts";
import type { ManifestBuilder } from "./manifest.ts";
import { BATCH_PAGES } from "./page_reader.ts";

const PAGE = 4096;

/** Pages read from a pages image per step of {@linkcode sendChangedPages}. */
const READ_PAGES = 2048;

/**
 * Stream a dumped pages file, hash each page (once), record every hash in `manifest`, and send
 * those whose hash differs from the destination's (`held`: the source's ledger; all when absent)
 * and that `skip` does not reject; returns how many were sent.
 *
 * @example
 * ```ts
 * const sent = await sendChangedPages(channel, 1, [0x400000], "/dev/shm/d/pages-1.img", undefined);
 * ```
 */
export async function sendChangedPages(
  channel: MigrationChannel,
  pid: number,
  addresses: number[],
  file: string,
  held: HeldPages | undefined,
  skip?: (addr: number, index: number) => boolean,
  manifest?: Pick<ManifestBuilder, "add">,
): Promise<number> {
  const f = await Deno.open(file, { read: true });
  const buf = new Uint8Array(READ_PAGES * PAGE);
  let sent = 0;
  try {
    for (let base = 0; base < addresses.length; base += READ_PAGES) {
      const count = Math.min(READ_PAGES, addresses.length - base);
      const data = buf.subarray(0, count * PAGE);
      readChunk(f, data, file, base);
      const hashes = pageHashes(data);
      manifest?.add("process", pid, addresses.slice(base, base + count), hashes);
      const changed: number[] = [];
      for (let i = 0; i < count; i++) {
        if (skip?.(addresses[base + i], base + i)) continue;
        const have = held?.get(addresses[base + i]);
        if (!have || !sameHash(have, hashes, i * 16)) changed.push(i);
      }
      const at = changed.map((k) => addresses[base + k]);
      sent += await sendPicked(channel, pid, { index: changed, addresses: at }, data, hashes);
    }
  } finally {
    f.close();
  }
  return sent;
}

/** Whether the 16-byte hash `a` equals the one at byte `at` of `all`. */
export function sameHash(a: Uint8Array, all: Uint8Array, at: number): boolean {
  for (let i = 0; i < 16; i++) if (a[i] !== all[at + i]) return false;
  return true;
}

/** CRIU dump options for a TCP mode. */
export function tcpDumpOptions(tcp: "close" | "established" | undefined): {
  tcpClose?: boolean;
  tcpEstablished?: boolean;
  networkLock?: "nftables";
} {
  if (tcp === "close") return { tcpClose: true };
  if (tcp === "established") return { tcpEstablished: true, networkLock: "nftables" };
  return {};
}

/** Restore request fields for a TCP mode. */
export function tcpRestoreRequest(tcp: "close" | "established" | undefined): {
  tcpClose?: boolean;
  tcpEstablished?: boolean;
} {
  if (tcp === "close") return { tcpClose: true };
  if (tcp === "established") return { tcpEstablished: true };
  return {};
}

/** A shared-memory object of a dump, as {@linkcode sendShmemPages} reads it. */
export interface ShmemObject {
  /** Its id (`pagemap-shmem-<id>.img`). */
  id: number;
  /** Offset of each page of its pages file, in file order. */
  offsets: number[];
}

/**
 * Stream a shared-memory object's pages file, hash each page once (recorded in `manifest` as
 * the object's), and send as process pages what the destination lacks. A page is held when,
 * under the first of `candidates` (its mappings, in the order the destination tries them) for
 * which the ledger has it, the hash is current; otherwise it is sent under the first mapping
 * that covers it. The destination then finds every page under the first mapping it holds it
 * under. Returns the pages sent.
 */
export async function sendShmemPages(
  channel: MigrationChannel,
  obj: ShmemObject,
  file: string,
  candidates: ShmemMapping[],
  ledger: PageLedger,
  manifest?: Pick<ManifestBuilder, "add">,
): Promise<number> {
  const f = await Deno.open(file, { read: true });
  const buf = new Uint8Array(READ_PAGES * PAGE);
  let sent = 0;
  try {
    for (let base = 0; base < obj.offsets.length; base += READ_PAGES) {
      const count = Math.min(READ_PAGES, obj.offsets.length - base);
      const data = buf.subarray(0, count * PAGE);
      readChunk(f, data, file, base);
      const hashes = pageHashes(data);
      manifest?.add("shmem", obj.id, obj.offsets.slice(base, base + count), hashes);
      const byPid = new Map<number, { index: number[]; addresses: number[] }>();
      for (let i = 0; i < count; i++) {
        const o = obj.offsets[base + i];
        const mine = candidates.filter((m) => covers(m, o));
        let current = false;
        for (const m of mine) {
          const have = ledger.held(m.pid).get(shmemAddress(m, o));
          if (have) {
            current = sameHash(have, hashes, i * 16);
            break;
          }
        }
        if (current) continue;
        const to = mine[0];
        let list = byPid.get(to.pid);
        if (!list) byPid.set(to.pid, list = { index: [], addresses: [] });
        list.index.push(i);
        list.addresses.push(shmemAddress(to, o));
      }
      for (const [pid, list] of byPid) {
        sent += await sendPicked(channel, pid, list, data, hashes);
      }
    }
  } finally {
    f.close();
  }
  return sent;
}

/** Fill `data` with the next pages of `file` (open as `f`); `base`: the first one's page index. */
function readChunk(f: Deno.FsFile, data: Uint8Array, file: string, base: number): void {
  let off = 0;
  while (off < data.length) {
    const n = f.readSync(data.subarray(off));
    if (n === null || n === 0) {
      throw new Error(`${file} ends early at page ${base + off / PAGE}`);
    }
    off += n;
  }
}

/**
 * Send pages `picked.index` of a chunk (`data`, with its `hashes`) as `pid`'s, at
 * `picked.addresses` (one each), in batches of {@linkcode BATCH_PAGES}. Returns the pages sent.
 */
async function sendPicked(
  channel: MigrationChannel,
  pid: number,
  picked: { index: number[]; addresses: number[] },
  data: Uint8Array,
  hashes: Uint8Array,
): Promise<number> {
  for (let at = 0; at < picked.index.length; at += BATCH_PAGES) {
    const idx = picked.index.slice(at, at + BATCH_PAGES);
    const batch = new Uint8Array(idx.length * PAGE);
    const h = new Uint8Array(idx.length * 16);
    idx.forEach((k, n) => {
      batch.set(data.subarray(k * PAGE, (k + 1) * PAGE), n * PAGE);
      h.set(hashes.subarray(k * 16, k * 16 + 16), n * 16);
    });
    await channel.sendPages({
      pid,
      addresses: Float64Array.from(picked.addresses.slice(at, at + BATCH_PAGES)),
      data: batch,
      hashes: h,
    });
  }
  return picked.index.length;
}
