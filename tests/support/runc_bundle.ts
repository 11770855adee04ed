/**
 * OCI bundles for the runc tests: the memcheck rootfs (tests/support/container_images.ts) under
 * `runc spec`'s defaults (its own namespaces, a private empty network namespace, no terminal),
 * running memcheck with the arguments given; and waiting for lines in the log file a runc
 * container's stdout goes to.
 *
 * @example
 * ```ts
 * const bundle = memcheckBundle(`${root}/bundle`, ["--mib", "16"]);
 * await runLogged(node, ["run", "--detach", "--bundle", bundle, "mc"], { logFile });
 * await waitLine(logFile, /^tick 10 /);
 * ```
 *
 * @module
 */
import { memcheckRootfs } from "./container_images.ts";
import { requireCommand } from "./env.ts";

/** Make a bundle at `dir` running `/bin/memcheck ARGS`; returns `dir`. */
export function memcheckBundle(dir: string, args: string[]): string {
  const runcBin = requireCommand("runc");
  Deno.mkdirSync(`${dir}/rootfs`, { recursive: true });
  new Deno.Command("tar", { args: ["-C", `${dir}/rootfs`, "-xf", memcheckRootfs()] })
    .outputSync();
  new Deno.Command(runcBin, { args: ["spec"], cwd: dir }).outputSync();
  const spec = JSON.parse(Deno.readTextFileSync(`${dir}/config.json`));
  spec.process.terminal = false;
  spec.process.args = ["/bin/memcheck", ...args];
  Deno.writeTextFileSync(`${dir}/config.json`, JSON.stringify(spec));
  return dir;
}

/** The lines of a log file so far (none when it does not exist yet). */
export function logLines(path: string): string[] {
  try {
    return Deno.readTextFileSync(path).split("\n");
  } catch {
    return [];
  }
}

/** Wait until log file `path` has a line matching `re`; resolves with that line. */
export async function waitLine(path: string, re: RegExp, timeoutMs = 20_000): Promise<string> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const hit = logLines(path).find((l) => re.test(l));
    if (hit) return hit;
    await new Promise((r) => setTimeout(r, 50));
  }
  const last = logLines(path).slice(-3).join(" | ");
  throw new Error(`no line matching ${re} in ${path}; last: ${last}`);
}

/** memcheck's last tick in log file `path` (0 before the first). */
export function lastTick(path: string): number {
  const line = logLines(path).filter((l) => l.startsWith("tick ")).at(-1) ?? "tick 0";
  return Number(line.split(" ")[1]);
}
