/**
 * The contract between the driver, the destination's restore side and src/peer: a page batch,
 * the restore request and its result (the peer protocol's `restoreResult` message is
 * {@linkcode RestoreResultSchema}), the final page manifest (a hash for every page of every
 * private and shared mapping of the frozen tree, sent as the image file
 * {@linkcode MANIFEST_FILE}, validated with {@linkcode PageManifestSchema}), the verify mode a
 * restore request asks for, and what the destination reports it verified. One definition each.
 *
 * @example
 * ```ts
 * import { PageManifestSchema } from "./contract.ts";
 * const manifest = PageManifestSchema.parse(JSON.parse(text));
 * ```
 *
 * @module
 */
import { z } from "zod";

/** A batch of pages of one process, keyed by the pid inside the tree's pid namespace. */
export interface PageBatch {
  /** Pid as CRIU names it (pstree.img; inside the tree's pid namespace). */
  pid: number;
  /** Page addresses (page-aligned). */
  addresses: Float64Array | number[];
  /** `addresses.length * 4096` bytes of page contents. */
  data: Uint8Array;
  /** 16 bytes per page (the shim's page hash); computed by the channel when absent. */
  hashes?: Uint8Array;
}

/**
 * A restore request: JSON the destination's restore handler validates strictly
 * (`EngineRestoreRequestSchema`); the peer protocol bounds it in size and depth.
 */
export type RestoreRequest = Record<string, unknown>;

/** Name of the manifest among the migration's image files. */
export const MANIFEST_FILE = "u2cm-manifest.json";

/** How much of the restored tree is read back: a sample per mapping, or every page. */
export const VERIFY_MODES = ["sample", "full"] as const;

/** A verify mode. */
export type VerifyMode = typeof VERIFY_MODES[number];

/** Largest address or offset a manifest names (x86-64/arm64 user space is below 2^48). */
const MAX_ADDRESS = 2 ** 53 - 4096;
/** Most pages a manifest may name (64 GiB of memory). */
export const MAX_MANIFEST_PAGES = 16 * 2 ** 20;

const Run = z.tuple([
  z.number().int().min(0).max(MAX_ADDRESS).refine((a) => a % 4096 === 0, "not page aligned"),
  z.number().int().min(1).max(MAX_MANIFEST_PAGES),
]);

/** The pages of one process or shared-memory object: runs of pages and their hashes. */
const PageListSchema = z.object({
  /** [first address (or offset), pages] runs, ascending. */
  runs: z.array(Run).max(MAX_MANIFEST_PAGES),
  /** Base64 of 16 bytes per page (the shim's page hash), in run order. */
  hashes: z.string().max(MAX_MANIFEST_PAGES * 24).regex(/^[A-Za-z0-9+/]*={0,2}$/),
});

const Base64 = z.string().max(MAX_MANIFEST_PAGES * 24).regex(/^[A-Za-z0-9+/]*={0,2}$/);

/**
 * A process's pages in a digest manifest (v 2): its runs and, per aligned chunk of 256 pages
 * the runs touch (ascending), the digest of the chunk's page hashes (manifest_digest.ts).
 */
const DigestListSchema = z.object({
  pid: z.number().int().min(1).max(0x7fff_ffff),
  runs: z.array(Run).max(MAX_MANIFEST_PAGES),
  /** Base64 of 16 bytes per chunk. */
  digests: Base64,
  /** Some of its pages (those sent inside the freeze) with their own hashes, checked one by one. */
  exact: PageListSchema.strict().optional(),
}).strict();

/** The manifest file's contents (validated; unknown keys rejected). */
export const PageManifestSchema = z.object({
  /** 1: a hash per page; 2: processes may be listed with chunk digests instead. */
  v: z.union([z.literal(1), z.literal(2)]),
  /** Live processes by pid inside the tree's namespace. */
  processes: z.array(
    z.union([
      PageListSchema.extend({ pid: z.number().int().min(1).max(0x7fff_ffff) }).strict(),
      DigestListSchema,
    ]),
  ).max(100_000),
  /** Shared-memory objects by id (`pagemap-shmem-<id>.img`). */
  shmem: z.array(
    PageListSchema.extend({ id: z.number().int().min(0).max(2 ** 53 - 1) }).strict(),
  ).max(100_000),
}).strict();

/** The manifest as it travels. */
export type PageManifestJson = z.infer<typeof PageManifestSchema>;

/** The restore request's `verify` field: check against the manifest, then read back. */
export const VerifyRequestSchema = z.object({
  mode: z.enum(VERIFY_MODES),
  /** Pages the manifest names (a cross-check of the file). */
  pages: z.number().int().min(0).max(MAX_MANIFEST_PAGES),
}).strict();

/** A verify request. */
export type VerifyRequest = z.infer<typeof VerifyRequestSchema>;

/** The engines a restore request may name. */
export const ENGINE_NAMES = ["delta", "predump", "lazy", "hybrid"] as const;

