/**
 * The destination's side of a container migration: answer the source's pre-freeze check, and
 * restore the container from what arrived — podman's files and CRIU's images in the migration's
 * directory, pages from the page store, the image archive and volume exports when sent — left
 * stopped for the commit. With the request's `verify` (the source sent its page manifest), the
 * assembled images are checked against the manifest before the restore and the restored,
 * still stopped container is read back against it after: a mismatch fails the restore. A failure undoes everything this restore created (container, image
 * it loaded, volumes it made), so the destination keeps no trace of a migration that fails.
 *
 * @example
 * ```ts
 * const answer = await checkContainer(check, runtimeNodes());
 * const result = await restoreContainer(ctx, { nodes: runtimeNodes() });
 * ```
 *
 * @module
 */
import { rebuiltPagesFiles } from "../criu/images/mod.ts";
import type { RestoreContext, RestoreResult } from "../engine/channel.ts";
import { type Verification, VerifyRequestSchema } from "../engine/contract.ts";
import { imagesDirOf, rebuildPages } from "../engine/restore_images.ts";
import { verifyAfterRestore, verifyBeforeRestore } from "../engine/verify.ts";
import { imageInfo, loadImage, removeImage } from "./image.ts";
import { importPodman, removeContainer } from "./import.ts";
import { missingMounts, removeVolume } from "./mounts.ts";
import { inspectPodmanContainer, podmanStore } from "./podman.ts";
import type { RuntimeNodes } from "./node.ts";
import { checkRunc } from "./runc_destination.ts";
import {
  type ContainerCheck,
  type ContainerCheckAnswer,
  ContainerRestoreSchema,
  IMAGE_FILE,
  PODMAN_FILE_PREFIX,
  volumeFile,
} from "./transfer.ts";

/** Answer a source's check before it freezes anything. Never throws. */
export async function checkContainer(
  check: ContainerCheck,
  nodes: RuntimeNodes,
): Promise<ContainerCheckAnswer> {
  if (check.runtime === "runc") return await checkRunc(check, nodes);
  const problems: string[] = [];
  let runtimeOk = true;
  try {
    await podmanStore(nodes.podman);
  } catch (e) {
    runtimeOk = false;
    problems.push(`podman does not work here: ${(e as Error).message}`);
  }
  let imagePresent = false;
  if (runtimeOk) {
    if (check.imageId) imagePresent = (await imageInfo(nodes.podman, check.imageId)) !== undefined;
    for (const ref of [check.id, check.name]) {
      if (await inspectPodmanContainer(nodes.podman, ref).catch(() => undefined)) {
        problems.push(`a container '${ref}' already exists here`);
        break;
      }
    }
    const missing = await missingMounts(nodes.podman, check.mounts, {
      withVolumes: check.withVolumes,
    });
    for (const m of missing) problems.push(`${m.mount.destination}: ${m.reason}`);
  }
  return { runtimeOk, imagePresent, problems };
}

/** Options of {@linkcode restoreContainer}. */
export interface RestoreContainerOptions {
  /** This node's runtimes. */
  nodes: RuntimeNodes;
  /** A fresh directory (tmpfs preferred) to assemble the export in. @default one is made */
  scratch?: string;
  /** Check the restored, still stopped tree before it is reported ready. */
  verify?: (pid: number, imagesDir: string) => Promise<void>;
}

/**
 * Restore the container of migration `ctx`, left stopped. Never throws: failures come back as
 * `{ ok: false, error }` with everything this call created removed again.
 */
