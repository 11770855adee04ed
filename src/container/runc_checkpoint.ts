/**
 * Checkpoint and restore of containers that runc runs directly from an OCI bundle. The source's
 * `runc checkpoint` writes CRIU's images (and stops the container); the destination restores with
 * `runc restore --detach` from a bundle of its own in the migration directory whose config.json is
 * the original bundle's with `root.path` made absolute and the annotation `org.criu.config` naming
 * a CRIU configuration file with `leave-stopped` (runc has no such flag), so the tree stays stopped
 * until the commit. The original bundle (its rootfs) must exist at the same path on the destination.
 * The container's stdio pipes are replaced by the restoring process's stdio (runc does this from
 * descriptors.json): a pipe into a log file, since a host file as stdio could not be dumped again.
 *
 * @example
 * ```ts
 * const images = await checkpointRunc(node, { id: "web", workDir: "/dev/shm/u2cm/m1" });
 * const pid = await restoreRunc(node, { id: "web", imagesDir: images, bundle: "/srv/web", workDir, logFile });
 * ```
 *
 * @module
 */
import { runc } from "./runc.ts";
import { RuntimeCommandError } from "./command.ts";
import { withCriuOnPath } from "./criu_path.ts";
import type { RuncNode } from "./types.ts";

/** Options of {@linkcode checkpointRunc}. */
export interface RuncCheckpointOptions {
  /** Container id. */
  id: string;
  /** Directory u2cm created for this migration. */
  workDir: string;
  /** Dump established TCP connections. @default false */
  tcpEstablished?: boolean;
  /** Cancels the checkpoint. */
  signal?: AbortSignal;
}

/** Checkpoint runc container `id` (it stops); resolves with the CRIU images directory. */
export async function checkpointRunc(
  node: RuncNode,
  options: RuncCheckpointOptions,
): Promise<string> {
  const { id, workDir, tcpEstablished = false, signal } = options;
  const images = `${workDir}/checkpoint`;
  const work = `${workDir}/criu-work`;
  await Deno.mkdir(images, { recursive: true });
  await Deno.mkdir(work, { recursive: true });
  await withCriuLog(`${work}/dump.log`, () =>
    runc(node, [
      "checkpoint",
      "--image-path",
      images,
      "--work-path",
      work,
      ...(tcpEstablished ? ["--tcp-established"] : []),
      id,
    ], { signal }));
  return images;
}

/** Run `f`; when it fails, add CRIU's error lines from `log` to the error. */
async function withCriuLog<T>(log: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    const text = await Deno.readTextFile(log).catch(() => "");
    const errors = text.split("\n").filter((l) => /Error \(/.test(l)).slice(-3).join("; ");
    if (errors && e instanceof Error) e.message += ` — CRIU: ${errors} (log: ${log})`;
    throw e;
  }
}

/** Options of {@linkcode restoreRunc}. */
export interface RuncRestoreOptions {
  /** Container id to restore under. */
  id: string;
  /** CRIU's images. */
  imagesDir: string;
  /** The original bundle (its config.json and rootfs). */
  bundle: string;
  /** The migration's directory (the restore bundle and CRIU config go inside). */
  workDir: string;
  /** Leave the restored tasks stopped. @default true */
  leaveStopped?: boolean;
  /** Restore established TCP connections. @default false */
  tcpEstablished?: boolean;
  /**
   * The file the restored container's stdout and stderr are appended to (through a pipe and a
   * `cat` beside it: runc hands the restoring process's stdio to the container in place of the
   * pipes it had, and a file given directly could not be dumped again).
   */
  logFile: string;
  /** Cancels the restore. */
  signal?: AbortSignal;
}

/** Restore runc container `id`; resolves with its init's host pid. */
export async function restoreRunc(node: RuncNode, options: RuncRestoreOptions): Promise<number> {
  const { id, imagesDir, bundle, workDir, leaveStopped = true, tcpEstablished = false } = options;
  const conf = `${workDir}/criu-restore.conf`;
  await Deno.mkdir(workDir, { recursive: true });
  // Left stopped: a bundle of its own whose config.json names a CRIU config (runc has no flag);
  // otherwise (a rollback on the source) the original bundle as it is.
  let restoreBundle = bundle;
  if (leaveStopped) {
    const spec = JSON.parse(await Deno.readTextFile(`${bundle}/config.json`));
    const rootPath = String(spec.root?.path ?? "rootfs");
    spec.root = {
      ...spec.root,
      path: rootPath.startsWith("/") ? rootPath : `${bundle}/${rootPath}`,
    };
    restoreBundle = `${workDir}/bundle`;
    await Deno.mkdir(restoreBundle, { recursive: true });
    spec.annotations = { ...(spec.annotations ?? {}) };
    await Deno.writeTextFile(conf, "leave-stopped\n");
    spec.annotations["org.criu.config"] = conf;
    await Deno.writeTextFile(`${restoreBundle}/config.json`, JSON.stringify(spec));
  }
  const pidFile = `${workDir}/restored.pid`;
  const work = `${workDir}/criu-restore-work`;
  await Deno.mkdir(work, { recursive: true });
  try {
    await withCriuLog(`${work}/restore.log`, () =>
      runLogged(node, [
        "restore",
        "--detach",
        "--image-path",
        imagesDir,
        "--work-path",
        work,
        "--bundle",
        restoreBundle,
        "--pid-file",
        pidFile,
        ...(tcpEstablished ? ["--tcp-established"] : []),
        id,
      ], { logFile: options.logFile, signal: options.signal }));
  } finally {
    await Deno.remove(conf).catch(() => {});
  }
  const pid = Number((await Deno.readTextFile(pidFile)).trim());
  if (!(pid > 0)) throw new Error(`runc restored ${id} but wrote no pid`);
  return pid;
}

/**
 * Run `runc ARGS` (run --detach, restore --detach) so that the container's stdout and stderr are
 * an anonymous pipe into `cat >> logFile`, which lives as long as the container. Resolves when
 * runc itself has exited 0; throws with runc's output otherwise.
 */
export async function runLogged(
  node: RuncNode,
  args: string[],
  options: { logFile: string; signal?: AbortSignal; timeoutMs?: number },
): Promise<void> {
  const { logFile, signal, timeoutMs = 120_000 } = options;
  const status = `${logFile}.runc-${crypto.randomUUID()}`;
  const child = new Deno.Command("setsid", {
    args: [
      "sh",
      "-c",
      'log="$1"; st="$2"; shift 2; { "$@"; echo $? >"$st"; } 2>&1 </dev/null | cat >>"$log"',
      "sh",
      logFile,
      status,
      node.bin,
      "--root",
      node.root,
      ...args,
    ],
    env: withCriuOnPath(node.env),
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  child.unref();
  const until = Date.now() + timeoutMs;
  try {
    for (;;) {
      signal?.throwIfAborted();
      const text = await Deno.readTextFile(status).catch(() => "");
      if (text.endsWith("\n")) {
        const code = Number(text.trim());
        if (code === 0) return;
        const tail = (await Deno.readTextFile(logFile).catch(() => "")).trim().split("\n")
          .slice(-4).join("\n");
        throw new RuntimeCommandError(node.bin, args, code, tail);
      }
      if (Date.now() > until) throw new RuntimeCommandError(node.bin, args, -1, "timed out");
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    await Deno.remove(status).catch(() => {});
  }
}

/** Remove runc container `id` at once (`runc delete --force`). */
export async function deleteRunc(node: RuncNode, id: string): Promise<void> {
  await runc(node, ["delete", "--force", id]);
}
