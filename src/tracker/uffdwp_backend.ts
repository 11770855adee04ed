/**
 * The uffd-wp backend: exact written-page bits without soft-dirty (Linux ≥ 6.7). A userfaultfd in
 * the target's address space (created there by ptrace syscall injection; only u2cm keeps a
 * descriptor of it) write-protects the tracked mappings in ASYNC mode: no fault is ever delivered,
 * a write just clears the page's write-protect bit. Each round one PAGEMAP_SCAN per mapping reads
 * the written pages and write-protects them again in the same walk, so no write is lost between
 * the read and the re-arm.
 *
 * Processes whose uffd cannot be created (another tracer, seccomp, not x86_64) and mappings the
 * kernel refuses to register are tracked by content hash instead ({@linkcode HashBackend}), so the
 * backend never reports less than the truth. Closing it (or dropping a process) closes the uffd,
 * which unregisters every range: the target runs on untouched.
 *
 * @module
 */
import { closeRaw, residentMap, uffdWpOpen, uffdWpRegister, uffdWpScan } from "../native/ffi.ts";
import {
  CHUNK_PAGES,
  type MappingScan,
  PAGE_SIZE,
  type PageBackend,
  type TrackedProcess,
} from "./backend.ts";
import { HashBackend } from "./hash_backend.ts";
import type { Mapping } from "./types.ts";

/** Options of {@linkcode UffdWpBackend}. */
export interface UffdWpBackendOptions {
  /** Use PAGEMAP_SCAN for residency (always true where this backend works). @default true */
  usePagemapScan?: boolean;
}

/** One followed address space: its uffd (or -1 when delegated to hashing) and registered ranges. */
interface UffdProcess {
  uffd: number;
  /** Registered [start, end) per mapping id. */
  ranges: Map<number, { start: number; end: number }>;
}

/** Finds written pages by userfaultfd write-protect bits, read and re-armed by PAGEMAP_SCAN. */
export class UffdWpBackend implements PageBackend {
  readonly name = "uffd-wp" as const;
  #processes = new Map<number, UffdProcess>();
  #hashed = new Set<number>();
  #hash: HashBackend;
  #present = new Uint8Array(CHUNK_PAGES);
  #scratch = new Uint32Array(CHUNK_PAGES);
  #out = new Uint32Array(CHUNK_PAGES);
  #useScan: boolean;
  /** Why processes or mappings fell back to hashing (first few reasons). */
  readonly fallbacks: string[] = [];

  /** @param options residency source */
  constructor(options: UffdWpBackendOptions = {}) {
    this.#useScan = options.usePagemapScan ?? true;
    this.#hash = new HashBackend({ usePagemapScan: this.#useScan });
  }

  scanMapping(process: TrackedProcess, mapping: Mapping, isNew: boolean): MappingScan {
    const proc = this.#process(process.pid);
    if (proc.uffd < 0 || this.#hashed.has(mapping.id)) {
      return this.#hash.scanMapping(process, mapping, isNew);
    }
    const range = proc.ranges.get(mapping.id);
    let fresh = isNew || range === undefined;
    if (!range || range.start !== mapping.start || range.end !== mapping.end) {
      try {
        uffdWpRegister(proc.uffd, mapping.start, mapping.end - mapping.start);
      } catch (e) {
        this.#note(`mapping ${mapping.start.toString(16)} (${mapping.kind}): ${e}`);
        this.#hashed.add(mapping.id);
        proc.ranges.delete(mapping.id);
        return this.#hash.scanMapping(process, mapping, true);
      }
      // A grown range's new pages carry no write-protect bit yet: the scan reports the resident
      // ones as written, which is exactly "new"; a changed start or shrink is a fresh mapping.
      if (range && range.start !== mapping.start) fresh = true;
      proc.ranges.set(mapping.id, { start: mapping.start, end: mapping.end });
    }
    return this.#scan(process, mapping, fresh);
  }

  endRound(process: TrackedProcess): void {
    this.#hash.endRound(process);
  }

  forgetMapping(mappingId: number): void {
    for (const proc of this.#processes.values()) proc.ranges.delete(mappingId);
    this.#hashed.delete(mappingId);
    this.#hash.forgetMapping(mappingId);
  }

  forgetProcess(pid: number): void {
    const proc = this.#processes.get(pid);
    if (proc && proc.uffd >= 0) closeRaw(proc.uffd);
    this.#processes.delete(pid);
    this.#hash.forgetProcess(pid);
  }

  /** Close every uffd: the kernel unregisters all ranges and the targets run on untracked. */
  close(): void {
    for (const pid of [...this.#processes.keys()]) this.forgetProcess(pid);
  }

  #process(pid: number): UffdProcess {
    let proc = this.#processes.get(pid);
    if (!proc) {
      let uffd = -1;
      try {
        uffd = uffdWpOpen(pid);
      } catch (e) {
        this.#note(`pid ${pid}: ${(e as Error).message}`);
      }
      proc = { uffd, ranges: new Map() };
      this.#processes.set(pid, proc);
    }
    return proc;
  }

  #scan(process: TrackedProcess, mapping: Mapping, fresh: boolean): MappingScan {
    const total = (mapping.end - mapping.start) / PAGE_SIZE;
    const parts: number[] = [];
    let resident = 0;
    for (let base = 0; base < total; base += CHUNK_PAGES) {
      const npages = Math.min(CHUNK_PAGES, total - base);
      const addr = mapping.start + base * PAGE_SIZE;
      // Re-arm first, then read residency: a page populated in between is resident (and so
      // reported when fresh) and its write is also caught by the next round.
      const n = uffdWpScan(process.pagemapFd, addr, npages, true, this.#out);
      const r = residentMap(
        process.pagemapFd,
        addr,
        npages,
        this.#useScan,
        this.#present,
        this.#scratch,
      );
      resident += r;
      if (fresh) {
        for (let i = 0; i < npages; i++) if (this.#present[i]) parts.push(base + i);
      } else {
        for (let i = 0; i < n; i++) {
          const page = this.#out[i];
          if (this.#present[page]) parts.push(base + page);
        }
      }
    }
    return { dirty: Uint32Array.from(parts), resident };
  }

  #note(reason: string): void {
    if (this.fallbacks.length < 8) this.fallbacks.push(reason);
  }
}
