/**
 * Migration engines: one interface ({@linkcode MigrationEngine}), four engines (`delta`,
 * `predump`, `lazy`, `hybrid`) chosen by capability, the destination's restore handler, the
 * migration journal, CPU throttling, and the isolated workload launcher.
 *
 * @module
 */
export * from "./types.ts";
export * from "./channel.ts";
export { chooseEngine, ENGINE_CHOICES, EngineUnavailableError, loadEngine } from "./select.ts";
export type { EngineCapabilities } from "./select.ts";
export { deltaEngine, migrateDelta } from "./delta.ts";
export { lazyEngine } from "./lazy.ts";
export { hybridEngine } from "./hybrid.ts";
export { predumpEngine } from "./predump.ts";
export { EngineRestoreRequestSchema, restoreMigration } from "./restore.ts";
export type { EngineRestoreRequest } from "./restore.ts";
export { listMigrations, MigrationJournal, recoverMigrations } from "./journal.ts";
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
