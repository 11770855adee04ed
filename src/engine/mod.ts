/**
 * Migration engines: one driver ({@linkcode runMigration}) assembled from parts — a round source
 * (content-hash pre-copy, CRIU's pre-dump chain) and a final phase (stop-and-copy, post-copy) —
 * with a two-phase commit, the journal and recovery on the source, the destination's half of the
 * commit, CPU throttling, and the isolated workload launcher.
 *
 * @module
 */
export * from "./types.ts";
export * from "./channel.ts";
export type * from "./parts.ts";
export { runMigration } from "./driver.ts";
export { ENGINE_CHOICES, engineNameOf, EngineUnavailableError, finalOf, planOf } from "./select.ts";
export type { EngineCapabilities, EngineChoice, EnginePlan, FinalName } from "./select.ts";
export { hashRounds } from "./rounds_hash.ts";
export { chainLink, flattenParents, predumpRounds } from "./rounds_predump.ts";
export { stopAndCopy } from "./final_stop_copy.ts";
export { eagerWhereHeld, postCopy, tcpPageServer } from "./final_post_copy.ts";
export { EngineRestoreRequestSchema, restoreMigration } from "./restore.ts";
export type { EngineRestoreRequest, RestoreOptions } from "./restore.ts";
export { Destination } from "./destination.ts";
export type {
  DestinationState,
  IncomingRecord,
  ResolveAction,
  ResolveAnswer,
} from "./destination.ts";
export { listMigrations, MigrationJournal } from "./journal.ts";
export type { MigrationRecord } from "./journal.ts";
export { cpuCgroupLayout, createThrottle } from "./throttle.ts";
export type { CgroupLayout, CpuThrottle } from "./throttle.ts";
export { launchIsolated } from "./launch.ts";
export type { IsolatedWorkload, LaunchOptions } from "./launch.ts";
export { LocalChannel } from "./local_channel.ts";
export { LedgerChannel, PageLedger } from "./ledger.ts";
export type { HeldPages } from "./ledger.ts";
export { decodeManifest, ManifestBuilder, ManifestError } from "./manifest.ts";
export type { PageList, PageManifest } from "./manifest.ts";
export * from "./contract.ts";
export {
  checkImages,
  readBackTree,
  VerificationError,
  verifyAfterRestore,
  verifyBeforeRestore,
} from "./verify.ts";
