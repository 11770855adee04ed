/**
 * The tree guard (`tree_guard.c`): a small program u2cm runs `criu restore` under, so that a
 * restore cut short by the death of the agent (or of CRIU) never leaves a restored copy running.
 * It is a child subreaper tied to the agent: when the agent dies, or CRIU fails or is killed, it
 * SIGKILLs CRIU and every task CRIU restored, before any of them runs; when CRIU succeeds it
 * exits at once and leaves the stopped tree to the agent. Built from source with the system C
 * compiler into the cache (keyed by its checksum) or, in a compiled `u2cm`, extracted from the
 * binary.
 *
 * @example
 * ```ts
 * import { guardedCommand } from "./tree_guard.ts";
 * import { requireCriu } from "../criu/locate.ts";
 * const criu = requireCriu().path;
 * const [cmd, args] = guardedCommand(criu, ["restore", "-d", "-D", "/dev/shm/m1"]);
 * new Deno.Command(cmd, { args }).spawn();
 * ```
 *
 * @module
 */
import { crc32 } from "../util/crc32.ts";
import { exists } from "../util/fs.ts";
import { cacheDir, compile, hostArch, type ShimArch } from "./build.ts";
import { embeddedTreeGuard } from "./embedded.ts";

/** Exit statuses of the guard itself (otherwise it exits with the command's, 128 + signal when killed). */
export const TreeGuardExit = {
  /** Its parent (the agent) was gone before the command started, or died while it ran. */
  ParentGone: 124,
  /** Bad arguments. */
  Usage: 125,
  /** The command could not be started. */
  Exec: 126,
} as const;

const SOURCE = new URL("./tree_guard.c", import.meta.url);

/** Where the guard for `arch` built from the current source lives in the cache. */
export function treeGuardPath(arch: ShimArch = hostArch()): string {
  const text = Deno.readTextFileSync(SOURCE);
  const tag = crc32(new TextEncoder().encode(text)).toString(16).padStart(8, "0");
  return `${cacheDir()}/shim/u2cm-tree-guard-${arch}-${tag}`;
}

/**
 * The guard's path: for the host, `$U2CM_TREE_GUARD`, else the one embedded in a compiled binary;
 * else the cached build for `arch` (compiled first when missing; throws ShimBuildError without a compiler).
 */
export function ensureTreeGuard(arch: ShimArch = hostArch()): string {
  if (arch === hostArch()) {
    const given = Deno.env.get("U2CM_TREE_GUARD") ?? embeddedTreeGuard();
    if (given) return given;
  }
  const out = treeGuardPath(arch);
  if (exists(out)) return out;
  Deno.mkdirSync(out.slice(0, out.lastIndexOf("/")), { recursive: true });
  const tmp = `${out}.${Deno.pid}.tmp`;
  let source = SOURCE.pathname;
  const copied = SOURCE.protocol !== "file:";
  if (copied) {
    source = `${out}.${Deno.pid}.c`;
    Deno.writeTextFileSync(source, Deno.readTextFileSync(SOURCE));
  }
  try {
    compile(arch, ["-o", tmp, source]);
    Deno.renameSync(tmp, out);
  } finally {
    if (copied) Deno.removeSync(source);
  }
  return out;
}

/**
 * The program and arguments that run `program args…` under the guard, tied to this process.
 *
 * @param program the command to guard (CRIU)
 * @param args its arguments
 * @param guard the guard's path @default ensureTreeGuard()
 */
export function guardedCommand(
  program: string,
  args: readonly string[],
  guard: string = ensureTreeGuard(),
): [string, string[]] {
  return [guard, [String(Deno.pid), program, ...args]];
}
