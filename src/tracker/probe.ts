/**
 * Honest probes of what this kernel offers the tracker: soft-dirty bits that really get set,
 * PAGEMAP_SCAN, and page-frame flags for access bits. Each probe tries the feature on memory of
 * its own process instead of trusting version numbers or accepted writes.
 *
 * @module
 */
import {
  closeRaw,
  openRaw,
  PAGE_IS_PRESENT,
  PAGE_IS_SOFT_DIRTY,
  pagemapSelect,
  PM_PRESENT,
  PM_SOFT_DIRTY,
  scanAvailable,
  scanSelect,
  uffdWpOpen,
  uffdWpRegister,
  uffdWpScan,
} from "../native/ffi.ts";
import { clearSoftDirty } from "./softdirty_backend.ts";

/** The result of one probe. */
export interface ProbeResult {
  /** Whether the feature works. */
  available: boolean;
  /** What was observed. */
  detail: string;
}

/** What the tracker can use on this machine. */
export interface TrackerCapabilities {
  /** Soft-dirty bits are set on write after clear_refs "4". */
  softDirty: ProbeResult;
  /** The PAGEMAP_SCAN ioctl works. */
  pagemapScan: ProbeResult;
  /** /proc/kpageflags with real page frame numbers (root). */
  kpageflags: ProbeResult;
}

let cached: TrackerCapabilities | undefined;

/** Probe once per process and remember the answer. */
export function trackerCapabilities(): TrackerCapabilities {
  cached ??= {
    pagemapScan: probePagemapScan(),
    softDirty: probeSoftDirty(),
    kpageflags: probeKpageflags(),
  };
  return cached;
}

/** An aligned page of this process's own memory, kept alive with its backing buffer. */
function ownPage(): { buffer: Uint8Array; page: Uint8Array; addr: number } {
  const buffer = new Uint8Array(3 * 4096);
  const base = Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer)));
  const skip = (4096 - (base % 4096)) % 4096;
  const page = buffer.subarray(skip, skip + 4096);
  return { buffer, page, addr: base + skip };
}

/** Whether PAGEMAP_SCAN works here. */
export function probePagemapScan(): ProbeResult {
  const fd = openRaw("/proc/self/pagemap");
  try {
    return scanAvailable(fd)
      ? { available: true, detail: "PAGEMAP_SCAN ioctl answered" }
      : { available: false, detail: "PAGEMAP_SCAN ioctl rejected (kernel < 6.7)" };
  } finally {
    closeRaw(fd);
  }
}

/**
 * Whether soft-dirty tracking really works: write a page of our own, clear the bits, check the
 * bit is clear, write again, check it is set. A kernel without CONFIG_MEM_SOFT_DIRTY accepts the
 * clear_refs write but never sets the bit.
 */
export function probeSoftDirty(): ProbeResult {
  const { buffer, page, addr } = ownPage();
  page[0] = 1;
  const fd = openRaw("/proc/self/pagemap");
  const out = new Uint32Array(1);
  const resident = new BigUint64Array(1);
  const bitSet = () => pagemapSelect(fd, addr, 1, PM_PRESENT, PM_SOFT_DIRTY, out, resident) === 1;
  try {
    try {
      clearSoftDirty("self");
    } catch (e) {
      return { available: false, detail: `clear_refs write refused: ${(e as Error).message}` };
    }
    const afterClear = bitSet();
    page[1] = 2;
    const afterWrite = bitSet();
    if (!afterWrite) {
      return {
        available: false,
        detail: "clear_refs accepted, but a written page never showed the soft-dirty bit",
      };
    }
    if (afterClear) {
      return { available: false, detail: "soft-dirty bit stays set after clear_refs" };
    }
    if (scanAvailable(fd)) {
      const n = scanSelect(fd, addr, 1, PAGE_IS_SOFT_DIRTY, PAGE_IS_PRESENT, out);
      if (n !== 1) {
        return { available: true, detail: "pagemap bit 55 works; PAGEMAP_SCAN disagrees" };
      }
    }
    return { available: true, detail: "bit 55 clears on clear_refs and sets on write" };
  } finally {
    closeRaw(fd);
    buffer[0] = 0;
  }
}

