/**
 * Reading page contents of a live (or stopped) process through /proc/PID/mem, one read per run
 * of contiguous pages, and sending them to the destination in bounded batches with their hashes.
 *
 * @module
 */
import { pageHashes } from "../native/page_hash.ts";
import type { MigrationChannel } from "./channel.ts";

/** Pages per batch sent (the peer protocol's frame limit). */
export const BATCH_PAGES = 256;
const PAGE = 4096;

/** An open /proc/PID/mem. */
export class PageReader {
  readonly #file: Deno.FsFile;

  /** @param pid host pid of the process to read */
  constructor(readonly pid: number) {
    this.#file = Deno.openSync(`/proc/${pid}/mem`, { read: true });
  }

  /**
   * Read the pages at `addresses` (sorted) into `out`; returns a mask with 1 for each page read
   * (0: unreadable now, e.g. unmapped meanwhile).
   */
  read(addresses: ArrayLike<number>, out: Uint8Array): Uint8Array {
    const ok = new Uint8Array(addresses.length);
    let i = 0;
    while (i < addresses.length) {
      let j = i + 1;
      while (j < addresses.length && addresses[j] === addresses[j - 1] + PAGE) j++;
      const run = out.subarray(i * PAGE, j * PAGE);
      const got = this.#readRun(addresses[i], run);
      for (let k = 0; k < Math.floor(got / PAGE); k++) ok[i + k] = 1;
      if (got < run.length && got % PAGE === 0 && j - i > 1) {
        // A hole inside the run: retry the rest page by page.
        for (let k = i + got / PAGE + 1; k < j; k++) {
          if (this.#readRun(addresses[k], out.subarray(k * PAGE, (k + 1) * PAGE)) === PAGE) {
            ok[k] = 1;
          }
        }
      }
      i = j;
    }
    return ok;
  }

  #readRun(addr: number, into: Uint8Array): number {
    let done = 0;
    try {
      this.#file.seekSync(addr, Deno.SeekMode.Start);
      while (done < into.length) {
        const n = this.#file.readSync(into.subarray(done));
        if (n === null || n === 0) break;
        done += n;
      }
    } catch { /* EIO: unmapped or unreadable */ }
    return done - (done % PAGE);
  }

  /** Close the file. */
  close(): void {
    this.#file.close();
  }
}

/**
 * Read `addresses` (sorted) of host pid `reader.pid` and send them as pid `nsPid` in batches.
 * Returns the pages sent.
 */
export async function sendLivePages(
  channel: MigrationChannel,
  reader: PageReader,
  nsPid: number,
  addresses: number[],
): Promise<number> {
  let sent = 0;
  const buf = new Uint8Array(BATCH_PAGES * PAGE);
  for (let i = 0; i < addresses.length; i += BATCH_PAGES) {
    const chunk = addresses.slice(i, i + BATCH_PAGES);
    const data = buf.subarray(0, chunk.length * PAGE);
    const ok = reader.read(chunk, data);
    const keep: number[] = [];
    for (let k = 0; k < chunk.length; k++) if (ok[k]) keep.push(k);
    if (keep.length === 0) continue;
    let pages = data;
    let addrs = Float64Array.from(chunk);
    if (keep.length !== chunk.length) {
      pages = new Uint8Array(keep.length * PAGE);
      keep.forEach((k, n) => pages.set(data.subarray(k * PAGE, (k + 1) * PAGE), n * PAGE));
      addrs = Float64Array.from(keep.map((k) => chunk[k]));
    } else {
      pages = data.slice();
    }
    await channel.sendPages({
      pid: nsPid,
      addresses: addrs,
      data: pages,
      hashes: pageHashes(pages),
    });
    sent += addrs.length;
  }
  return sent;
}
