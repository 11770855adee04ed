/**
 * Shared types of the dirty-page tracker: what one scan of a process tree reports.
 *
 * Pages are named by `(mappingId, pageIndex)`: a mapping is one VMA of one process (address space),
 * numbered by the tracker when first seen; a page index counts pages from the mapping's start. A VMA
 * that keeps its start but grows, shrinks or changes permissions keeps its id (it is reported again
 * in `added` with its new end); a VMA that moves gets a new id, so a page key never silently changes
 * meaning.
 *
 * @module
 */

/** The tracker backends u2cm knows. */
export type TrackerBackendName = "softdirty" | "hash" | "uffd-wp";

/** The kinds of mappings the tracker follows (those CRIU dumps page contents of). */
export type MappingKind = "anon" | "heap" | "stack" | "file-private" | "shared-anon" | "memfd";

/** One tracked virtual memory area of one process. */
export interface Mapping {
  /** Tracker-assigned id, unique within one tracking session (and so within one trace). */
  id: number;
  /** The process whose address space holds it (one per address space; threads share). */
  pid: number;
  /** First byte address. */
  start: number;
  /** One past the last byte address. */
  end: number;
  /** Permissions as in /proc/PID/maps, e.g. `rw-p`. */
  perms: string;
  /** File offset (0 for anonymous memory). */
  offset: number;
  /** Path or pseudo-name from /proc/PID/maps (`[heap]`, `[stack]`, `/memfd:x`), empty when anonymous. */
  path: string;
  /** Classification of the mapping. */
  kind: MappingKind;
}

/**
 * A set of pages: for each mapping id, the sorted, distinct page indices within that mapping.
 */
export type PageSet = Map<number, Uint32Array>;

/** What one scan found. */
export interface ScanResult {
  /** Scan number, 0 for the baseline scan. */
  round: number;
  /** Milliseconds since the tracker started (at the scan's start). */
  elapsedMs: number;
  /** How long the scan itself took, in milliseconds. */
  scanMs: number;
  /** Pages written since the previous scan (for round 0: every resident page). */
  dirty: PageSet;
  /** Pages referenced since the previous scan, when the kernel offers access bits; else undefined. */
  accessed?: PageSet;
  /** Resident (present or swapped) pages in the tracked mappings at this scan. */
  residentPages: number;
  /** Mappings that appeared since the previous scan (all mappings for round 0). */
  added: Mapping[];
  /** Ids of mappings that vanished since the previous scan. */
  removed: number[];
  /** Pids of the tree alive at this scan. */
  pids: number[];
}

/** One dirty-page tracker following one process tree. */
export interface DirtyTracker {
  /** Which backend is in use. */
  readonly backend: TrackerBackendName;
  /** Whether scans report access bits. */
  readonly accessBits: boolean;
  /** The mappings currently tracked. */
  mappings(): Mapping[];
  /**
   * Scan the tree once. The first call is the baseline (round 0). Throws a
   * {@linkcode TargetGoneError} once the whole tree has exited.
   */
  scan(): ScanResult;
  /** Release native resources. */
  close(): void;
}

/** Thrown by {@linkcode DirtyTracker.scan} when every process of the tracked tree has exited. */
export class TargetGoneError extends Error {
  /** @param pid the root pid that is gone */
  constructor(readonly pid: number) {
    super(`process tree of pid ${pid} has exited`);
    this.name = "TargetGoneError";
  }
}

/** Count the pages in a page set. */
export function pageSetSize(set: PageSet): number {
  let n = 0;
  for (const pages of set.values()) n += pages.length;
  return n;
}
