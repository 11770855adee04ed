/**
 * The Deno.dlopen binding of the native shim, with typed wrappers. Every wrapper works on a whole
 * chunk of pages per call; buffers are caller-owned typed arrays reused across calls.
 *
 * @module
 */
import { ensureShim, hostArch } from "./build.ts";
import { embeddedShim } from "./embedded.ts";

/** The ABI version this binding expects from `u2cm_abi_version()`. */
export const SHIM_ABI = 1;

/** u2cm_hash_diff's parameters (pid, addr, npages, present, hashes, known, dirty, read buffer, its pages, stats). */
const HASH_DIFF_PARAMETERS = [
  "i32",
  "u64",
  "u32",
  "buffer",
  "buffer",
  "buffer",
  "buffer",
  "buffer",
  "u32",
  "buffer",
] as const;

const SYMBOLS = {
  u2cm_abi_version: { parameters: [], result: "i32" },
  u2cm_open_ro: { parameters: ["buffer"], result: "i32" },
  u2cm_close: { parameters: ["i32"], result: "i32" },
  u2cm_hash_page: { parameters: ["buffer", "u32", "buffer"], result: "void" },
  u2cm_hash_pages: { parameters: ["buffer", "u32", "buffer"], result: "void" },
  u2cm_pagemap_select_buf: {
    parameters: ["buffer", "u32", "u32", "u64", "u64", "buffer", "buffer"],
    result: "i64",
  },
  u2cm_pagemap_select: {
    parameters: ["i32", "u64", "u32", "u64", "u64", "buffer", "buffer"],
    result: "i64",
  },
  u2cm_scan_select: { parameters: ["i32", "u64", "u32", "u64", "u64", "buffer"], result: "i64" },
  u2cm_scan_available: { parameters: ["i32"], result: "i32" },
  u2cm_resident_map: {
    parameters: ["i32", "u64", "u32", "i32", "buffer", "buffer"],
    result: "i64",
  },
  u2cm_hash_diff: { parameters: HASH_DIFF_PARAMETERS, result: "i64" },
  u2cm_kpageflags_select: { parameters: ["i32", "i32", "u64", "u32", "buffer"], result: "i64" },
  /** u2cm_hash_diff on a worker thread (the final scan runs one per core). */
  u2cm_hash_diff_async: {
    name: "u2cm_hash_diff",
    nonblocking: true,
    parameters: HASH_DIFF_PARAMETERS,
    result: "i64",
  },
  // ---- uffd-wp tracker (src/native/uffdwp.c) ----
  u2cm_uffdwp_open: { parameters: ["i32"], result: "i64" },
  u2cm_uffdwp_register: { parameters: ["i32", "u64", "u64"], result: "i32" },
  u2cm_uffdwp_scan: { parameters: ["i32", "u64", "u32", "i32", "buffer"], result: "i64" },
  // ---- end uffd-wp tracker ----
} as const satisfies Deno.ForeignLibraryInterface;

/** The loaded shim's raw symbols. */
export type ShimSymbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** pagemap entry bit: page present in RAM. */
export const PM_PRESENT = 1n << 63n;
/** pagemap entry bit: page swapped out. */
export const PM_SWAPPED = 1n << 62n;
/** pagemap entry bit: soft-dirty (written since the last clear_refs "4"). */
export const PM_SOFT_DIRTY = 1n << 55n;
/** PAGEMAP_SCAN category: page is present. */
export const PAGE_IS_PRESENT = 1n << 3n;
/** PAGEMAP_SCAN category: page is swapped. */
export const PAGE_IS_SWAPPED = 1n << 4n;
/** PAGEMAP_SCAN category: page is soft-dirty. */
export const PAGE_IS_SOFT_DIRTY = 1n << 7n;

/** A failing system call inside the shim, with its errno. */
export class ShimError extends Error {
  /**
   * @param op the shim operation
   * @param errno the positive errno value
   */
  constructor(readonly op: string, readonly errno: number) {
    super(`${op} failed: ${errnoName(errno)}`);
    this.name = "ShimError";
  }
}