/** The restore request every engine sends (validated; unknown keys rejected). */
export const EngineRestoreRequestSchema = z.object({
  engine: z.enum(ENGINE_NAMES),
  /** Rebuild pages images from the page store (delta, hybrid); false: images came whole. */
  rebuildPages: z.boolean(),
  /**
   * Also rebuild the pages files of shared-memory objects mapped whole by one process: their
   * pages travelled as that process's pages (stop-and-copy). @default false
   */
  rebuildShmem: z.boolean().optional(),
  /**
   * Restore with `--lazy-pages` from the images assembled here (`criu lazy-pages -D`, no page
   * server): CRIU's restore reads no bulk memory, the local daemon fills it in afterwards
   * (scan-and-copy).
   */
  localLazy: z.boolean().optional(),
  /** Restore established TCP connections. */
  tcpEstablished: z.boolean().optional(),
  /** Restore dumped TCP connections closed. */
  tcpClose: z.boolean().optional(),
  /** The tree was a shell job. */
  shellJob: z.boolean().optional(),
  /**
   * The source's kernel boot id. On the same kernel the source's stopped copy still holds its
   * FIFOs open, their unread data still buffered (CRIU dumps it with tee()): the restore must
   * not write that data into the same FIFO a second time.
   */
  sourceBootId: z.string().regex(/^[0-9a-f-]{8,64}$/).optional(),
  /**
   * Check the images against the source's page manifest before restoring, then read back the
   * restored tree (left stopped until it matched).
   */
  verify: VerifyRequestSchema.optional(),
  /**
   * Lazy restore: fetch the remaining pages from the source's page server, through the peer
   * channel's tunnel (`{tunnel: true}`), or directly at `address:port` (in-process channels).
   */
  lazy: z.union([
    z.object({ tunnel: z.literal(true) }).strict(),
    z.object({
      address: z.string().regex(/^[0-9a-fA-F:.]{2,64}$/),
      port: z.number().int().min(1).max(65535),
    }).strict(),
  ]).optional(),
}).strict();

/** A validated restore request. */
export type EngineRestoreRequest = z.infer<typeof EngineRestoreRequestSchema>;

/** What the destination verified before reporting the restore ready. */
export const VerificationSchema = z.object({
  /** The read-back mode. */
  mode: z.enum(VERIFY_MODES),
  /** Pages the manifest names. */
  manifestPages: z.number().int().min(0).max(MAX_MANIFEST_PAGES),
  /** Pages of the assembled images checked against the manifest before restoring (all). */
  imagePages: z.number().int().min(0).max(MAX_MANIFEST_PAGES),
  /** Pages of the restored, stopped tree read back and matched. */
  readBackPages: z.number().int().min(0).max(MAX_MANIFEST_PAGES),
  /** Milliseconds the image check took. */
  imageMs: z.number().min(0).max(86_400_000),
  /** Milliseconds the read-back took. */
  readBackMs: z.number().min(0).max(86_400_000),
  /**
   * A verified lazy restore from the destination's own images (local_page_server.ts): pages
   * left to its lazy-pages daemon, each checked against the manifest as it is placed. The
   * source calls the migration verified only once the destination's drain report says every
   * one of them matched. Absent: no page was left lazy.
   */
  lazyPages: z.number().int().min(0).max(MAX_MANIFEST_PAGES).optional(),
  /**
   * Milliseconds of each step of the destination's restore (restore.ts: `compose_ms`,
   * `rebuild_ms`, `check_ms`, `lazy_start_ms`, `criu_ms`, `read_back_ms`, …), for benchmarks.
   */
  stepsMs: z.record(z.string().max(64), z.number().min(0).max(86_400_000)).optional(),
}).strict();

/** A verification report. */
export type Verification = z.infer<typeof VerificationSchema>;

/**
 * What the destination's check of post-copy pages saw (lazy_check.ts), as the source asks for
 * it once its page server is drained: every page that arrived hashed as the manifest says.
 */
export const LazyCheckReportSchema = z.object({
  /** Page requests the lazy-pages daemon sent (faults and background fetches). */
  requests: z.number().int().min(0).max(2 ** 40),
  /** Pages that arrived and matched the manifest. */
  checkedPages: z.number().int().min(0).max(MAX_MANIFEST_PAGES),
  /** Pages the manifest expected to arrive after the restore. */
  expectedPages: z.number().int().min(0).max(MAX_MANIFEST_PAGES),
  /** Whether the daemon ended its session normally (every page in place). */
  closed: z.boolean(),
  /** Faults of the restored tree the daemon served ("#PF" in its log), once it exited. */
  faults: z.number().int().min(0).max(2 ** 40).optional(),
  /** Why a page was refused (the restored copy was then stopped for good). */
  mismatch: z.string().max(1024).optional(),
}).strict();

/** A post-copy check report. */
export type LazyCheckReport = z.infer<typeof LazyCheckReportSchema>;

/**
 * What the destination answers to a restore request: `ok` means the tree is restored, checked
 * and left stopped, ready to resume when the source commits.
 */
export const RestoreResultSchema = z.object({
  /** Whether the tree was restored (stopped) and is ready. */
  ok: z.boolean(),
  /** Host pid of the restored root on the destination. */
  pid: z.number().int().min(1).max(0x7fff_ffff).optional(),
  /** Why it failed. */
  error: z.string().max(4096).optional(),
  /** Milliseconds the destination spent restoring. */
  restoreMs: z.number().min(0).max(86_400_000).optional(),
  /** What the destination checked against the source's page manifest before confirming. */
  verified: VerificationSchema.optional(),
});

/** A restore result. */
export type RestoreResult = z.infer<typeof RestoreResultSchema>;
