/**
 * The engine's view of the destination: one migration's channel to a peer agent (src/peer
 * implements it over the authenticated transport; {@linkcode LocalChannel} in-process), and the
 * destination's page store as the restore handler reads it.
 *
 * @module
 */
import type { LazyCheckReport, PageBatch, RestoreRequest, RestoreResult } from "./contract.ts";
import type { PagesImage } from "./pages_image.ts";

export type { PageBatch, RestoreRequest, RestoreResult } from "./contract.ts";

/** One migration's channel to the destination. */
export interface MigrationChannel {
  /** Store pages at the destination (queued; `flush` waits for them). */
  sendPages(batch: PageBatch): Promise<void>;
  /** Store an image file in the migration's directory at the destination. */
  sendFile(name: string, data: Uint8Array): Promise<void>;
  /** Wait until everything sent so far is stored at the destination. */
  flush(): Promise<void>;
  /** Ask the destination to restore the tree, left stopped (phase one of the commit). */
  restore(request: RestoreRequest): Promise<RestoreResult>;
  /**
   * Phase two, after the source recorded the commit: the destination resumes the restored
   * tree. Resolves once it runs there; throws when the destination did not confirm.
   */
  resume(): Promise<void>;
  /**
   * Abandon the migration: the destination discards what it holds, a restored stopped copy
   * included. Resolves true once the destination confirmed, false when it could not be told.
   */
  abort(reason: string): Promise<boolean | void>;
  /**
   * After post-copy, once the source's page server is drained: what the destination's check of
   * the pages that arrived saw (undefined when it did not check). Absent on channels that
   * cannot ask. @default none
   */
  postCopyReport?(): Promise<LazyCheckReport | undefined>;
  /** Bytes put on the wire so far. */
  readonly bytesSent: number;
  /** What page-batch compression did so far, when the channel compresses. */
  readonly compression?: {
    /** Whether batches are compressed now. */
    active: boolean;
    /** Page bytes that went compressed, before compression. */
    packedRawBytes: number;
    /** Bytes of the compressed blocks sent. */
    packedBytes: number;
  };
}

/** The destination's pages of one migration, as the restore handler reads them. */
export interface PageStoreView {
  /** A page's contents, or undefined when the store lacks it. */
  get(pid: number, addr: number): Uint8Array | undefined | Promise<Uint8Array | undefined>;
  /**
   * The same pages laid out as CRIU pages images while they arrived, when the store keeps them
   * so (a restore then reads them in place instead of rebuilding). @default none
   */
  readonly pagesImage?: PagesImage;
}

/** What a restore handler gets from the agent. */
export interface RestoreContext {
  /** The migration's id. */
  migrationId: string;
  /** The migration's directory holding the image files sent (directly or in `images/`). */
  dir: string;
  /** The pages sent. */
  store: PageStoreView;
  /** The engine's request. */
  request: RestoreRequest;
  /**
   * Open the migration's tunnel endpoint: a loopback port whose connections the peer channel
   * carries to the source's endpoint (src/peer/tunnel.ts). Absent outside a peer agent.
   */
  openTunnel?: () => Promise<{ localPort: number; close(): Promise<void> }>;
}
