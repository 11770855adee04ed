/**
 * CRIU's kernel-feature cache (kerndat) where CRIU cannot keep it itself.
 *
 * Every CRIU start probes the kernel (~50 ms here: pagemap, netns, tun, vdso, …) unless it loads
 * `/run/criu.kdat`, its per-boot cache (CRIU's build sets that place: `RUNDIR`, `/run` for
 * Debian's CRIU). CRIU writes the cache only onto tmpfs, so that a reboot (the only way to a new
 * kernel) wipes it; on a host whose `/run` is not tmpfs every start probes again, and a freeze
 * pays the probe twice (the dump and the restore).
 *
 * {@linkcode ensureKerndatCache} lets CRIU write its cache into a directory on tmpfs
 * (`/dev/shm/u2cm-criu-kdat`: `criu check` run in a private mount namespace in which that
 * directory is mounted on `/run`) and links `/run/criu.kdat` to it. Invalidation stays CRIU's
 * and the kernel's:
 * - a reboot wipes the tmpfs: the link dangles, CRIU finds no cache and probes (it cannot save
 *   on the non-tmpfs `/run`); the next ensure makes a fresh cache;
 * - a cache another CRIU build wrote (its build time is the cache's second magic) is "stale" to
 *   CRIU, which unlinks the link and probes;
 * - u2cm also stamps the cache with the boot id and the CRIU binary it was made with, and
 *   remakes it when either differs.
 * The directory and the cache are used only while root owns them and only root can write them
 * (`/dev/shm` is writable by everyone). Nothing is touched where `/run` is tmpfs (CRIU caches by itself) or where `/run/criu.kdat` is
 * not u2cm's link. `$U2CM_KDAT_CACHE=off` turns it off.
 *
 * @module
 */
import { requireCriu } from "./locate.ts";

/** Where CRIU 4.x built by Debian reads and writes its kerndat cache. */
export const CRIU_KDAT_FILE = "/run/criu.kdat";

/** The tmpfs directory that holds the cache u2cm lets CRIU write. */
export const KDAT_DIR = "/dev/shm/u2cm-criu-kdat";

/** What {@linkcode ensureKerndatCache} found or did. */
export type KerndatState =
  /** u2cm's cache is in place and current. */
  | "cached"
  /** u2cm made a fresh cache (none, or a stale one, was there). */
  | "made"
  /** CRIU keeps the cache itself (`/run` is tmpfs) or the file there is not u2cm's. */
  | "criu"
  /** Not possible here (not root, no tmpfs, no `unshare`, CRIU wrote nothing), or turned off. */
  | "unavailable";

/** Options of {@linkcode ensureKerndatCache}. */
export interface KerndatOptions {
  /** The CRIU binary. @default requireCriu().path */
  criu?: string;
  /** Where CRIU reads its cache (its build's `RUNDIR/criu.kdat`). @default CRIU_KDAT_FILE */
  link?: string;
  /** The tmpfs directory for the cache. @default KDAT_DIR */
  dir?: string;
}

/** What the stamp beside the cache records. */
interface Stamp {
  bootId: string;
  criu: string;
  criuMtime: number;
  criuSize: number;
}

/**
 * Make sure CRIU starts load a current kerndat cache (see the module doc). Cheap when the cache
 * is in place (two stats and a small read); one `criu check` (~0.2 s) when it is made. Call it
 * before a freeze, never inside one.
 *
 * @example
 * ```ts
 * await ensureKerndatCache(); // "made" once per boot, then "cached"
 * ```
 */
