/**
 * The one rule for the bytes of a page that may legitimately differ between the source's frozen
 * tree and the copy CRIU carries or restores: each thread's rseq area (the kernel rewrites its cpu
 * id whenever the thread returns to user space, also while CRIU's parasite runs in it) and the
 * dead stack below each thread's saved stack pointer (past the x86_64 ABI's 128-byte red zone, up
 * to 64 KiB; CRIU's parasite and compel may write there while dumping, and a restore may put a
 * signal frame there). Both the read-back (verify.ts) and the post-copy checks (the source's
 * manifest of lazy pages, post_copy_manifest.ts, and the destination's relay, lazy_check.ts) use
 * this rule: a page touching such an area is compared outside it — directly, or through the hash
 * of the page with those bytes zeroed ({@linkcode maskedPageHash}).
 *
 * @example
 * ```ts
 * const areas = allowedAreas(dump).get(pid) ?? [];
 * const on = areasOn(areas, addr); // [] for most pages
 * const hash = on.length ? maskedPageHash(page, addr, on) : undefined;
 * ```
 *
 * @module
 */
import { decodeCore } from "../criu/images/mod.ts";
import { pageHashes } from "../native/page_hash.ts";

const PAGE = 4096;

/** Bytes below a thread's stack pointer that may differ after a dump or a restore. */
export const DEAD_STACK = 64 * 1024;
/** The x86_64 ABI's red zone below the stack pointer, which a leaf function may use. */
export const RED_ZONE = 128;

/** A byte range [start, end) of a process's address space. */
export type Area = [start: number, end: number];

/** What {@linkcode allowedAreas} reads: the dump's directory and its process tree. */
export interface AllowanceSource {
  /** The dump's directory (holding `core-<tid>.img`). */
  dir: string;
  /** The processes and their threads. */
  pstree: { pid: number; threads: number[] }[];
}

/** The areas of each process (by pid as CRIU names it) whose bytes may differ. */
export function allowedAreas(dump: AllowanceSource): Map<number, Area[]> {
  const out = new Map<number, Area[]>();
  for (const p of dump.pstree) {
    const areas: Area[] = [];
    for (const tid of p.threads.length ? p.threads : [p.pid]) {
      try {
        const core = decodeCore(Deno.readFileSync(`${dump.dir}/core-${tid}.img`));
        if (core.rseq) areas.push([core.rseq.pointer, core.rseq.pointer + core.rseq.size]);
        // Below the stack pointer (past the red zone) a stack holds no live data.
        if (core.sp) areas.push([core.sp - DEAD_STACK, core.sp - RED_ZONE]);
      } catch { /* no core image for this thread: nothing to allow */ }
    }
    out.set(p.pid, areas);
  }
  return out;
}

/** The areas of `areas` that touch the page at `addr`. */
export function areasOn(areas: Area[], addr: number): Area[] {
  return areas.filter(([s, e]) => s < addr + PAGE && e > addr);
}

/** Whether pages `a` and `b` (at `addr`) are equal outside `areas`. */
export function sameOutside(a: Uint8Array, b: Uint8Array, addr: number, areas: Area[]): boolean {
  for (let i = 0; i < PAGE; i++) {
    const at = addr + i;
    if (areas.some(([s, e]) => at >= s && at < e)) continue;
    if (a[i] !== b[i]) return false;
  }
  return true;
}

/** The page's hash with the bytes inside `areas` zeroed (the page itself is not changed). */
export function maskedPageHash(page: Uint8Array, addr: number, areas: Area[]): Uint8Array {
  const copy = page.slice(0, PAGE);
  for (const [s, e] of areas) {
    const from = Math.max(0, s - addr), to = Math.min(PAGE, e - addr);
    if (to > from) copy.fill(0, from, to);
  }
  return pageHashes(copy);
}
