/**
 * System and process features sampled once per tracker round: the paper's seven system features
 * (read from where current kernels keep them), per-process-tree counters, and cgroup v2 statistics.
 *
 * Counters are stored as the increase since the previous sample (0 at the first sample); gauges
 * (`mem_free_bytes`, `proc_rss_bytes`, `cg_memory_bytes`) as their current value. A value the system
 * does not offer is `NaN`.
 *
 * @module
 */
import { exists } from "../util/fs.ts";

/** The paper's seven system-wide features, in order. */
export const SYSTEM_FEATURES = [
  "pgfault", //          /proc/vmstat (counter)
  "pgpgin", //           /proc/vmstat (counter; the paper's prototype read /proc/stat and got 0)
  "pgpgout", //          /proc/vmstat (counter)
  "ctxt", //             /proc/stat (counter)
  "softirq", //          /proc/stat (counter, total)
  "mem_free_bytes", //   /proc/meminfo MemFree (gauge)
  "disk_write_bytes", // /proc/diskstats sectors written × 512, whole disks (counter)
] as const;

/** Features of the traced process tree (summed over its processes). */
export const PROCESS_FEATURES = [
  "proc_cpu_ms", //      utime + stime (counter)
  "proc_rss_bytes", //   resident set (gauge)
  "proc_minflt", //      minor faults (counter)
  "proc_majflt", //      major faults (counter)
  "proc_read_bytes", //  /proc/PID/io rchar (counter)
  "proc_write_bytes", // /proc/PID/io wchar (counter)
  "proc_ctxsw", //       voluntary + involuntary context switches (counter)
] as const;

/** cgroup v2 features of the root process's cgroup. */
export const CGROUP_FEATURES = [
  "cg_cpu_usec", //      cpu.stat usage_usec (counter)
  "cg_memory_bytes", //  memory.current (gauge)
  "cg_io_rbytes", //     io.stat rbytes (counter)
  "cg_io_wbytes", //     io.stat wbytes (counter)
] as const;

/** Every feature name, in the order {@linkcode FeatureSampler.sample} returns them. */
export const FEATURE_NAMES: readonly string[] = [
  ...SYSTEM_FEATURES,
  ...PROCESS_FEATURES,
  ...CGROUP_FEATURES,
];

const GAUGES = new Set(["mem_free_bytes", "proc_rss_bytes", "cg_memory_bytes"]);
const CLOCK_TICKS_PER_SECOND = 100; // USER_HZ on Linux
const PAGE_SIZE = 4096;

/** Options of {@linkcode FeatureSampler}. */
export interface FeatureSamplerOptions {
  /** Root of procfs. @default "/proc" */
  procRoot?: string;
  /** Root of the cgroup v2 hierarchy. @default the cgroup2 mount found in /proc/self/mountinfo */
  cgroupRoot?: string;
}

/**
 * Samples {@linkcode FEATURE_NAMES} for a process tree, turning counters into per-sample increases.
 *
 * @example
 * ```ts ignore
 * const sampler = new FeatureSampler(Deno.pid);
 * sampler.sample([Deno.pid]); // baseline: counters 0
 * const f = sampler.sample([Deno.pid]);
 * ```
 */
export class FeatureSampler {
  /** Feature names, in sample order. */
  readonly names: readonly string[] = FEATURE_NAMES;
  #proc: string;
  #cgroupDir: string | undefined;
  #prevSystem: Float64Array | undefined;
  #prevCgroup: Float64Array | undefined;
  #prevPerPid = new Map<number, Float64Array>();

  /**
   * @param rootPid the tree's root process; its cgroup is sampled
   * @param options where procfs and cgroupfs live
   */
  constructor(rootPid: number, options: FeatureSamplerOptions = {}) {
    const { procRoot = "/proc", cgroupRoot = findCgroup2Mount(procRoot) } = options;
    this.#proc = procRoot;
    this.#cgroupDir = cgroupDirOf(procRoot, cgroupRoot, rootPid);
  }

