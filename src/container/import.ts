/**
 * The destination side of a podman container's final phase: turn the files that arrived (podman's
 * config.dump, spec.dump, … and the CRIU images in `checkpoint/`) into an export podman accepts,
 * and `podman container restore --import` it with the tree left stopped, so the driver can
 * verify it and resume it only after the source committed.
 *
 * Three things make the export fit this node (and let two nodes share one machine):
 * - config.dump's paths under the source's graph and run roots (conmon pid file, pid file, log,
 *   shm, secrets, static dir) are moved under this node's roots; any other path in them is refused;
 * - the cgroup parent can be replaced by the node's own (the restored container keeps its ID and
 *   with it its cgroup name: on one host the source's and the destination's would collide);
 * - spec.dump carries the annotation `org.criu.config` naming a CRIU configuration file with
 *   `leave-stopped` (and `tcp-close` for `--tcp close`: podman has no such flag), which runc
 *   hands to CRIU: the restored tasks stay stopped until
 *   {@linkcode resumeContainer}. The file is deleted as soon as the restore returns, and CRIU
 *   ignores a configuration file that does not exist, so later checkpoints are unaffected.
 *
 * @example
 * ```ts
 * const r = await importPodman(node, { dir: "/var/lib/u2cm/migrations/m1/export", sourceRoots, destRoots });
 * await resumeContainer(r.pid);
 * ```
 *
 * @module
 */
import { podman } from "./podman.ts";
import { runRuntime } from "./command.ts";
import { signalAll, treePids } from "../tracker/proc.ts";
import type { PodmanNode } from "./types.ts";

/** A node's storage roots (from `podman info`). */
export interface StoreRoots {
  /** Graph root. */
  graphRoot: string;
  /** Run root. */
  runRoot: string;
}

/** Options of {@linkcode importPodman}. */
export interface ImportOptions {
  /** The export directory (podman's files plus `checkpoint/`), inside the migration's directory. */
  dir: string;
  /** The source's storage roots, as its restore request states them. */
  sourceRoots: StoreRoots;
  /** This node's storage roots. */
  destRoots: StoreRoots;
  /** Replace the container's cgroup parent with this one. @default the source's */
  cgroupParent?: string;
  /** Restore under another name (`--name`). @default the source's name */
  name?: string;
  /** Leave the restored tasks stopped. @default true */
  leaveStopped?: boolean;
  /** Restore established TCP connections. @default false */
  tcpEstablished?: boolean;
  /**
   * The checkpoint holds established TCP connections (dumped with `--tcp-established`) that are
   * to be restored closed (`tcp-close`): clients see a reset and reconnect. @default false
   */
  tcpClose?: boolean;
  /** The export holds volumes to create here (`volumes/<name>.tar`). @default false */
  withVolumes?: boolean;
  /** Cancels the restore. */
  signal?: AbortSignal;
}

/** A restored container. */
export interface ImportedContainer {
  /** Its ID (the source's). */
  id: string;
  /** Its name. */
  name: string;
  /** Host pid of its init. */
  pid: number;
  /** Wall-clock ms of packing the export. */
  packMs: number;
  /** Wall-clock ms of `podman container restore --import`. */
  restoreMs: number;
}

/** Raised when an arriving checkpoint names paths this node will not use. */
export class ImportRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ImportRefusedError";
  }
}

/** Files of config.dump that name host paths of the container's own storage. */
const STORE_PATH_KEYS = [
  "conmonPidFile",
  "pid_file",
  "logPath",
  "ShmDir",
  "secretsPath",
  "staticDir",
] as const;

/**
 * Rewrite `dir`'s config.dump and spec.dump for this node, pack the export, and restore it.
 * Resolves once podman reports the container running (its tasks stopped unless `leaveStopped`
 * is false).
 */
