/**
 * Which files of a CRIU dump directory travel to the destination, and how they are named.
 *
 * @module
 */
import { processPagesFiles, rebuiltPagesFiles } from "../criu/images/mod.ts";

/** Image file names: a letter or digit, then letters, digits, '.', '_' or '-' (≤ 128). */
export const IMAGE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Whether `name` is a plain file name safe inside a migration directory. */
export function isValidImageName(name: string): boolean {
  return IMAGE_NAME_RE.test(name) && name !== "." && name !== "..";
}

/**
 * The files of a dump directory to send: everything but CRIU's logs, pid files, sockets and —
 * when the destination rebuilds them from its page store — the processes' raw pages files
 * (those named by `pagemap-<pid>.img`), and with `shmem` those of the shared-memory objects
 * (`pagemap-shmem-<id>.img`: anonymous shared, SysV shm, memfd) whose pages travel as pages of
 * the process mapping them; the other shared-memory pages files travel whole. `rebuilt`: the
 * names of the pages files the destination rebuilds, when the caller knows them already (else
 * read from the dump's images, which costs a pass over every page of the pagemaps).
 *
 * @example
 * ```ts
 * const names = await imageFilesToSend("/dev/shm/d", true, true, new Set(["pages-1.img"]));
 * ```
 */
export async function imageFilesToSend(
  dir: string,
  rebuildPages: boolean,
  shmem = false,
  rebuilt?: ReadonlySet<string>,
): Promise<string[]> {
  const names: string[] = [];
  rebuilt ??= !rebuildPages
    ? new Set<string>()
    : shmem
    ? await rebuiltPagesFiles(dir, true)
    : await processPagesFiles(dir);
  for await (const e of Deno.readDir(dir)) {
    if (!e.isFile || !isValidImageName(e.name)) continue;
    if (e.name.endsWith(".log") || e.name.endsWith(".pid")) continue;
    if (rebuilt.has(e.name)) continue;
    names.push(e.name);
  }
  return names.sort();
}
