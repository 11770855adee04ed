/**
 * The contract of one outgoing migration's channel, as the engine uses it: page batches, image
 * files, hash listings, the restore request and the commit's resume or abort. channel.ts
 * implements it over the authenticated link.
 *
 * @module
 */
import type { CompressionStats } from "./compression.ts";
import type { PageBatch, RestoreRequest, RestoreResult } from "../engine/contract.ts";

export type { PageBatch } from "../engine/contract.ts";

/** The engine's view of one outgoing migration. */
export interface MigrationChannel {
  /** Send pages; resolves when the window allows more (backpressure). */
  sendPages(batch: PageBatch): Promise<void>;
  /** The hashes the peer holds for `pid` (address → 16-byte hash). */
  remoteHashes(pid: number): Promise<Map<number, Uint8Array>>;
  /** Send an image file (name: letters, digits, '.', '_', '-'; no '/' or '..'). */
  sendFile(name: string, data: Uint8Array): Promise<void>;
  /** Resolves once every chunk sent so far is acknowledged (stored by the peer). */
  flush(): Promise<void>;
  /** Ask the peer to restore (left stopped); resolves with its result. */
  restore(request: RestoreRequest): Promise<RestoreResult>;
  /** After the source's commit: the peer resumes the restored tree; throws unless it confirms. */
  resume(): Promise<void>;
  /**
   * Abort: the peer deletes what it stored, a restored stopped copy included. Resolves true once
   * the peer confirmed, false when it could not be reached.
   */
  abort(reason: string): Promise<boolean>;
  /** Tell the peer stop-and-copy started or ended (logged there, with timings). */
  stopCopy(phase: "start" | "end"): Promise<void>;
  /** Report progress to the peer's log. */
  progress(p: { round?: number; phase?: string }): Promise<void>;
  /** Frame bytes sent (each chunk counted once, resends excluded). */
  readonly bytesSent: number;
  /** Bytes the peer reports stored. */
  readonly bytesStored: number;
  /** What page-batch compression did (mode "off" when off or the peer cannot decompress). */
  readonly compression: CompressionStats;
}
