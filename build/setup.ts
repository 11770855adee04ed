/**
 * Setup steps shared by the `test` and `demo` tasks: install the Debian packages listed in
 * build/debian-packages.txt when missing, build the native shim, provision CRIU. Each step prints
 * what it does; a failing step stops with its reason.
 *
 * @module
 */

const ROOT = new URL("..", import.meta.url).pathname;

/** Run a command, inheriting stdio; throw with `what` when it fails. */
export async function run(
  what: string,
  cmd: string[],
  env?: Record<string, string>,
): Promise<void> {
  const { code } = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    cwd: ROOT,
    env,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (code !== 0) throw new Error(`${what} failed (exit ${code}): ${cmd.join(" ")}`);
}

/** Print a step header. */
export function step(text: string): void {
  console.error(`\n==> ${text}`);
}

/** A task that installs Debian packages. */
export type SetupTask = "demo" | "test" | "arm64";

/** One line of build/debian-packages.txt. */
export interface ListedPackage {
  /** Debian package name. */
  name: string;
  /** The tasks that need it. */
  tasks: SetupTask[];
  /** Why (the comment). */
  why: string;
}

/**
 * The lines of build/debian-packages.txt: `NAME TASK… # why`.
 *
 * @example
 * ```ts
 * const demo = listedPackages().filter((p) => p.tasks.includes("demo")).map((p) => p.name);
 * ```
 */
export function listedPackages(
  text = Deno.readTextFileSync(`${ROOT}build/debian-packages.txt`),
): ListedPackage[] {
  const out: ListedPackage[] = [];
  for (const [n, line] of text.split("\n").entries()) {
    const [body, ...why] = line.split("#");
    const words = body.trim().split(/\s+/).filter((w) => w !== "");
    if (words.length === 0) continue;
    const [name, ...tasks] = words;
    const bad = tasks.filter((t) => !["demo", "test", "arm64"].includes(t));
    if (tasks.length === 0 || bad.length > 0) {
      throw new Error(
        `build/debian-packages.txt line ${n + 1}: '${name}' needs the tasks that use it ` +
          `(demo, test, arm64)${bad.length ? `, not '${bad.join(" ")}'` : ""}`,
      );
    }
    out.push({ name, tasks: tasks as SetupTask[], why: why.join("#").trim() });
  }
  return out;
}

/** Install the Debian packages `task` needs that are not installed yet (needs root). */
export async function ensureDebianPackages(task: SetupTask): Promise<void> {
  const packages = listedPackages().filter((p) => p.tasks.includes(task)).map((p) => p.name);
  const missing: string[] = [];
  for (const pkg of packages) {
    const { stdout } = await new Deno.Command("dpkg-query", {
      args: ["-W", "-f=${Status}", pkg],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!new TextDecoder().decode(stdout).includes("install ok installed")) missing.push(pkg);
  }
  if (missing.length === 0) {
    console.error(`all ${packages.length} Debian packages of the ${task} task present`);
    return;
  }
  if (Deno.uid() !== 0) {
    throw new Error(`missing Debian packages ${missing.join(" ")}; install them as root`);
  }
  console.error(`installing ${missing.join(" ")}`);
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  await run("apt-get update", ["apt-get", "update", "-q"], env);
  await run("apt-get install", [
    "apt-get",
    "install",
    "-y",
    "-q",
    "--no-install-recommends",
    ...missing,
  ], env);
}

/** Does a repository file exist? */
export function exists(relative: string): boolean {
  try {
    Deno.statSync(`${ROOT}${relative}`);
    return true;
  } catch {
    return false;
  }
}

/**
 * Build the native shim for this machine, and with `crossArm64` for aarch64 as well (the test
 * task; the demo needs only the native one).
 */
export async function buildShims({ crossArm64 }: { crossArm64: boolean }): Promise<void> {
  await run("native shim build", [Deno.execPath(), "run", "-A", "build/shim.ts"]);
  if (!crossArm64) return;
  await run("native shim aarch64 build", [
    Deno.execPath(),
    "run",
    "-A",
    "build/shim.ts",
    "--target",
    "aarch64",
  ]);
}

/** Provision CRIU (a private trixie CRIU 4.1.1 prefix where the system's fails). */
export async function provisionCriu(): Promise<void> {
  await run("CRIU provisioning", [Deno.execPath(), "run", "-A", "main.ts", "doctor", "--fix"]);
}

/** The repository root, with a trailing slash. */
export const REPO_ROOT = ROOT;
