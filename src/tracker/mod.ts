/**
 * The dirty-page tracker: which memory pages of a running process tree changed since the last
 * look. Three backends behind one interface — `softdirty` (kernel bits, x86_64 edge kernels),
 * `uffd-wp` (userfaultfd write-protect bits, Linux ≥ 6.7 x86_64, no soft-dirty needed) and `hash`
 * (content hashing, every kernel) — chosen by an honest probe unless forced. `U2CM_TRACKER`
 * (`auto|softdirty|uffd-wp|hash`) replaces an `auto` request.
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
import {
  type ProbeResult,
  probeUffdWp,
  type TrackerCapabilities,
  trackerCapabilities,
} from "./probe.ts";
import { SoftDirtyBackend } from "./softdirty_backend.ts";
import { UffdWpBackend } from "./uffdwp_backend.ts";
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
export {
  probeKpageflags,
  probePagemapScan,
  probeSoftDirty,
  probeUffdWp,
  trackerCapabilities,
} from "./probe.ts";
export type { ProbeResult, TrackerCapabilities } from "./probe.ts";
export { HashBackend } from "./hash_backend.ts";
export { clearSoftDirty, SoftDirtyBackend, softDirtyPagesOf } from "./softdirty_backend.ts";
export { TreeTracker } from "./tree_tracker.ts";
export { UffdWpBackend } from "./uffdwp_backend.ts";

/** Options of {@linkcode createTracker}. */
export interface CreateTrackerOptions {
  /** Root pid of the tree to follow. */
  pid: number;
  /** Backend to use; `auto` picks softdirty when it really works, else hash. @default "auto" */
  backend?: TrackerBackendName | "auto";
  /** Report access bits from /proc/kpageflags (root only). @default false */
  accessBits?: boolean;
}

const BACKEND_NAMES = ["auto", "softdirty", "hash", "uffd-wp"] as const;

/**
 * The backend asked for: `requested`, except that an `auto` request takes `U2CM_TRACKER` when set.
 *
 * @example
 * ```ts
 * requestedBackend("auto"); // "uffd-wp" with U2CM_TRACKER=uffd-wp, else "auto"
 * ```
 */
export function requestedBackend(
  requested: TrackerBackendName | "auto",
): TrackerBackendName | "auto" {
  if (requested !== "auto") return requested;
  const env = Deno.env.get("U2CM_TRACKER");
  if (!env) return "auto";
  const name = BACKEND_NAMES.find((n) => n === env);
  if (!name) throw new Error(`U2CM_TRACKER='${env}': expected one of ${BACKEND_NAMES.join("|")}`);
  return name;
}

/**
 * Pick the backend for `requested` on a machine with `caps`; throws when forced but unavailable.
 * `uffdWp` (the uffd-wp probe) is asked only when `uffd-wp` is requested.
 *
 * @example
 * ```ts
 * chooseBackend("auto", trackerCapabilities()); // "softdirty" or "hash"
 * ```
 */
export function chooseBackend(
  requested: TrackerBackendName | "auto",
  caps: TrackerCapabilities,
  uffdWp: () => ProbeResult = probeUffdWp,
): TrackerBackendName {
  if (requested === "hash") return "hash";
  if (requested === "uffd-wp") {
    const probe = uffdWp();
    if (!probe.available) {
      throw new BackendUnavailableError(
        "uffd-wp",
        `${probe.detail}; use --backend hash (works on every kernel)`,
      );
    }
    return "uffd-wp";
  }
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
  const name = chooseBackend(requestedBackend(options.backend ?? "auto"), caps);
  const usePagemapScan = caps.pagemapScan.available;
  const backend: PageBackend = name === "softdirty"
    ? new SoftDirtyBackend({ usePagemapScan })
    : name === "uffd-wp"
    ? new UffdWpBackend({ usePagemapScan })
    : new HashBackend({ usePagemapScan });
  if (options.accessBits && !caps.kpageflags.available) {
    throw new BackendUnavailableError("access bits", caps.kpageflags.detail);
  }
  return new TreeTracker(options.pid, backend, { accessBits: options.accessBits });
}