export async function restoreContainer(
  ctx: RestoreContext,
  options: RestoreContainerOptions,
): Promise<RestoreResult> {
  const started = performance.now();
  const parsed = ContainerRestoreSchema.safeParse(ctx.request.container);
  if (!parsed.success) {
    return {
      ok: false,
      error: `bad container restore request: ${parsed.error.issues[0]?.message}`,
    };
  }
  const req = parsed.data;
  const verify = VerifyRequestSchema.optional().safeParse(ctx.request.verify);
  if (!verify.success) {
    return { ok: false, error: `bad verify request: ${verify.error.issues[0]?.message}` };
  }
  const shmem = ctx.request.rebuildShmem === true;
  const node = options.nodes.podman;
  const src = imagesDirOf(ctx.dir);
  const scratch = options.scratch ??
    await Deno.makeTempDir({ prefix: `u2cm-ct-${ctx.migrationId}-` });
  const ownScratch = options.scratch === undefined;
  const undo: (() => Promise<void>)[] = [];
  try {
    // podman's export layout: its files at the top, CRIU's images in checkpoint/
    const exportDir = `${scratch}/export`;
    const imagesDir = `${exportDir}/checkpoint`;
    await Deno.mkdir(imagesDir, { recursive: true });
    // The processes' pages files are rebuilt from the store, and shared memory's that travelled
    // as their pages; the other shared memory's came whole.
    const rebuilt = await rebuiltPagesFiles(src, shmem);
    for await (const e of Deno.readDir(src)) {
      if (!e.isFile) continue;
      if (e.name.startsWith(PODMAN_FILE_PREFIX)) {
        const name = e.name.slice(PODMAN_FILE_PREFIX.length);
        if (!req.files.includes(name)) continue;
        await Deno.copyFile(`${src}/${e.name}`, `${exportDir}/${name}`);
      } else if (e.name.startsWith("volume.") && e.name.endsWith(".tar")) {
        const name = e.name.slice("volume.".length, -".tar".length);
        if (!req.volumes.includes(name)) continue;
        await Deno.mkdir(`${exportDir}/volumes`, { recursive: true });
        await Deno.copyFile(`${src}/${e.name}`, `${exportDir}/volumes/${name}.tar`);
      } else if (
        e.name !== IMAGE_FILE && !e.name.startsWith("volume.") &&
        !rebuilt.has(e.name) &&
        !e.name.endsWith(".log")
      ) {
        await Deno.copyFile(`${src}/${e.name}`, `${imagesDir}/${e.name}`);
      }
    }
    for (const f of ["config.dump", "spec.dump"]) {
      if (!req.files.includes(f)) throw new Error(`the checkpoint's ${f} did not arrive`);
    }
    await rebuildPages({ ...ctx, dir: imagesDir }, false, shmem);
    // every page assembled here against the source's manifest, before anything is restored
    const checked = verify.data ? await verifyBeforeRestore(imagesDir, verify.data) : undefined;
    if (req.image.sha256) {
      const had = await imageInfo(node, req.image.id);
      await loadImage(node, {
        path: `${src}/${IMAGE_FILE}`,
        id: req.image.id,
        sha256: req.image.sha256,
        names: req.image.names,
      });
      if (!had) undo.push(() => removeImage(node, req.image.id));
    } else if (!(await imageInfo(node, req.image.id))) {
      throw new Error(`image ${req.image.id.slice(0, 12)} is not here and was not sent`);
    }
    for (const v of req.volumes) {
      try {
        await Deno.stat(`${exportDir}/volumes/${v}.tar`);
      } catch {
        throw new Error(`volume ${v} did not arrive (${volumeFile(v)})`);
      }
    }
    // podman creates the volumes from the export; a failed restore removes them again
    for (const v of req.volumes) undo.push(() => removeVolume(node, v));
    const restored = await importPodman(node, {
      dir: exportDir,
      sourceRoots: req.sourceRoots,
      destRoots: await podmanStore(node),
      cgroupParent: options.nodes.cgroupParent,
      tcpEstablished: ctx.request.tcpEstablished === true,
      tcpClose: ctx.request.tcpClose === true,
      withVolumes: req.volumes.length > 0,
    }).catch(async (e) => {
      // a half-made container (name taken by the failed restore) goes too
      await removeContainer(node, req.id).catch(() => {});
      throw e;
    });
    undo.push(() => removeContainer(node, restored.id));
    // the restored container, still stopped, read back against the manifest
    let verified: Verification | undefined;
    if (verify.data && checked) {
      verified = await verifyAfterRestore(restored.pid, imagesDir, verify.data, checked);
    }
    await options.verify?.(restored.pid, imagesDir);
    return {
      ok: true,
      pid: restored.pid,
      restoreMs: performance.now() - started,
      ...(verified ? { verified } : {}),
    };
  } catch (e) {
    for (const u of undo.reverse()) await u().catch(() => {});
    return {
      ok: false,
      error: `container restore failed: ${(e as Error).message}`,
      restoreMs: performance.now() - started,
    };
  } finally {
    if (ownScratch) await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
}

/**
 * Remove what a restored container left on this node after the source rolled back: the
 * container itself (and the image and volumes named, when this migration brought them).
 */
export async function discardContainer(
  nodes: RuntimeNodes,
  id: string,
  brought: { imageId?: string; volumes?: string[] } = {},
): Promise<void> {
  await removeContainer(nodes.podman, id).catch(() => {});
  if (brought.imageId) await removeImage(nodes.podman, brought.imageId).catch(() => {});
  for (const v of brought.volumes ?? []) await removeVolume(nodes.podman, v).catch(() => {});
}