  /** Sample every feature for the given live pids of the tree. */
  sample(pids: readonly number[]): Float64Array {
    const system = this.#readSystem();
    const cgroup = this.#readCgroup();
    const out = new Float64Array(FEATURE_NAMES.length);
    let i = 0;
    for (let k = 0; k < system.length; k++, i++) {
      out[i] = delta(SYSTEM_FEATURES[k], system[k], this.#prevSystem?.[k]);
    }
    const perProcess = this.#processDeltas(pids);
    for (let k = 0; k < perProcess.length; k++, i++) out[i] = perProcess[k];
    for (let k = 0; k < cgroup.length; k++, i++) {
      out[i] = delta(CGROUP_FEATURES[k], cgroup[k], this.#prevCgroup?.[k]);
    }
    this.#prevSystem = system;
    this.#prevCgroup = cgroup;
    return out;
  }

  #readSystem(): Float64Array {
    const vmstat = keyValues(readText(`${this.#proc}/vmstat`), " ");
    const stat = readText(`${this.#proc}/stat`);
    const meminfo = keyValues(readText(`${this.#proc}/meminfo`), ":");
    return Float64Array.from([
      vmstat.get("pgfault") ?? NaN,
      vmstat.get("pgpgin") ?? NaN,
      vmstat.get("pgpgout") ?? NaN,
      statLine(stat, "ctxt"),
      statLine(stat, "softirq"),
      (meminfo.get("MemFree") ?? NaN) * 1024,
      diskBytesWritten(readText(`${this.#proc}/diskstats`)),
    ]);
  }

  /** Per-process counters summed as increases per pid, so exits never make a sum go backwards. */
  #processDeltas(pids: readonly number[]): Float64Array {
    const sum = new Float64Array(PROCESS_FEATURES.length);
    const seen = new Map<number, Float64Array>();
    for (const pid of pids) {
      const now = readProcess(this.#proc, pid);
      if (!now) continue;
      seen.set(pid, now);
      const prev = this.#prevPerPid.get(pid);
      for (let k = 0; k < now.length; k++) {
        const name = PROCESS_FEATURES[k];
        if (GAUGES.has(name)) sum[k] += now[k];
        else if (this.#prevSystem === undefined) sum[k] += 0;
        else sum[k] += Math.max(0, now[k] - (prev?.[k] ?? 0));
      }
    }
    this.#prevPerPid = seen;
    return sum;
  }

  #readCgroup(): Float64Array {
    const dir = this.#cgroupDir;
    if (!dir) return new Float64Array(CGROUP_FEATURES.length).fill(NaN);
    const cpu = keyValues(readText(`${dir}/cpu.stat`), " ");
    const memory = Number(readText(`${dir}/memory.current`).trim() || NaN);
    let rbytes = NaN;
    let wbytes = NaN;
    const io = readText(`${dir}/io.stat`);
    if (io !== "" || exists(`${dir}/io.stat`)) {
      rbytes = 0;
      wbytes = 0;
      for (const m of io.matchAll(/rbytes=(\d+)/g)) rbytes += Number(m[1]);
      for (const m of io.matchAll(/wbytes=(\d+)/g)) wbytes += Number(m[1]);
    }
    return Float64Array.from([cpu.get("usage_usec") ?? NaN, memory, rbytes, wbytes]);
  }
}

function delta(name: string, now: number, prev: number | undefined): number {
  if (GAUGES.has(name)) return now;
  if (prev === undefined || Number.isNaN(prev)) return Number.isNaN(now) ? NaN : 0;
  return Math.max(0, now - prev);
}

function readProcess(proc: string, pid: number): Float64Array | undefined {
  const stat = readText(`${proc}/${pid}/stat`);
  if (stat === "") return undefined;
  // Fields after the last ')' (comm may contain spaces or parentheses).
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // f[0] is field 3 (state): minflt = field 10, majflt = 12, utime = 14, stime = 15, rss = 24.
  const minflt = Number(f[7]);
  const majflt = Number(f[9]);
  const cpuMs = ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
  const rss = Number(f[21]) * PAGE_SIZE;
  const io = keyValues(readText(`${proc}/${pid}/io`), ":");
  const status = keyValues(readText(`${proc}/${pid}/status`), ":");
  const ctxsw = (status.get("voluntary_ctxt_switches") ?? NaN) +
    (status.get("nonvoluntary_ctxt_switches") ?? NaN);
  return Float64Array.from([
    cpuMs,
    rss,
    minflt,
    majflt,
    io.get("rchar") ?? NaN,
    io.get("wchar") ?? NaN,
    ctxsw,
  ]);
}

/** The cgroup v2 mount point (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on hybrid hosts). */
export function findCgroup2Mount(procRoot = "/proc"): string | undefined {
  for (const line of readText(`${procRoot}/self/mountinfo`).split("\n")) {
    const [left, right] = line.split(" - ");
    if (right?.startsWith("cgroup2 ")) return left.split(" ")[4];
  }
  return undefined;
}

function cgroupDirOf(proc: string, root: string | undefined, pid: number): string | undefined {
  if (!root) return undefined;
  const line = readText(`${proc}/${pid}/cgroup`).split("\n").find((l) => l.startsWith("0::"));
  if (!line) return undefined;
  const dir = `${root}${line.slice(3).trim()}`.replace(/\/$/, "");
  return exists(`${dir}/cpu.stat`) ? dir : undefined;
}

/** Sum sectors written × 512 over whole disks (not partitions, loop or ram devices). */
function diskBytesWritten(diskstats: string): number {
  let sectors = 0;
  for (const line of diskstats.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const name = f[2];
    if (/^(loop|ram|zram|dm-|sr)/.test(name)) continue;
    if (!exists(`/sys/block/${name}`)) continue; // partitions are not under /sys/block
    sectors += Number(f[9]);
  }
  return sectors * 512;
}

function statLine(stat: string, key: string): number {
  const line = stat.split("\n").find((l) => l.startsWith(`${key} `));
  return line ? Number(line.split(/\s+/)[1]) : NaN;
}

function keyValues(text: string, sep: string): Map<string, number> {
  const map = new Map<string, number>();
  for (const line of text.split("\n")) {
    const at = line.indexOf(sep);
    if (at <= 0) continue;
    const value = Number.parseFloat(line.slice(at + 1).trim());
    if (!Number.isNaN(value)) map.set(line.slice(0, at).trim(), value);
  }
  return map;
}

function readText(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}
