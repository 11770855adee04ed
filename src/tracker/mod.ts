/**
 * The dirty-page tracker: which memory pages of a running process tree changed since the last
 * look. Two backends behind one interface — `softdirty` (kernel bits, x86_64 edge kernels) and
 * `hash` (content hashing, every kernel) — chosen by an honest probe unless forced.
 *
 * @example
 * ```ts
 * const tracker = createTracker({ pid: 1234 });
 * const baseline = tracker.scan(); // every resident page
 * const next = tracker.scan(); // pages written since
 * tracker.close();
 * ```
 *
 * @module
 */
import { BackendUnavailableError, type PageBackend } from "./backend.ts";
import { HashBackend } from "./hash_backend.ts";
import { type TrackerCapabilities, trackerCapabilities } from "./probe.ts";
import { SoftDirtyBackend } from "./softdirty_backend.ts";
import { TreeTracker } from "./tree_tracker.ts";
import type { DirtyTracker, TrackerBackendName } from "./types.ts";

export * from "./types.ts";
export { BackendUnavailableError, CHUNK_PAGES, PAGE_SIZE } from "./backend.ts";
export type { MappingScan, PageBackend, TrackedProcess } from "./backend.ts";
export {
  bootId,
  isAlive,
  NoSuchProcessError,
  nsPids,
  parseMaps,
  pidNamespaceMap,
  processState,
  processTree,
  signalAll,
  TrackerPermissionError,
  treeMemoryBytes,
  treePids,
  waitGone,
} from "./proc.ts";
export type { MapsEntry } from "./proc.ts";
export { classifyMapping, MappingTable } from "./mappings.ts";
export { probeKpageflags, probePagemapScan, probeSoftDirty, trackerCapabilities } from "./probe.ts";
export type { ProbeResult, TrackerCapabilities } from "./probe.ts";
export { HashBackend } from "./hash_backend.ts";
export { clearSoftDirty, SoftDirtyBackend, softDirtyPagesOf } from "./softdirty_backend.ts";
export { TreeTracker } from "./tree_tracker.ts";

/** Options of {@linkcode createTracker}. */
export interface CreateTrackerOptions {
  /** Root pid of the tree to follow. */
  pid: number;
  /** Backend to use; `auto` picks softdirty when it really works, else hash. @default "auto" */
  backend?: TrackerBackendName | "auto";
  /** Report access bits from /proc/kpageflags (root only). @default false */
  accessBits?: boolean;
}

/** Pick the backend for `requested` on a machine with `caps`; throws when forced but unavailable. */
export function chooseBackend(
  requested: TrackerBackendName | "auto",
  caps: TrackerCapabilities,
): TrackerBackendName {
  if (requested === "hash") return "hash";
  if (requested === "softdirty") {
    if (!caps.softDirty.available) {
      throw new BackendUnavailableError(
        "softdirty",
        `${caps.softDirty.detail}; use --backend hash (works on every kernel)`,
      );
    }
    return "softdirty";
  }
  return caps.softDirty.available ? "softdirty" : "hash";
}

/** Create a tracker for the tree under `options.pid`. */
export function createTracker(options: CreateTrackerOptions): DirtyTracker {
  const caps = trackerCapabilities();
  const name = chooseBackend(options.backend ?? "auto", caps);
  const usePagemapScan = caps.pagemapScan.available;
  const backend: PageBackend = name === "softdirty"
    ? new SoftDirtyBackend({ usePagemapScan })
    : new HashBackend({ usePagemapScan });
  if (options.accessBits && !caps.kpageflags.available) {
    throw new BackendUnavailableError("access bits", caps.kpageflags.detail);
  }
  return new TreeTracker(options.pid, backend, { accessBits: options.accessBits });
}