/** Linux errno numbers the tracker distinguishes. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EACCES: 13,
  EFAULT: 14,
  ENOTTY: 25,
  ENOSYS: 38,
  ENODATA: 61,
} as const;

function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(Errno)) if (value === errno) return name;
  return `errno ${errno}`;
}

let loaded: ShimSymbols | undefined;

/**
 * Load the shim once: from `$U2CM_SHIM` when set, else the one embedded in a compiled binary, else
 * from the cache (building it on first use).
 */
export function shim(): ShimSymbols {
  if (loaded) return loaded;
  const path = Deno.env.get("U2CM_SHIM") ?? embeddedShim() ?? ensureShim(hostArch());
  const lib = Deno.dlopen(path, SYMBOLS);
  const abi = lib.symbols.u2cm_abi_version();
  if (abi !== SHIM_ABI) {
    lib.close();
    throw new Error(`native shim at ${path} has ABI ${abi}, this u2cm expects ${SHIM_ABI}`);
  }
  loaded = lib.symbols;
  return loaded;
}

function check(op: string, result: number | bigint): number {
  const n = Number(result);
  if (n < 0) throw new ShimError(op, -n);
  return n;
}

/** Open a file read-only and return its raw descriptor (for pagemap and kpageflags). */
export function openRaw(path: string): number {
  return check(`open ${path}`, shim().u2cm_open_ro(new TextEncoder().encode(path + "\0")));
}

/** Close a raw descriptor from {@linkcode openRaw}. */
export function closeRaw(fd: number): void {
  shim().u2cm_close(fd);
}

/** Whether PAGEMAP_SCAN works on the pagemap descriptor `fd`. */
export function scanAvailable(fd: number): boolean {
  return shim().u2cm_scan_available(fd) === 1;
}

/**
 * Mark resident pages of `[addr, addr + npages * 4096)` in `present` (1/0) and return their count.
 * `scratch` must hold `npages` entries.
 */
export function residentMap(
  fd: number,
  addr: number,
  npages: number,
  useScan: boolean,
  present: Uint8Array,
  scratch: Uint32Array,
): number {
  return check(
    "pagemap read",
    shim().u2cm_resident_map(fd, BigInt(addr), npages, useScan ? 1 : 0, present, scratch),
  );
}

/** Buffers and results of one {@linkcode hashDiff} call. */
export interface HashDiffBuffers {
  /** 1 per resident page (input). */
  present: Uint8Array;
  /** Two 64-bit words per page: the previous hashes (updated in place). */
  hashes: BigUint64Array;
  /** 1 per page that has a hash in `hashes` (updated in place). */
  known: Uint8Array;
  /** Receives the indices of changed pages. */
  dirty: Uint32Array;
  /** process_vm_readv scratch, a whole number of pages. */
  readBuffer: Uint8Array;
  /** Receives [pages read, pages unreadable, pages dropped]. */
  stats: BigUint64Array;
}

/**
 * Hash pid's resident pages of the range and return how many changed since the previous call
 * (their indices are in `buffers.dirty`). Throws {@linkcode ShimError} (ESRCH: gone, EPERM: denied).
 */
export function hashDiff(pid: number, addr: number, npages: number, b: HashDiffBuffers): number {
  return check("process_vm_readv", shim().u2cm_hash_diff(...hashDiffArgs(pid, addr, npages, b)));
}

function hashDiffArgs(pid: number, addr: number, npages: number, b: HashDiffBuffers) {
  return [
    pid,
    BigInt(addr),
    npages,
    b.present,
    b.hashes,
    b.known,
    b.dirty,
    b.readBuffer,
    b.readBuffer.length / 4096,
    b.stats,
  ] as const;
}

/**
 * {@linkcode hashDiff} on a worker thread of the FFI pool, so several ranges hash at once (one
 * per core). The buffers must not be touched until the promise settles.
 *
 * @example
 * ```ts
 * const [a, b] = await Promise.all([hashDiffAsync(pid, x, n, bufA), hashDiffAsync(pid, y, n, bufB)]);
 * ```
 */
export async function hashDiffAsync(
  pid: number,
  addr: number,
  npages: number,
  b: HashDiffBuffers,
): Promise<number> {
  return check(
    "process_vm_readv",
    await shim().u2cm_hash_diff_async(...hashDiffArgs(pid, addr, npages, b)),
  );
}

