/**
 * The source side of a podman container's final phase: `podman container checkpoint --export`
 * (uncompressed) of the frozen container, unpacked into the migration's work directory so the
 * driver can treat `checkpoint/` as an ordinary CRIU images directory and ship podman's own
 * files (config.dump, spec.dump, rootfs-diff.tar, …) beside it. The checkpoint stops the
 * container; until the migration commits, {@linkcode restoreLocally} brings it back on the
 * source from the checkpoint podman keeps in the container's userdata.
 *
 * @example
 * ```ts
 * const ck = await checkpointPodman(node, { id, workDir: "/dev/shm/u2cm/m1" });
 * // … ship ck.dir; on failure before commit:
 * await restoreLocally(node, { id });
 * ```
 *
 * @module
 */
import { podman } from "./podman.ts";
import { runRuntime } from "./command.ts";
import { withCriuOnPath } from "./criu_path.ts";
import type { PodmanNode } from "./types.ts";

/** Options of {@linkcode checkpointPodman}. */
export interface CheckpointOptions {
  /** The container's full ID. */
  id: string;
  /** A directory u2cm created for this migration; the export and its contents go inside. */
  workDir: string;
  /**
   * Dump established TCP connections (`--tcp-established`, CRIU ≥ 4.2 here). `--tcp close` needs
   * it too: podman cannot leave them out, so they are dumped and restored closed. @default false
   */
  tcpEstablished?: boolean;
  /** Put the named volumes' contents into the export (`--with-volumes`). @default false */
  withVolumes?: boolean;
  /** The container's userdata directory (`podman inspect` .StaticDir). @default asked for */
  userdata?: string;
  /**
   * Leave the container running in podman's view (`--leave-running`); with a CRIU configuration
   * saying `leave-stopped` its tasks stay stopped instead. @default false
   */
  leaveRunning?: boolean;
  /** A command prefix podman runs under (e.g. a mount namespace of its own). @default none */
  wrap?: string[];
  /** Cancels the checkpoint (podman is killed; the container may be left stopped). */
  signal?: AbortSignal;
}

/** What a finished checkpoint left in the work directory. */
export interface PodmanCheckpoint {
  /** Directory holding podman's files; `dir/checkpoint` is the CRIU images directory. */
  dir: string;
  /** The CRIU images directory. */
  imagesDir: string;
  /** podman's own files at the top of `dir` (config.dump, spec.dump, …), sorted. */
  files: string[];
  /** Named volumes exported (`dir/volumes/<name>.tar`). */
  volumes: string[];
  /** Wall-clock milliseconds of `podman container checkpoint` (the export unpacked meanwhile). */
  checkpointMs: number;
  /** Wall-clock milliseconds of linking the pages images in. */
  unpackMs: number;
  /** CRIU's frozen time in ms (from podman's stats), when reported. */
  frozenMs?: number;
  /** Pages CRIU wrote. */
  pagesWritten?: number;
}

/**
 * Checkpoint container `id` (which stops it) with an uncompressed export into `workDir/export/`.
 * The export is streamed through a FIFO into `tar -x`, which leaves out the pages images: they
 * stay where CRIU wrote them (the container's userdata/checkpoint, which podman keeps for a local
 * restore) and are linked into `imagesDir`, so the memory is written once, not three times.
 */
export async function checkpointPodman(
  node: PodmanNode,
  options: CheckpointOptions,
): Promise<PodmanCheckpoint> {
  const { id, workDir, tcpEstablished = false, withVolumes = false, signal } = options;
  const { leaveRunning = false, wrap = [] } = options;
  const userdata = options.userdata ??
    (await podman(node, ["inspect", "--format", "{{.StaticDir}}", id], { signal })).trim();
  const dir = `${workDir}/export`;
  await Deno.mkdir(dir, { recursive: true });
  const fifo = `${workDir}/checkpoint.fifo`;
  await runRuntime("mkfifo", ["-m", "0600", fifo], { signal });
  // the reader first: podman's open of the FIFO waits for it
  const untar = runRuntime("tar", ["-C", dir, "-xf", fifo, "--exclude=checkpoint/pages-*.img"], {
    signal,
  });
  untar.catch(() => {});
  const t0 = performance.now();
  let out: string;
  try {
    const args = [
      "container",
      "checkpoint",
      id,
      "--export",
      fifo,
      "--compress",
      "none",
      "--print-stats",
      ...(tcpEstablished ? ["--tcp-established"] : []),
      ...(withVolumes ? [] : ["--ignore-volumes"]),
      ...(leaveRunning ? ["--leave-running"] : []),
    ];
    out = wrap.length === 0
      ? await podman(node, args, { signal })
      : await runRuntime(wrap[0], [...wrap.slice(1), node.bin, ...args], {
        signal,
        env: withCriuOnPath(node.env),
      });
  } catch (e) {
    // unblock a reader still waiting for a writer
    await Deno.open(fifo, { write: true }).then((f) => f.close(), () => {});
    await untar.catch(() => {});
    throw e;
  } finally {
    await Deno.remove(fifo).catch(() => {});
  }
  await untar;
  const checkpointMs = performance.now() - t0;
  const stats = parseStats(out);
  const t1 = performance.now();
  for await (const e of Deno.readDir(`${userdata}/checkpoint`)) {
    if (e.isFile && /^pages-\d+\.img$/.test(e.name)) {
      await Deno.symlink(`${userdata}/checkpoint/${e.name}`, `${dir}/checkpoint/${e.name}`);
    }
  }
  const unpackMs = performance.now() - t1;
  const files: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.isFile) files.push(e.name);
  files.sort();
  const volumes: string[] = [];
  try {
    for await (const e of Deno.readDir(`${dir}/volumes`)) {
      if (e.isFile && e.name.endsWith(".tar")) volumes.push(e.name.slice(0, -4));
    }
  } catch { /* no volumes exported */ }
  volumes.sort();
  return {
    dir,
    imagesDir: `${dir}/checkpoint`,
    files,
    volumes,
    checkpointMs,
    unpackMs,
    ...stats,
  };
}

/** Options of {@linkcode restoreLocally}. */
export interface RestoreLocallyOptions {
  /** The container's full ID. */
  id: string;
  /** It was checkpointed with `--tcp-established`. @default false */
  tcpEstablished?: boolean;
  /** Cancels the restore. */
  signal?: AbortSignal;
}

/**
 * Roll back: restore the checkpointed container on the source from the checkpoint podman keeps
 * in its userdata, under its own name and ID. Resolves with the restored init's host pid.
 */
export async function restoreLocally(
  node: PodmanNode,
  options: RestoreLocallyOptions,
): Promise<number> {
  const { id, tcpEstablished = false, signal } = options;
  await podman(node, [
    "container",
    "restore",
    id,
    ...(tcpEstablished ? ["--tcp-established"] : []),
  ], { signal });
  const pid = Number((await podman(node, ["inspect", "--format", "{{.State.Pid}}", id])).trim());
  if (!(pid > 0)) throw new Error(`container ${id} restored but reports no pid`);
  return pid;
}

function parseStats(out: string): { frozenMs?: number; pagesWritten?: number } {
  const start = out.indexOf("{");
  if (start < 0) return {};
  try {
    const stats = JSON.parse(out.slice(start));
    const criu = stats.container_statistics?.[0]?.criu_statistics ?? {};
    return {
      ...(typeof criu.frozen_time === "number" ? { frozenMs: criu.frozen_time / 1000 } : {}),
      ...(typeof criu.pages_written === "number" ? { pagesWritten: criu.pages_written } : {}),
    };
  } catch {
    return {};
  }
}
