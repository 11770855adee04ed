/**
 * The interface between the process-tree walker and a way of telling which pages changed.
 *
 * @module
 */
import type { Mapping, TrackerBackendName } from "./types.ts";

/** One followed process, as a backend sees it. */
export interface TrackedProcess {
  /** Its pid. */
  readonly pid: number;
  /** Raw descriptor of /proc/PID/pagemap. */
  readonly pagemapFd: number;
}

/** What a backend found in one mapping. */
export interface MappingScan {
  /** Sorted indices of pages dirtied since the previous scan (all resident pages when new). */
  dirty: Uint32Array;
  /** Resident pages in the mapping. */
  resident: number;
}

/** Raised when a backend cannot work on this kernel or machine. */
export class BackendUnavailableError extends Error {
  /**
   * @param backend the backend asked for
   * @param reason why it cannot run here, and what to do
   */
  constructor(readonly backend: string, reason: string) {
    super(`tracker backend '${backend}' is not available here: ${reason}`);
    this.name = "BackendUnavailableError";
  }
}

/** A way to find the pages of a mapping that changed since the previous round. */
export interface PageBackend {
  /** The backend's name as reported to users and stored in traces. */
  readonly name: TrackerBackendName;
  /**
   * Scan one mapping. `isNew` is true the first time the mapping is scanned: every resident page
   * then counts as dirty.
   */
  scanMapping(process: TrackedProcess, mapping: Mapping, isNew: boolean): MappingScan;
  /** Called once per process after all its mappings were scanned this round. */
  endRound(process: TrackedProcess): void;
  /** Drop the state kept for a mapping that vanished. */
  forgetMapping(mappingId: number): void;
  /** Drop the state kept for a process that exited. */
  forgetProcess(pid: number): void;
  /** Release what the backend holds in or for the targets (called by the tracker's close). */
  close?(): void;
}

/** Pages per chunk: the unit of one native call and of lazily allocated per-page state. */
export const CHUNK_PAGES = 1 << 16;

/** The page size the tracker works in (4 KiB: x86_64 and Debian's arm64 kernels). */
export const PAGE_SIZE = 4096;