/** Whether /proc/kpageflags can be read with real page frame numbers (needs root). */
export function probeKpageflags(): ProbeResult {
  let kfd: number;
  try {
    kfd = openRaw("/proc/kpageflags");
  } catch (e) {
    return { available: false, detail: `/proc/kpageflags not readable: ${(e as Error).message}` };
  }
  closeRaw(kfd);
  const { buffer, addr } = ownPage();
  buffer.fill(1);
  const entry = new Uint8Array(8);
  const file = Deno.openSync("/proc/self/pagemap");
  try {
    file.seekSync(Math.floor(addr / 4096) * 8, Deno.SeekMode.Start);
    file.readSync(entry);
  } finally {
    file.close();
  }
  const pfn = new DataView(entry.buffer).getBigUint64(0, true) & ((1n << 55n) - 1n);
  return pfn === 0n
    ? { available: false, detail: "page frame numbers are hidden (not root)" }
    : { available: true, detail: "kpageflags readable with page frame numbers" };
}

let uffdWpCached: ProbeResult | undefined;

/**
 * Whether the uffd-wp backend works here, tried once per process on a child of our own (`sleep`):
 * create the uffd in it by syscall injection, register a writable mapping, arm it and read it
 * back. The child is killed afterwards.
 *
 * @example
 * ```ts
 * if (probeUffdWp().available) console.log("uffd-wp tracking works");
 * ```
 */
export function probeUffdWp(): ProbeResult {
  if (uffdWpCached) return uffdWpCached;
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") {
    return uffdWpCached = { available: false, detail: "syscall injection is x86_64 only" };
  }
  let child: Deno.ChildProcess | undefined;
  try {
    child = new Deno.Command("sleep", {
      args: ["30"],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    })
      .spawn();
    const pid = child.pid;
    const deadline = performance.now() + 2000;
    const nap = new Int32Array(new SharedArrayBuffer(4));
    // Wait until it sleeps in clock_nanosleep (230 on x86_64): its start-up writes are over.
    while (!inNanosleep(pid)) {
      if (performance.now() > deadline) throw new Error("probe child did not start");
      Atomics.wait(nap, 0, 0, 2);
    }
    const map = Deno.readTextFileSync(`/proc/${pid}/maps`).split("\n")
      .find((l) => l.includes("[stack]"));
    if (!map) throw new Error("probe child has no [stack] mapping");
    const [lo, hi] = map.split(" ")[0].split("-").map((h) => parseInt(h, 16));
    const uffd = uffdWpOpen(pid);
    const pagemap = openRaw(`/proc/${pid}/pagemap`);
    try {
      uffdWpRegister(uffd, lo, hi - lo);
      const npages = Math.min((hi - lo) / 4096, 1 << 16);
      const out = new Uint32Array(npages);
      uffdWpScan(pagemap, hi - npages * 4096, npages, true, out);
      const again = uffdWpScan(pagemap, hi - npages * 4096, npages, true, out);
      if (again !== 0) {
        return uffdWpCached = {
          available: false,
          detail: `a sleeping process showed ${again} written pages right after the arm`,
        };
      }
    } finally {
      closeRaw(pagemap);
      closeRaw(uffd);
    }
    return uffdWpCached = {
      available: true,
      detail: "userfaultfd WP_ASYNC injected in a child, registered and armed by PAGEMAP_SCAN",
    };
  } catch (e) {
    return uffdWpCached = { available: false, detail: (e as Error).message };
  } finally {
    if (child) {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      child.status.catch(() => {});
    }
  }
}

function inNanosleep(pid: number): boolean {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/comm`).trim() === "sleep" &&
      Deno.readTextFileSync(`/proc/${pid}/syscall`).split(" ")[0] === "230";
  } catch {
    return false;
  }
}
