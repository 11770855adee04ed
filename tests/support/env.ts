/**
 * Environment requirements of tests. A test that needs root, a command, CRIU or network namespaces
 * calls one of these first: when the requirement is missing it throws with the reason and the fix,
 * so the test fails loudly (in CI and locally) instead of silently skipping.
 *
 * @module
 */

/** Throw unless running as root. */
export function requireRoot(why: string): void {
  if (Deno.uid() !== 0) {
    throw new Error(`this test needs root (${why}); run the test task as root`);
  }
}

/** Throw unless `name` is an executable on PATH; returns its path. */
export function requireCommand(name: string, debianPackage = name): string {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    const path = `${dir}/${name}`;
    try {
      const info = Deno.statSync(path);
      if (info.isFile && (info.mode ?? 0) & 0o111) return path;
    } catch { /* not here */ }
  }
  throw new Error(
    `this test needs '${name}' (Debian package ${debianPackage}); the test task installs it — ` +
      `run 'deno task test' or 'apt-get install ${debianPackage}'`,
  );
}

/** True when running under CI (`CI=true`). */
export function inCI(): boolean {
  return Deno.env.get("CI") === "true";
}