export async function ensureKerndatCache(options: KerndatOptions = {}): Promise<KerndatState> {
  if (Deno.env.get("U2CM_KDAT_CACHE") === "off" || Deno.uid() !== 0) return "unavailable";
  const link = options.link ?? CRIU_KDAT_FILE;
  const dir = options.dir ?? KDAT_DIR;
  const cache = `${dir}/criu.kdat`;
  const runDir = link.slice(0, link.lastIndexOf("/")) || "/";
  if (fsTypeOf(runDir) === "tmpfs") return "criu";
  let criu: string;
  try {
    criu = options.criu ?? requireCriu().path;
  } catch {
    return "unavailable";
  }
  const want = stampOf(criu);
  if (!want) return "unavailable";
  const current = linkTarget(link);
  if (current !== undefined && current !== cache) return "criu"; // not u2cm's
  if (current === cache && sameStamp(readStamp(dir), want) && rootOnly(dir, cache)) {
    return "cached";
  }
  // Ours but stale (or dangling): drop the link, then let CRIU write a fresh cache.
  if (current === cache) await Deno.remove(link).catch(() => {});
  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  } catch {
    return "unavailable";
  }
  // /dev/shm is writable by everyone: a directory someone else made there (or a link) is never
  // trusted with what CRIU, as root, reads at each start.
  if (fsTypeOf(dir) !== "tmpfs" || !rootOnly(dir)) return "unavailable";
  for (const name of ["criu.kdat", "stamp.json"]) {
    await Deno.remove(`${dir}/${name}`).catch(() => {});
  }
  const made = await new Deno.Command("unshare", {
    args: [
      ...["--mount", "--propagation", "private", "--", "sh", "-c"],
      'mount --bind "$1" "$2" && exec "$3" check >/dev/null 2>&1',
      ...["sh", dir, runDir, criu],
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output().catch(() => undefined);
  // `criu check` may report a missing feature (exit 1) after writing the cache: the file counts.
  if (!made || !rootOnly(dir, cache)) return "unavailable";
  await Deno.remove(`${dir}/xtables.lock`).catch(() => {}); // iptables' lock, from the probe
  await Deno.writeTextFile(`${dir}/stamp.json`, JSON.stringify(want));
  try {
    await Deno.symlink(cache, link);
  } catch (e) {
    // Another u2cm linked it meanwhile: fine when it is the same link.
    if (!(e instanceof Deno.errors.AlreadyExists) || linkTarget(link) !== cache) {
      return "unavailable";
    }
  }
  return "made";
}

/**
 * Remove u2cm's cache and its link (what {@linkcode ensureKerndatCache} made, nothing else).
 *
 * @example
 * ```ts
 * await removeKerndatCache(); // CRIU probes the kernel at each start again
 * ```
 */
export async function removeKerndatCache(options: KerndatOptions = {}): Promise<void> {
  const link = options.link ?? CRIU_KDAT_FILE;
  const dir = options.dir ?? KDAT_DIR;
  if (linkTarget(link) === `${dir}/criu.kdat`) await Deno.remove(link).catch(() => {});
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

/** The symlink target of `path`; undefined when absent, "" when not a symlink. */
function linkTarget(path: string): string | undefined {
  try {
    const st = Deno.lstatSync(path);
    return st.isSymlink ? Deno.readLinkSync(path) : "";
  } catch {
    return undefined;
  }
}

function stampOf(criu: string): Stamp | undefined {
  try {
    const st = Deno.statSync(criu);
    const bootId = Deno.readTextFileSync("/proc/sys/kernel/random/boot_id").trim();
    return { bootId, criu, criuMtime: st.mtime?.getTime() ?? 0, criuSize: st.size };
  } catch {
    return undefined;
  }
}

function readStamp(dir: string): Stamp | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(`${dir}/stamp.json`));
  } catch {
    return undefined;
  }
}

function sameStamp(a: Stamp | undefined, b: Stamp): boolean {
  return a !== undefined && a.bootId === b.bootId && a.criu === b.criu &&
    a.criuMtime === b.criuMtime && a.criuSize === b.criuSize;
}

/**
 * Whether `dir` is a directory (not a link) owned by root that only root can enter, and `file`
 * (if given) a plain file there owned by root that only root can write.
 */
function rootOnly(dir: string, file?: string): boolean {
  try {
    const d = Deno.lstatSync(dir);
    if (!d.isDirectory || d.uid !== 0 || ((d.mode ?? 0o777) & 0o077) !== 0) return false;
    if (file === undefined) return true;
    const f = Deno.lstatSync(file);
    return f.isFile && f.uid === 0 && ((f.mode ?? 0o777) & 0o022) === 0;
  } catch {
    return false;
  }
}

/**
 * The type of the file system `path` lies on (from /proc/self/mountinfo: the longest mount
 * point that holds it), or undefined.
 *
 * @example
 * ```ts
 * fsTypeOf("/dev/shm"); // "tmpfs"
 * ```
 */
export function fsTypeOf(path: string): string | undefined {
  let real: string;
  try {
    real = Deno.realPathSync(path);
  } catch {
    return undefined;
  }
  let best = "", type: string | undefined;
  for (const line of Deno.readTextFileSync("/proc/self/mountinfo").split("\n")) {
    const [pre, post] = line.split(" - ");
    if (!post) continue;
    const point = unescape(pre.split(" ")[4] ?? "");
    const inside = point === "/" || real === point || real.startsWith(`${point}/`);
    if (inside && point.length >= best.length) [best, type] = [point, post.split(" ")[0]];
  }
  return type;
}

/** mountinfo escapes spaces, tabs, newlines and backslashes as octal. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
}
