/**
 * The content-hash backend: reads every resident page of the tracked mappings with
 * process_vm_readv (in the native shim, 1 MiB at a time), hashes it (128 bits), and reports the
 * pages whose hash changed. Works on every kernel, including those without soft-dirty (arm64).
 *
 * @module
 */
import { hashDiff, residentMap } from "../native/ffi.ts";
import {
  CHUNK_PAGES,
  type MappingScan,
  PAGE_SIZE,
  type PageBackend,
  type TrackedProcess,
} from "./backend.ts";
import type { Mapping } from "./types.ts";

/** Hash state of one aligned chunk of address space: CHUNK_PAGES pages. */
interface ChunkState {
  hashes: BigUint64Array;
  known: Uint8Array;
  /** Page ranges [lo, hi) inside the chunk covered by a mapping scanned this round. */
  visited: number[];
}

/** Options of {@linkcode HashBackend}. */
export interface HashBackendOptions {
  /** Use PAGEMAP_SCAN to find resident pages (else a bulk pagemap read). */
  usePagemapScan: boolean;
  /** Pages per process_vm_readv call. @default 256 */
  batchPages?: number;
}

const CHUNK_BYTES = CHUNK_PAGES * PAGE_SIZE;

/**
 * Finds changed pages by content hash. Hashes are kept per process and *address* (in aligned
 * chunks of address space allocated on first use), not per mapping: when VMAs merge, split or
 * grow, pages whose content did not change are not reported again. Pages of a mapping that moved
 * are new at their new address and so reported.
 */
export class HashBackend implements PageBackend {
  readonly name = "hash" as const;
  #state = new Map<number, Map<number, ChunkState>>();
  #present = new Uint8Array(CHUNK_PAGES);
  #scratch = new Uint32Array(CHUNK_PAGES);
  #dirty = new Uint32Array(CHUNK_PAGES);
  #stats = new BigUint64Array(3);
  #readBuffer: Uint8Array;
  #useScan: boolean;
  /** Pages read and hashed since construction. */
  pagesHashed = 0;

  /** @param options residency source and batch size */
  constructor(options: HashBackendOptions) {
    this.#useScan = options.usePagemapScan;
    this.#readBuffer = new Uint8Array((options.batchPages ?? 256) * PAGE_SIZE);
  }

  scanMapping(process: TrackedProcess, mapping: Mapping, _isNew: boolean): MappingScan {
    let chunks = this.#state.get(process.pid);
    if (!chunks) {
      chunks = new Map();
      this.#state.set(process.pid, chunks);
    }
    const parts: Uint32Array[] = [];
    let resident = 0;
    let dirtyCount = 0;
    for (let addr = mapping.start; addr < mapping.end;) {
      const index = Math.floor(addr / CHUNK_BYTES);
      const chunkStart = index * CHUNK_BYTES;
      const end = Math.min(mapping.end, chunkStart + CHUNK_BYTES);
      const lo = (addr - chunkStart) / PAGE_SIZE;
      const npages = (end - addr) / PAGE_SIZE;
      const present = this.#present.subarray(0, npages);
      const count = residentMap(
        process.pagemapFd,
        addr,
        npages,
        this.#useScan,
        present,
        this.#scratch,
      );
      resident += count;
      let chunk = chunks.get(index);
      if (count > 0 && !chunk) {
        chunk = {
          hashes: new BigUint64Array(CHUNK_PAGES * 2),
          known: new Uint8Array(CHUNK_PAGES),
          visited: [],
        };
        chunks.set(index, chunk);
      }
      if (chunk) {
        chunk.visited.push(lo, lo + npages);
        const n = hashDiff(process.pid, addr, npages, {
          present,
          hashes: chunk.hashes.subarray(lo * 2, (lo + npages) * 2),
          known: chunk.known.subarray(lo, lo + npages),
          dirty: this.#dirty,
          readBuffer: this.#readBuffer,
          stats: this.#stats,
        });
        this.pagesHashed += Number(this.#stats[0]);
        if (n > 0) {
          const part = this.#dirty.slice(0, n);
          const offset = (addr - mapping.start) / PAGE_SIZE;
          if (offset > 0) { for (let i = 0; i < n; i++) part[i] += offset; }
          parts.push(part);
          dirtyCount += n;
        }
      }
      addr = end;
    }
    return { dirty: concat(parts, dirtyCount), resident };
  }

  /** Forget hashes of pages no tracked mapping covered this round (unmapped or moved away). */
  endRound(process: TrackedProcess): void {
    const chunks = this.#state.get(process.pid);
    if (!chunks) return;
    for (const [index, chunk] of chunks) {
      if (chunk.visited.length === 0) {
        chunks.delete(index);
        continue;
      }
      const ranges: [number, number][] = [];
      for (let i = 0; i < chunk.visited.length; i += 2) {
        ranges.push([chunk.visited[i], chunk.visited[i + 1]]);
      }
      ranges.sort((a, b) => a[0] - b[0]);
      let cursor = 0;
      for (const [lo, hi] of ranges) {
        if (lo > cursor) chunk.known.fill(0, cursor, lo);
        cursor = Math.max(cursor, hi);
      }
      chunk.known.fill(0, cursor);
      chunk.visited = [];
    }
  }

  forgetMapping(_mappingId: number): void {}

  forgetProcess(pid: number): void {
    this.#state.delete(pid);
  }
}

function concat(parts: Uint32Array[], total: number): Uint32Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint32Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
