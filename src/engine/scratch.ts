/**
 * A migration's scratch directory on the source: created by u2cm inside the work directory (which
 * u2cm never removes), removed on success, on failure and by recovery; and CRIU's logs of a
 * failed migration, kept under the state directory.
 *
 * @module
 */

/** Prefix of every scratch directory u2cm creates (`u2cm-<id>-XXXX`). */
export const SCRATCH_PREFIX = "u2cm-";

/**
 * Create a fresh scratch directory for migration `id` inside `workDir` (created when missing).
 *
 * @example
 * ```ts
 * const dir = await makeScratch("/dev/shm", "m1"); // /dev/shm/u2cm-m1-abc123
 * ```
 */
export async function makeScratch(workDir: string, id: string): Promise<string> {
  await Deno.mkdir(workDir, { recursive: true });
  return await Deno.makeTempDir({ dir: workDir, prefix: `${SCRATCH_PREFIX}${id}-` });
}

/**
 * Remove a scratch directory u2cm created for a migration: only a directory whose name has the
 * scratch prefix is touched.
 */
export async function removeScratch(dir: string | undefined): Promise<void> {
  if (!dir || !dir.slice(dir.lastIndexOf("/") + 1).startsWith(SCRATCH_PREFIX)) return;
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

/**
 * Copy CRIU's logs (`*.log` in the scratch directory and its subdirectories) to
 * `<stateDir>/logs/<id>-<subdir>-<name>`; returns the kept files.
 */
export async function keepLogs(scratch: string, stateDir: string, id: string): Promise<string[]> {
  const kept: string[] = [];
  const logs = `${stateDir}/logs`;
  const visit = async (dir: string, tag: string) => {
    let entries: Deno.DirEntry[] = [];
    try {
      entries = await Array.fromAsync(Deno.readDir(dir));
    } catch {
      return; // no such directory
    }
    for (const e of entries) {
      if (e.isDirectory && tag === "") await visit(`${dir}/${e.name}`, e.name);
      if (!e.isFile || !e.name.endsWith(".log")) continue;
      await Deno.mkdir(logs, { recursive: true, mode: 0o700 });
      const to = `${logs}/${id}-${tag ? `${tag}-` : ""}${e.name}`;
      if (await Deno.copyFile(`${dir}/${e.name}`, to).then(() => true, () => false)) kept.push(to);
    }
  };
  await visit(scratch, "");
  return kept;
}
