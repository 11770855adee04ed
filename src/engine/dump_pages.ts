/**
 * Sending the pages of a CRIU dump: stream a `pages-N.img`, hash each page once, and send the
 * pages whose hash differs from what the destination holds. Shared by every final phase and the
 * pre-dump round source.
 *
 * @module
 */
import type { MigrationChannel } from "./channel.ts";
import { BATCH_PAGES, pageHashBytes } from "./page_reader.ts";

const PAGE = 4096;

/** Pages read from a pages image per step of {@linkcode sendChangedPages}. */
const READ_PAGES = 2048;

/**
 * Stream a dumped pages file, hash each page, and send those whose hash differs from the
 * destination's (`held`, all when absent) and that `skip` does not reject; returns how many
 * were sent.
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
  held: ReadonlyMap<number, Uint8Array> | undefined,
  skip?: (addr: number, index: number) => boolean,
): Promise<number> {
  const f = await Deno.open(file, { read: true });
  const buf = new Uint8Array(READ_PAGES * PAGE);
  let sent = 0;
  try {
    for (let base = 0; base < addresses.length; base += READ_PAGES) {
      const count = Math.min(READ_PAGES, addresses.length - base);
      const data = buf.subarray(0, count * PAGE);
      let off = 0;
      while (off < data.length) {
        const n = f.readSync(data.subarray(off));
        if (n === null || n === 0) {
          throw new Error(`${file} ends early at page ${base + off / PAGE}`);
        }
        off += n;
      }
      const hashes = pageHashBytes(data);
      const changed: number[] = [];
      for (let i = 0; i < count; i++) {
        if (skip?.(addresses[base + i], base + i)) continue;
        const have = held?.get(addresses[base + i]);
        if (!have || !sameHash(have, hashes, i * 16)) changed.push(i);
      }
      for (let i = 0; i < changed.length; i += BATCH_PAGES) {
        const idx = changed.slice(i, i + BATCH_PAGES);
        const batch = new Uint8Array(idx.length * PAGE);
        const h = new Uint8Array(idx.length * 16);
        idx.forEach((k, n) => {
          batch.set(data.subarray(k * PAGE, (k + 1) * PAGE), n * PAGE);
          h.set(hashes.subarray(k * 16, k * 16 + 16), n * 16);
        });
        await channel.sendPages({
          pid,
          addresses: Float64Array.from(idx.map((k) => addresses[base + k])),
          data: batch,
          hashes: h,
        });
      }
      sent += changed.length;
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

/** The destination's page hashes of every pid in `pids` (ns pid → address → hash). */
export async function heldHashes(
  channel: MigrationChannel,
  pids: Iterable<number>,
): Promise<Map<number, Map<number, Uint8Array>>> {
  const out = new Map<number, Map<number, Uint8Array>>();
  for (const pid of new Set(pids)) out.set(pid, await channel.remoteHashes(pid));
  return out;
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
