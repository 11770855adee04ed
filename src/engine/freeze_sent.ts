/**
 * The pages a freeze sends, recorded as they go (with the hashes they travel with), so that the
 * manifest's chunk digests and exact pages are brought up to date from them without a lookup
 * per page in the ledger; and the runs of pages a final pagemap restores.
 *
 * @example
 * ```ts
 * const sent = new SentRecorder(ctx.channel);
 * await sendLivePages(sent, reader, pid, changed); // through the recorder
 * const pages = sent.of(pid); // ascending addresses and their hashes
 * ```
 *
 * @module
 */
import { inPagesFile, type Pagemap } from "../criu/images/mod.ts";
import type { PageBatch } from "./channel.ts";
import { ForwardingChannel } from "./forwarding_channel.ts";
import type { Run, SentPages } from "./manifest_digest.ts";

const PAGE = 4096;
const HASH = 16;

/** A channel that forwards everything and records the page batches sent through it. */
export class SentRecorder extends ForwardingChannel {
  readonly #batches = new Map<number, { addresses: ArrayLike<number>; hashes: Uint8Array }[]>();

  override async sendPages(batch: PageBatch): Promise<void> {
    const hashes = await this.forwardHashed(batch);
    let list = this.#batches.get(batch.pid);
    if (!list) this.#batches.set(batch.pid, list = []);
    list.push({ addresses: batch.addresses, hashes });
  }

  /** The pages of `pid` sent so far, ascending; of a page sent twice, the last send. */
  of(pid: number): SentPages {
    const batches = this.#batches.get(pid) ?? [];
    const at = new Map<number, [number, number]>();
    batches.forEach((b, n) => {
      for (let i = 0; i < b.addresses.length; i++) at.set(b.addresses[i], [n, i]);
    });
    const addresses = [...at.keys()].sort((a, b) => a - b);
    const hashes = new Uint8Array(addresses.length * HASH);
    addresses.forEach((a, k) => {
      const [n, i] = at.get(a)!;
      hashes.set(batches[n].hashes.subarray(i * HASH, (i + 1) * HASH), k * HASH);
    });
    return { addresses, hashes };
  }
}

/**
 * The runs of pages a pagemap keeps in its pages file (present, not in a parent), merged.
 *
 * @example
 * ```ts
 * storedRuns({ pagesId: 1, entries: [{ vaddr: 0x1000, nrPages: 2, flags: 2 }] }); // [[0x1000, 2]]
 * ```
 */
export function storedRuns(pagemap: Pagemap): Run[] {
  const runs: [number, number][] = [];
  for (const e of pagemap.entries) {
    if (!inPagesFile(e) || e.nrPages === 0) continue;
    const last = runs[runs.length - 1];
    if (last && e.vaddr === last[0] + last[1] * PAGE) last[1] += e.nrPages;
    else runs.push([e.vaddr, e.nrPages]);
  }
  return runs;
}
