/**
 * The source's ledger of what the destination holds: for every page it sent, the hash it
 * computed when it read the page (newest send wins, as in the destination's store). The final
 * phase compares the dump's pages against it instead of fetching the destination's hash list
 * back over the wire; the final page manifest then proves the ledger right (a page the ledger
 * wrongly believes held fails the destination's image check, and the source resumes).
 *
 * @example
 * ```ts
 * import { LedgerChannel, PageLedger } from "./ledger.ts";
 * const ledger = new PageLedger();
 * const channel = new LedgerChannel(ctx.channel, ledger); // every page sent is recorded
 * const held = ledger.held(1); // address → 16-byte hash the destination holds for ns pid 1
 * ```
 *
 * @module
 */
import type { MigrationChannel, PageBatch } from "./channel.ts";
import { ForwardingChannel } from "./forwarding_channel.ts";

const HASH = 16;

/** Address → 16-byte hash of the pages of one process the destination holds. */
export type HeldPages = ReadonlyMap<number, Uint8Array>;

/** What the destination holds, as the source sent it: ns pid → address → hash. */
export class PageLedger {
  readonly #pids = new Map<number, Map<number, Uint8Array>>();

  /** Record that pages `addresses` of ns pid `pid` with these hashes (16 bytes each) were sent. */
  record(pid: number, addresses: ArrayLike<number>, hashes: Uint8Array): void {
    if (hashes.length < addresses.length * HASH) {
      throw new RangeError(`${addresses.length} pages but ${hashes.length} bytes of hashes`);
    }
    let held = this.#pids.get(pid);
    if (!held) this.#pids.set(pid, held = new Map());
    const copy = hashes.slice(0, addresses.length * HASH);
    for (let i = 0; i < addresses.length; i++) {
      held.set(addresses[i], copy.subarray(i * HASH, (i + 1) * HASH));
    }
  }

  /** The pages of ns pid `pid` the destination holds (empty when none). */
  held(pid: number): HeldPages {
    return this.#pids.get(pid) ?? new Map();
  }

  /** Pages recorded in all. */
  get pages(): number {
    let n = 0;
    for (const m of this.#pids.values()) n += m.size;
    return n;
  }
}

/**
 * A channel that records every page batch in a {@linkcode PageLedger} as it forwards it (the
 * batch's hashes, computed here once when the sender gave none, travel with it).
 */
export class LedgerChannel extends ForwardingChannel {
  /**
   * @param inner the channel to the destination
   * @param ledger where the sent pages are recorded
   */
  constructor(inner: MigrationChannel, readonly ledger: PageLedger) {
    super(inner);
  }

  override async sendPages(batch: PageBatch): Promise<void> {
    const hashes = await this.forwardHashed(batch);
    this.ledger.record(batch.pid, batch.addresses, hashes);
  }
}
