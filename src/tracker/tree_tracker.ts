/**
 * The tracker of a whole process tree: each round it walks the tree (children appear and exit),
 * re-reads every process's memory map (mappings appear, vanish, grow, move) and asks a
 * {@linkcode PageBackend} which pages of each tracked mapping changed.
 *
 * @module
 */
import { closeRaw, Errno, openRaw, referencedSelect, ShimError } from "../native/ffi.ts";
import type { PageBackend, TrackedProcess } from "./backend.ts";
import { CHUNK_PAGES, PAGE_SIZE } from "./backend.ts";
import { MappingTable } from "./mappings.ts";
import {
  NoSuchProcessError,
  processStartTime,
  processTree,
  readMaps,
  TrackerPermissionError,
} from "./proc.ts";
import {
  type DirtyTracker,
  type Mapping,
  type PageSet,
  type ScanResult,
  TargetGoneError,
} from "./types.ts";

interface FollowedProcess extends TrackedProcess {
  startTime: number;
  table: MappingTable;
  scanned: Set<number>;
}

/** Options of {@linkcode TreeTracker}. */
export interface TreeTrackerOptions {
  /** Report access bits from /proc/kpageflags (needs root; one read per resident page). */
  accessBits?: boolean;
}

/** Follows one process tree with one backend. */
export class TreeTracker implements DirtyTracker {
  readonly backend;
  readonly accessBits: boolean;
  #root: number;
  #pageBackend: PageBackend;
  #processes = new Map<number, FollowedProcess>();
  #nextId = 1;
  #round = 0;
  #t0 = performance.now();
  #kpageflagsFd = -1;
  #accessOut = new Uint32Array(CHUNK_PAGES);

  /**
   * @param rootPid the tree's root
   * @param pageBackend how changed pages are found
   * @param options extras
   */
  constructor(rootPid: number, pageBackend: PageBackend, options: TreeTrackerOptions = {}) {
    if (processStartTime(rootPid) === undefined) throw new NoSuchProcessError(rootPid);
    this.#root = rootPid;
    this.#pageBackend = pageBackend;
    this.backend = pageBackend.name;
    if (options.accessBits) this.#kpageflagsFd = openRaw("/proc/kpageflags");
    this.accessBits = this.#kpageflagsFd >= 0;
    const root = this.#follow(rootPid);
    if (!root) throw new NoSuchProcessError(rootPid);
  }

  mappings(): Mapping[] {
    return [...this.#processes.values()].flatMap((p) => p.table.current());
  }

  scan(): ScanResult {
    const started = performance.now();
    const dirty: PageSet = new Map();
    const accessed: PageSet | undefined = this.accessBits ? new Map() : undefined;
    const added: Mapping[] = [];
    const removed: number[] = [];
    let residentPages = 0;
    const alive = processTree([this.#root, ...this.#processes.keys()]);
    const aliveSet = new Set(alive);
    for (const [pid, proc] of this.#processes) {
      if (!aliveSet.has(pid) || processStartTime(pid) !== proc.startTime) {
        this.#drop(proc, removed);
      }
    }
    const pids: number[] = [];
    for (const pid of alive) {
      const proc = this.#processes.get(pid) ?? this.#follow(pid);
      if (!proc) continue;
      const maps = readMaps(pid);
      if (!maps) {
        this.#drop(proc, removed);
        continue;
      }
      const changes = proc.table.update(maps);
      for (const m of changes.removed) {
        removed.push(m.id);
        proc.scanned.delete(m.id);
        this.#pageBackend.forgetMapping(m.id);
      }
      added.push(...changes.added);
      try {
        for (const mapping of proc.table.current()) {
          const isNew = !proc.scanned.has(mapping.id);
          const result = this.#pageBackend.scanMapping(proc, mapping, isNew);
          proc.scanned.add(mapping.id);
          residentPages += result.resident;
          if (result.dirty.length > 0) dirty.set(mapping.id, result.dirty);
          if (accessed) this.#scanAccess(proc, mapping, accessed);
        }
        this.#pageBackend.endRound(proc);
        pids.push(pid);
      } catch (e) {
        if (e instanceof ShimError && e.errno === Errno.ESRCH) {
          this.#drop(proc, removed);
          continue;
        }
        if (e instanceof ShimError && (e.errno === Errno.EPERM || e.errno === Errno.EACCES)) {
          throw new TrackerPermissionError(pid, e.message);
        }
        throw e;
      }
    }
    if (pids.length === 0) throw new TargetGoneError(this.#root);
    const round = this.#round++;
    return {
      round,
      elapsedMs: started - this.#t0,
      scanMs: performance.now() - started,
      dirty,
      accessed,
      residentPages,
      added,
      removed,
      pids,
    };
  }

  close(): void {
    this.#pageBackend.close?.();
    for (const proc of this.#processes.values()) closeRaw(proc.pagemapFd);
    this.#processes.clear();
    if (this.#kpageflagsFd >= 0) closeRaw(this.#kpageflagsFd);
    this.#kpageflagsFd = -1;
  }

  #follow(pid: number): FollowedProcess | undefined {
    const startTime = processStartTime(pid);
    if (startTime === undefined) return undefined;
    let pagemapFd: number;
    try {
      pagemapFd = openRaw(`/proc/${pid}/pagemap`);
    } catch (e) {
      if (e instanceof ShimError && (e.errno === Errno.ENOENT || e.errno === Errno.ESRCH)) {
        return undefined;
      }
      if (e instanceof ShimError && (e.errno === Errno.EACCES || e.errno === Errno.EPERM)) {
        throw new TrackerPermissionError(pid, "/proc/PID/pagemap cannot be opened");
      }
      throw e;
    }
    const proc: FollowedProcess = {
      pid,
      pagemapFd,
      startTime,
      table: new MappingTable(pid, () => this.#nextId++),
      scanned: new Set(),
    };
    this.#processes.set(pid, proc);
    return proc;
  }

  #drop(proc: FollowedProcess, removed: number[]): void {
    for (const m of proc.table.clear()) {
      removed.push(m.id);
      this.#pageBackend.forgetMapping(m.id);
    }
    this.#pageBackend.forgetProcess(proc.pid);
    closeRaw(proc.pagemapFd);
    this.#processes.delete(proc.pid);
  }

  #scanAccess(proc: FollowedProcess, mapping: Mapping, accessed: PageSet): void {
    const total = (mapping.end - mapping.start) / PAGE_SIZE;
    const pages: number[] = [];
    for (let base = 0; base < total; base += CHUNK_PAGES) {
      const n = referencedSelect(
        proc.pagemapFd,
        this.#kpageflagsFd,
        mapping.start + base * PAGE_SIZE,
        Math.min(CHUNK_PAGES, total - base),
        this.#accessOut,
      );
      for (let i = 0; i < n; i++) pages.push(base + this.#accessOut[i]);
    }
    if (pages.length > 0) accessed.set(mapping.id, Uint32Array.from(pages));
  }
}
