/**
 * The verification contract between source, destination and src/peer: the final page manifest
 * (a hash for every page of every private and shared mapping of the frozen tree, sent as the
 * image file {@linkcode MANIFEST_FILE}), the verify mode a restore request asks for, and what
 * the destination reports it verified. One zod definition each; the peer protocol validates the
 * restore result's `verified` with {@linkcode VerificationSchema}, the destination the manifest
 * file with {@linkcode PageManifestSchema}.
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

/** The manifest file's contents (validated; unknown keys rejected). */
export const PageManifestSchema = z.object({
  v: z.literal(1),
  /** Live processes by pid inside the tree's namespace. */
  processes: z.array(
    PageListSchema.extend({ pid: z.number().int().min(1).max(0x7fff_ffff) }).strict(),
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
}).strict();

/** A verification report. */
export type Verification = z.infer<typeof VerificationSchema>;
