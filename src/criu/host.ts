/**
 * Host facts CRIU-based migration depends on: kernel, architecture, root, userfaultfd and the
 * pipe size limit that lazy migration over a page server needs.
 *
 * @module
 */
import { exists } from "../util/fs.ts";

/** The `fs.pipe-max-size` lazy migration needs here (CRIU's page pipes grow to 4 MiB). */
export const LAZY_PIPE_MAX_SIZE = 4 * 1024 * 1024;

/** Host facts. */
export interface HostFacts {
  /** Kernel release (`uname -r`). */
  kernel: string;
  /** CPU architecture as Deno names it. */
  arch: string;
  /** Running as root. */
  root: boolean;
  /** `fs.pipe-max-size` in bytes, undefined when unreadable. */
  pipeMaxSize?: number;
  /** The kernel offers userfaultfd (syscall sysctl or /dev/userfaultfd present). */
  userfaultfd: boolean;
  /** How userfaultfd availability was judged. */
  userfaultfdDetail: string;
}

/** Read the host facts. */
export function hostFacts(): HostFacts {
  const sysctl = readText("/proc/sys/vm/unprivileged_userfaultfd");
  const dev = exists("/dev/userfaultfd");
  return {
    kernel: readText("/proc/sys/kernel/osrelease") ?? Deno.osRelease(),
    arch: Deno.build.arch,
    root: Deno.uid() === 0,
    pipeMaxSize: readNumber("/proc/sys/fs/pipe-max-size"),
    userfaultfd: sysctl !== undefined || dev,
    userfaultfdDetail: sysctl !== undefined
      ? `vm.unprivileged_userfaultfd=${sysctl}${dev ? ", /dev/userfaultfd present" : ""}`
      : dev
      ? "/dev/userfaultfd present"
      : "kernel built without CONFIG_USERFAULTFD",
  };
}

/**
 * Raise `fs.pipe-max-size` to at least `bytes` (root only). Returns the value now in force.
 */
export function ensurePipeMaxSize(bytes = LAZY_PIPE_MAX_SIZE): number {
  const now = readNumber("/proc/sys/fs/pipe-max-size") ?? 0;
  if (now >= bytes) return now;
  Deno.writeTextFileSync("/proc/sys/fs/pipe-max-size", `${bytes}\n`);
  return readNumber("/proc/sys/fs/pipe-max-size") ?? 0;
}

function readText(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path).trim();
  } catch {
    return undefined;
  }
}

function readNumber(path: string): number | undefined {
  const t = readText(path);
  return t === undefined || !/^\d+$/.test(t) ? undefined : Number(t);
}
