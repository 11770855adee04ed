/**
 * CPU throttling of a process tree (auto-converge): the tree moves into a cgroup of its own and
 * gets a CPU cap there — cgroup v2 `cpu.max` where the cpu controller is enabled, else cgroup v1
 * `cpu.cfs_quota_us`. Stepwise (any percent 0–95), and released — tree moved back, cgroup
 * removed — on every exit path through {@linkcode CpuThrottle.release}.
 *
 * @module
 */

/** Where a throttle cgroup lives. */
export interface CgroupLayout {
  /** `v2` (cpu.max) or `v1` (cpu.cfs_quota_us). */
  version: "v1" | "v2";
  /** The mount point of the hierarchy holding the cpu controller. */
  root: string;
}

/** Find the cgroup hierarchy with a usable cpu controller, or undefined. */
export function cpuCgroupLayout(): CgroupLayout | undefined {
  for (const root of ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]) {
    try {
      const ctl = Deno.readTextFileSync(`${root}/cgroup.controllers`).split(/\s+/);
      const sub = Deno.readTextFileSync(`${root}/cgroup.subtree_control`).split(/\s+/);
      if (ctl.includes("cpu") && sub.includes("cpu")) return { version: "v2", root };
    } catch { /* not a v2 root */ }
  }
  try {
    Deno.statSync("/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
    return { version: "v1", root: "/sys/fs/cgroup/cpu" };
  } catch {
    return undefined;
  }
}

/** A CPU cap on a tree. */
export interface CpuThrottle {
  /** The cap now in force, in percent of one CPU taken away (0 = none). */
  readonly percent: number;
  /** Set the cap: the tree may use (100 - percent)% of one CPU; 0 lifts it. */
  set(percent: number): void;
  /** Move the tree back to where it was and remove the cgroup. Idempotent. */
  release(): void;
}

const PERIOD_US = 100_000;

/**
 * Put `pids` into a new cgroup `u2cm-<name>` (lazily, on the first non-zero `set`). Throws when
 * no cpu controller is usable.
 */
export function createThrottle(
  name: string,
  pids: () => number[],
  layout = cpuCgroupLayout(),
): CpuThrottle {
  if (!layout) throw new Error("no cgroup cpu controller (v2 cpu.max or v1 cpu) to throttle with");
  const dir = `${layout.root}/u2cm-${name.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  const origin = new Map<number, string>();
  let created = false;
  let percent = 0;
  const enter = () => {
    Deno.mkdirSync(dir, { recursive: true });
    created = true;
    for (const pid of pids()) {
      const from = cgroupOf(pid, layout);
      if (from === undefined) continue;
      try {
        Deno.writeTextFileSync(`${dir}/cgroup.procs`, `${pid}\n`);
        origin.set(pid, from);
      } catch { /* exited */ }
    }
  };
  const write = (p: number) => {
    const quota = Math.max(1000, Math.round(PERIOD_US * (100 - p) / 100));
    if (layout.version === "v2") {
      Deno.writeTextFileSync(
        `${dir}/cpu.max`,
        p === 0 ? `max ${PERIOD_US}\n` : `${quota} ${PERIOD_US}\n`,
      );
    } else {
      Deno.writeTextFileSync(`${dir}/cpu.cfs_period_us`, `${PERIOD_US}\n`);
      Deno.writeTextFileSync(`${dir}/cpu.cfs_quota_us`, p === 0 ? "-1\n" : `${quota}\n`);
    }
  };
  return {
    get percent() {
      return percent;
    },
    set(p: number) {
      const next = Math.max(0, Math.min(95, Math.round(p)));
      if (next === percent) return;
      if (!created) {
        if (next === 0) return;
        enter();
      }
      write(next);
      percent = next;
    },
    release() {
      if (!created) return;
      for (const pid of readProcs(dir)) {
        const back = origin.get(pid) ?? "/";
        try {
          Deno.writeTextFileSync(
            `${layout.root}${back === "/" ? "" : back}/cgroup.procs`,
            `${pid}\n`,
          );
        } catch {
          try {
            Deno.writeTextFileSync(`${layout.root}/cgroup.procs`, `${pid}\n`);
          } catch { /* exited */ }
        }
      }
      try {
        Deno.removeSync(dir);
      } catch { /* still busy: a task exited mid-move; the empty cgroup is harmless */ }
      created = false;
      percent = 0;
    },
  };
}

/** The cgroup path of `pid` in the hierarchy of `layout`. */
function cgroupOf(pid: number, layout: CgroupLayout): string | undefined {
  try {
    for (const line of Deno.readTextFileSync(`/proc/${pid}/cgroup`).split("\n")) {
      const [, ctl, path] = line.split(":");
      if (path === undefined) continue;
      if (layout.version === "v2" ? line.startsWith("0::") : ctl.split(",").includes("cpu")) {
        return path;
      }
    }
  } catch { /* gone */ }
  return undefined;
}

function readProcs(dir: string): number[] {
  try {
    return Deno.readTextFileSync(`${dir}/cgroup.procs`).split("\n").filter((l) => l).map(Number);
  } catch {
    return [];
  }
}

/**
 * Lift the cap of a throttle whose owner died (recovery): the cgroup `u2cm-<name>` gets no quota,
 * and is removed when the tree left it. Nothing happens when there is no such cgroup.
 */
export function liftThrottle(name: string, layout = cpuCgroupLayout()): void {
  if (!layout) return;
  const dir = `${layout.root}/u2cm-${name.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  try {
    if (layout.version === "v2") Deno.writeTextFileSync(`${dir}/cpu.max`, `max ${PERIOD_US}\n`);
    else Deno.writeTextFileSync(`${dir}/cpu.cfs_quota_us`, "-1\n");
  } catch {
    return; // no such cgroup
  }
  try {
    Deno.removeSync(dir);
  } catch { /* the tree is still in it, uncapped */ }
}
