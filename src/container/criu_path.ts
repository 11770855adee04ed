/**
 * The CRIU a container runtime reaches. runc and crun run `criu` from PATH; u2cm's own CRIU often
 * is a private prefix (`u2cm doctor --fix`) that is not on PATH. So u2cm runs every runtime
 * command with a directory first on PATH whose `criu` is the CRIU u2cm itself uses — unless the
 * node's environment sets PATH itself (a test node, or a config that names one).
 *
 * @example
 * ```ts
 * const env = withCriuOnPath({});
 * console.log(env.PATH);
 * ```
 *
 * @module
 */
import { locateCriu } from "../criu/locate.ts";
import { cacheDir } from "../native/build.ts";

/** `env` with PATH led by a directory whose `criu` is u2cm's CRIU (when that is not on PATH). */
export function withCriuOnPath(env: Record<string, string>): Record<string, string> {
  if (env.PATH !== undefined) return env;
  const criu = locateCriu();
  if (!criu || criu.source === "system") return env;
  const dir = `${cacheDir()}/criu-path`;
  const link = `${dir}/criu`;
  try {
    if (Deno.readLinkSync(link) !== criu.path) throw new Error("stale");
  } catch {
    try {
      Deno.mkdirSync(dir, { recursive: true });
      try {
        Deno.removeSync(link);
      } catch { /* absent */ }
      Deno.symlinkSync(criu.path, link);
    } catch {
      return env;
    }
  }
  return { ...env, PATH: `${dir}:${Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin"}` };
}
