/**
 * The soft-dirty backend: after `clear_refs` "4" the kernel sets pagemap bit 55 on every page
 * written. Each round reads the bit for the tracked mappings (PAGEMAP_SCAN with
 * PAGE_IS_SOFT_DIRTY when the kernel has it, else a bulk pagemap read), then clears the bits again.
 * The production path on x86_64 edge kernels; kernels without CONFIG_MEM_SOFT_DIRTY (arm64, and
 * this build machine's) accept the clear_refs write but never set the bit — see
 * {@linkcode probeSoftDirty}.
 *
 * Writes that land between a process's pagemap read and its clear_refs write are not seen until
 * the page is written again; the engines' final round runs with the tree frozen, where this
 * window is empty.
 *
 * @module
 */
import {
  PAGE_IS_PRESENT,
  PAGE_IS_SOFT_DIRTY,
  PAGE_IS_SWAPPED,
  pagemapSelect,
  PM_PRESENT,
  PM_SOFT_DIRTY,
  PM_SWAPPED,
  residentMap,
  scanSelect,
} from "../native/ffi.ts";
import {
  CHUNK_PAGES,
  type MappingScan,
  PAGE_SIZE,
  type PageBackend,
  type TrackedProcess,
} from "./backend.ts";
import type { Mapping } from "./types.ts";

/** Options of {@linkcode SoftDirtyBackend}. */
export interface SoftDirtyBackendOptions {
  /** Use PAGEMAP_SCAN (Linux ≥ 6.7) instead of reading pagemap entries. */
  usePagemapScan: boolean;
}

/** Finds written pages by the kernel's soft-dirty bits. */
export class SoftDirtyBackend implements PageBackend {
  readonly name = "softdirty" as const;
  #out = new Uint32Array(CHUNK_PAGES);
  #present = new Uint8Array(CHUNK_PAGES);
  #resident = new BigUint64Array(1);
  #useScan: boolean;

  /** @param options how to read the bits */
  constructor(options: SoftDirtyBackendOptions) {
    this.#useScan = options.usePagemapScan;
  }

  scanMapping(process: TrackedProcess, mapping: Mapping, isNew: boolean): MappingScan {
    const totalPages = (mapping.end - mapping.start) / PAGE_SIZE;
    const parts: number[] = [];
    let resident = 0;
    for (let base = 0; base < totalPages; base += CHUNK_PAGES) {
      const npages = Math.min(CHUNK_PAGES, totalPages - base);
      const addr = mapping.start + base * PAGE_SIZE;
      let n: number;
      if (isNew) {
        n = residentMap(process.pagemapFd, addr, npages, this.#useScan, this.#present, this.#out);
        resident += n;
      } else if (this.#useScan) {
        resident += residentMap(
          process.pagemapFd,
          addr,
          npages,
          true,
          this.#present,
          this.#out,
        );
        n = scanSelect(
          process.pagemapFd,
          addr,
          npages,
          PAGE_IS_SOFT_DIRTY,
          PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
          this.#out,
        );
      } else {
        n = pagemapSelect(
          process.pagemapFd,
          addr,
          npages,
          PM_PRESENT | PM_SWAPPED,
          PM_SOFT_DIRTY,
          this.#out,
          this.#resident,
        );
        resident += Number(this.#resident[0]);
      }
      for (let i = 0; i < n; i++) parts.push(base + this.#out[i]);
    }
    return { dirty: Uint32Array.from(parts), resident };
  }

  endRound(process: TrackedProcess): void {
    clearSoftDirty(process.pid);
  }

  forgetMapping(_mappingId: number): void {}

  forgetProcess(_pid: number): void {}
}

/** Clear the soft-dirty bits of every page of `pid` (`echo 4 > /proc/PID/clear_refs`). */
export function clearSoftDirty(pid: number | "self"): void {
  try {
    Deno.writeTextFileSync(`/proc/${pid}/clear_refs`, "4");
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return; // the process exited
    throw e;
  }
}

/**
 * Select soft-dirty resident pages from recorded pagemap entries (one 64-bit entry per page, as
 * read from /proc/PID/pagemap) — the parsing the live path applies, usable on any machine.
 */
export function softDirtyPagesOf(entries: BigUint64Array): Uint32Array {
  const out: number[] = [];
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    if ((e & (PM_PRESENT | PM_SWAPPED)) !== 0n && (e & PM_SOFT_DIRTY) !== 0n) out.push(i);
  }
  return Uint32Array.from(out);
}