export async function importPodman(
  node: PodmanNode,
  options: ImportOptions,
): Promise<ImportedContainer> {
  const { dir, sourceRoots, destRoots, cgroupParent, name, signal } = options;
  const { leaveStopped = true, tcpEstablished = false, tcpClose = false } = options;
  const parent = dir.replace(/\/+$/, "").replace(/\/[^/]+$/, "");
  const config = rewriteConfigDump(
    await Deno.readTextFile(`${dir}/config.dump`),
    sourceRoots,
    destRoots,
    cgroupParent,
  );
  await Deno.writeTextFile(`${dir}/config.dump`, JSON.stringify(config));
  const criuConf = `${parent}/criu-restore.conf`;
  const spec = JSON.parse(await Deno.readTextFile(`${dir}/spec.dump`));
  spec.annotations = { ...(spec.annotations ?? {}) };
  const conf = [...(leaveStopped ? ["leave-stopped"] : []), ...(tcpClose ? ["tcp-close"] : [])];
  if (conf.length > 0) {
    await Deno.writeTextFile(criuConf, conf.join("\n") + "\n");
    spec.annotations["org.criu.config"] = criuConf;
  } else {
    delete spec.annotations["org.criu.config"];
  }
  await Deno.writeTextFile(`${dir}/spec.dump`, JSON.stringify(spec));
  await Deno.mkdir(`${dir}/artifacts`, { recursive: true });
  const tar = `${parent}/import.tar`;
  const t0 = performance.now();
  await runRuntime("tar", ["-C", dir, "-cf", tar, "."], { signal });
  const packMs = performance.now() - t0;
  const t1 = performance.now();
  try {
    await podman(node, [
      "container",
      "restore",
      "--import",
      tar,
      ...(name ? ["--name", name] : []),
      ...(tcpEstablished || tcpClose ? ["--tcp-established"] : []),
      ...(options.withVolumes ? [] : ["--ignore-volumes"]),
    ], { signal });
  } finally {
    await Deno.remove(criuConf).catch(() => {});
    await Deno.remove(tar).catch(() => {});
  }
  const restoreMs = performance.now() - t1;
  const id = String(config.id);
  // the restored init's pid as runc wrote it (no podman round trip on the downtime path)
  const pid = await readPid(config.pid_file).catch(async () =>
    Number((await podman(node, ["inspect", "--format", "{{.State.Pid}}", id])).trim())
  );
  if (!(pid > 0)) throw new Error(`container ${id} restored but reports no pid`);
  return { id, name: name ?? String(config.name ?? ""), pid, packMs, restoreMs };
}

async function readPid(file: unknown): Promise<number> {
  if (typeof file !== "string" || file === "") throw new Error("no pid file");
  const pid = Number((await Deno.readTextFile(file)).trim());
  if (!(pid > 0)) throw new Error(`no pid in ${file}`);
  return pid;
}

/**
 * The config.dump text rewritten for this node: store paths moved from the source's roots to
 * this node's, the cgroup parent replaced when asked. Throws {@linkcode ImportRefusedError} when
 * the ID is malformed or a store path lies outside the container's own storage directories.
 */
export function rewriteConfigDump(
  text: string,
  source: StoreRoots,
  dest: StoreRoots,
  cgroupParent?: string,
): Record<string, unknown> {
  const config = JSON.parse(text) as Record<string, unknown>;
  const id = String(config.id ?? "");
  if (!/^[0-9a-f]{64}$/.test(id)) throw new ImportRefusedError(`config.dump has no valid id`);
  const move = (p: string) => {
    for (const [from, to] of [[source.graphRoot, dest.graphRoot], [source.runRoot, dest.runRoot]]) {
      if (p === from || p.startsWith(`${from}/`)) return to + p.slice(from.length);
    }
    return p;
  };
  const allowed = [dest.graphRoot, dest.runRoot].map((r) => `${r}/overlay-containers/${id}/`);
  const check = (key: string, p: string) => {
    if (p.includes("/../") || !allowed.some((a) => p.startsWith(a))) {
      throw new ImportRefusedError(`config.dump ${key} '${p}' is outside the container's storage`);
    }
    return p;
  };
  for (const key of STORE_PATH_KEYS) {
    const v = config[key];
    if (typeof v === "string" && v !== "") config[key] = check(key, move(v));
  }
  if (Array.isArray(config.mounts)) {
    config.mounts = config.mounts.map((m) => check("mounts", move(String(m))));
  }
  if (cgroupParent !== undefined) config.cgroupParent = cgroupParent;
  return config;
}

/** Resume a container restored with its tasks stopped: SIGCONT to every task of its tree. */
export function resumeContainer(pid: number): void {
  signalAll(treePids(pid), "SIGCONT");
}

/** Remove container `ref` from `node` at once (`podman rm -f -t 0`: no 10 s stop timeout). */
export async function removeContainer(
  node: PodmanNode,
  ref: string,
  options: { signal?: AbortSignal } = {},
): Promise<void> {
  await podman(node, ["rm", "--force", "--time", "0", ref], options);
}
