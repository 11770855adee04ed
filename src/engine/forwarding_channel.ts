/**
 * A migration channel that forwards every call to the channel it wraps: the base of the wrappers
 * that watch what passes (the ledger's {@linkcode LedgerChannel}, the freeze's SentRecorder). A
 * wrapper overrides what it watches and forwards the rest, post-copy's report and the counters
 * included.
 *
 * @example
 * ```ts
 * class Counting extends ForwardingChannel {
 *   pages = 0;
 *   override async sendPages(batch: PageBatch): Promise<void> {
 *     await this.forwardHashed(batch);
 *     this.pages += batch.addresses.length;
 *   }
 * }
 * ```
 *
 * @module
 */
import { pageHashes } from "../native/page_hash.ts";
import type { MigrationChannel, PageBatch, RestoreRequest, RestoreResult } from "./channel.ts";
import type { LazyCheckReport } from "./contract.ts";

/** Forwards every call to `inner`. */
export class ForwardingChannel implements MigrationChannel {
  /** @param inner the channel to forward to */
  constructor(readonly inner: MigrationChannel) {}

  sendPages(batch: PageBatch): Promise<void> {
    return this.inner.sendPages(batch);
  }

  /**
   * Forward `batch` with its page hashes (computed here once when the sender gave none, so the
   * same hashes travel and are recorded) and return them.
   */
  protected async forwardHashed(batch: PageBatch): Promise<Uint8Array> {
    const hashes = batch.hashes ?? pageHashes(batch.data);
    await this.inner.sendPages({ ...batch, hashes });
    return hashes;
  }

  sendFile(name: string, data: Uint8Array): Promise<void> {
    return this.inner.sendFile(name, data);
  }

  flush(): Promise<void> {
    return this.inner.flush();
  }

  restore(request: RestoreRequest): Promise<RestoreResult> {
    return this.inner.restore(request);
  }

  resume(): Promise<void> {
    return this.inner.resume();
  }

  abort(reason: string): Promise<boolean | void> {
    return this.inner.abort(reason);
  }

  /** The inner channel's post-copy report, when it can ask. */
  postCopyReport(): Promise<LazyCheckReport | undefined> {
    return this.inner.postCopyReport?.() ?? Promise.resolve(undefined);
  }

  get bytesSent(): number {
    return this.inner.bytesSent;
  }

  get compression(): MigrationChannel["compression"] {
    return this.inner.compression;
  }
}