/**
 * Select pages whose pagemap entries have any bit of `anyMask` (0 = any entry) and all bits of
 * `allMask`, reading the live pagemap `fd`. Returns the count written to `out`, and the resident
 * count in `resident[0]`.
 */
export function pagemapSelect(
  fd: number,
  addr: number,
  npages: number,
  anyMask: bigint,
  allMask: bigint,
  out: Uint32Array,
  resident: BigUint64Array,
): number {
  return check(
    "pagemap read",
    shim().u2cm_pagemap_select(fd, BigInt(addr), npages, anyMask, allMask, out, resident),
  );
}

/** {@linkcode pagemapSelect} over recorded pagemap entries instead of a live file. */
export function pagemapSelectBuffer(
  entries: BigUint64Array,
  anyMask: bigint,
  allMask: bigint,
): { pages: Uint32Array; resident: number } {
  const out = new Uint32Array(entries.length);
  const resident = new BigUint64Array(1);
  const n = Number(
    shim().u2cm_pagemap_select_buf(entries, entries.length, 0, anyMask, allMask, out, resident),
  );
  return { pages: out.slice(0, n), resident: Number(resident[0]) };
}

/** Select pages through PAGEMAP_SCAN; returns the count written to `out`. */
export function scanSelect(
  fd: number,
  addr: number,
  npages: number,
  categoryMask: bigint,
  anyofMask: bigint,
  out: Uint32Array,
): number {
  return check(
    "PAGEMAP_SCAN",
    shim().u2cm_scan_select(fd, BigInt(addr), npages, categoryMask, anyofMask, out),
  );
}

/** Of the resident pages of the range, those with KPF_REFERENCED; returns the count in `out`. */
export function referencedSelect(
  fd: number,
  kpageflagsFd: number,
  addr: number,
  npages: number,
  out: Uint32Array,
): number {
  return check(
    "kpageflags read",
    shim().u2cm_kpageflags_select(fd, kpageflagsFd, BigInt(addr), npages, out),
  );
}

// ---- uffd-wp tracker (src/native/uffdwp.c) ----------------------------------------------------

/**
 * Create a write-protect-async userfaultfd in the address space of `pid` (ptrace syscall
 * injection; the target keeps no descriptor of it) and return this process's descriptor of it.
 * Throws {@linkcode ShimError} (ENOSYS: not x86_64, EPERM: ptrace refused, EINVAL: no
 * UFFD_FEATURE_WP_ASYNC).
 *
 * @example
 * ```ts
 * const uffd = uffdWpOpen(pid);
 * uffdWpRegister(uffd, start, end - start);
 * closeRaw(uffd); // unregisters every range
 * ```
 */
export function uffdWpOpen(pid: number): number {
  return check("userfaultfd injection", shim().u2cm_uffdwp_open(pid));
}

/**
 * Register `[start, start + len)` of the uffd's address space for write-protect tracking.
 *
 * @example
 * ```ts
 * uffdWpRegister(uffd, mapping.start, mapping.end - mapping.start);
 * ```
 */
export function uffdWpRegister(uffd: number, start: number, len: number): void {
  check("UFFDIO_REGISTER", shim().u2cm_uffdwp_register(uffd, BigInt(start), BigInt(len)));
}

/**
 * Pages written (write-protect bit cleared) in `[addr, addr + npages * 4096)` as indices in `out`
 * (room for `npages`); with `rearm`, write-protect them again in the same walk. Returns the count.
 *
 * @example
 * ```ts
 * const n = uffdWpScan(pagemapFd, mapping.start, npages, true, out);
 * ```
 */
export function uffdWpScan(
  pagemapFd: number,
  addr: number,
  npages: number,
  rearm: boolean,
  out: Uint32Array,
): number {
  return check(
    "PAGEMAP_SCAN",
    shim().u2cm_uffdwp_scan(pagemapFd, BigInt(addr), npages, rearm ? 1 : 0, out),
  );
}
// ---- end uffd-wp tracker ----------------------------------------------------------------------
