/**
 * The destination's side of a runc container migration: answer the source's pre-freeze check
 * (runc works, the ID is free in this node's runc state dir, the bundle is at its path or will
 * be sent, every bind-mount source exists), and restore the container from what arrived —
 * CRIU's images in the migration's directory, pages from the page store, the bundle archive when
 * sent — left stopped for the commit, checked against the source's page manifest before and read
 * back after.
 *
 * Everything a restored container needs after the migration lives in a directory u2cm creates
 * for it, `<dir>/<migration id>/`: `bundle/config.json` (the bundle's spec with an absolute root
 * and the CRIU config that leaves the tree stopped), `source-bundle/` (a bundle that was sent),
 * and `container.log` (its stdout and stderr, through a pipe). A failed restore removes it all.
 *
 * @example
 * ```ts
 * const answer = await checkRunc(check, nodes);
 * const r = await restoreRuncContainer(ctx, { nodes, containersDir: "/var/lib/u2cm/containers" });
 * ```
 *
 * @module
 */
import { rebuiltPagesFiles } from "../criu/images/mod.ts";
import type { RestoreContext, RestoreResult } from "../engine/channel.ts";
import { type Verification, VerifyRequestSchema } from "../engine/contract.ts";
import { imagesDirOf, rebuildPages } from "../engine/restore_images.ts";
import { verifyAfterRestore, verifyBeforeRestore } from "../engine/verify.ts";
import { runRuntime } from "./command.ts";
import { sha256File } from "./image.ts";
import { missingMounts } from "./mounts.ts";
import type { RuntimeNodes } from "./node.ts";
import { inspectRuncContainer, runc } from "./runc.ts";
import { deleteRunc, restoreRunc } from "./runc_checkpoint.ts";
import {
  BUNDLE_FILE,
  type ContainerCheck,
  type ContainerCheckAnswer,
  RuncRestoreSchema,
} from "./transfer.ts";

/** Answer a runc container's check (`imagePresent`: the bundle is here). Never throws. */
export async function checkRunc(
  check: ContainerCheck,
  nodes: RuntimeNodes,
): Promise<ContainerCheckAnswer> {
  const problems: string[] = [];
  try {
    await runc(nodes.runc, ["--version"], { timeoutMs: 30_000 });
  } catch (e) {
    return {
      runtimeOk: false,
      imagePresent: false,
      problems: [`runc does not work here: ${(e as Error).message}`],
    };
  }
  if (await inspectRuncContainer(nodes.runc, check.id).catch(() => undefined)) {
    problems.push(`a runc container '${check.id}' already exists here`);
  }
  const bundlePresent = check.bundle !== undefined && await bundleAt(check.bundle);
  const missing = await missingMounts(undefined, check.mounts.filter((m) => m.type === "bind"));
  for (const m of missing) problems.push(`${m.mount.destination}: ${m.reason}`);
  if (check.mounts.some((m) => m.type === "volume")) {
    problems.push("runc containers have no named volumes");
  }
  return { runtimeOk: true, imagePresent: bundlePresent, problems };
}

/** Whether `dir` holds a bundle: a config.json whose root exists. */
async function bundleAt(dir: string): Promise<boolean> {
  try {
    const spec = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    const root = String(spec.root?.path ?? "rootfs");
    return (await Deno.stat(root.startsWith("/") ? root : `${dir}/${root}`)).isDirectory;
  } catch {
    return false;
  }
}

/** Options of {@linkcode restoreRuncContainer}. */
export interface RestoreRuncOptions {
  /** This node's runtimes. */
  nodes: RuntimeNodes;
  /** Where the per-container directories go (the agent's `<state dir>/containers`). */
  containersDir: string;
  /** A fresh directory (tmpfs preferred) to assemble the images in. @default one is made */
  scratch?: string;
}

/** The directory u2cm keeps for the container restored by migration `id`. */
export function runcContainerDir(containersDir: string, id: string): string {
  return `${containersDir}/runc-${id}`;
}

/**
 * Restore the runc container of migration `ctx`, left stopped. Never throws: failures come back
 * as `{ ok: false, error }` with everything this call created removed again.
 */
export async function restoreRuncContainer(
  ctx: RestoreContext,
  options: RestoreRuncOptions,
): Promise<RestoreResult> {
  const started = performance.now();
  const parsed = RuncRestoreSchema.safeParse(ctx.request.container);
  const verify = VerifyRequestSchema.optional().safeParse(ctx.request.verify);
  if (!parsed.success || !verify.success) {
    const issue = (parsed.success ? verify.error : parsed.error)?.issues[0]?.message;
    return { ok: false, error: `bad runc restore request: ${issue}` };
  }
  const req = parsed.data;
  const shmem = ctx.request.rebuildShmem === true;
  const src = imagesDirOf(ctx.dir);
  const scratch = options.scratch ??
    await Deno.makeTempDir({ prefix: `u2cm-runc-${ctx.migrationId}-` });
  const ownScratch = options.scratch === undefined;
  const home = runcContainerDir(options.containersDir, ctx.migrationId);
  let pid = 0;
  try {
    const imagesDir = `${scratch}/checkpoint`;
    await Deno.mkdir(imagesDir, { recursive: true });
    const rebuilt = await rebuiltPagesFiles(src, shmem);
    for await (const e of Deno.readDir(src)) {
      if (!e.isFile || rebuilt.has(e.name) || e.name === BUNDLE_FILE) continue;
      if (e.name.endsWith(".log")) continue;
      await Deno.copyFile(`${src}/${e.name}`, `${imagesDir}/${e.name}`);
    }
    await rebuildPages({ ...ctx, dir: imagesDir }, false, shmem);
    const checked = verify.data ? await verifyBeforeRestore(imagesDir, verify.data) : undefined;
    await Deno.mkdir(home, { recursive: true, mode: 0o700 });
    let bundle = req.bundle;
    if (req.bundleSha256) {
      const archive = `${src}/${BUNDLE_FILE}`;
      const got = await sha256File(archive).catch(() => "(missing)");
      if (got !== req.bundleSha256) {
        throw new Error(`bundle archive sha256 ${got} is not the source's ${req.bundleSha256}`);
      }
      bundle = `${home}/source-bundle`;
      await Deno.mkdir(bundle);
      // GNU tar keeps members inside the directory (no '..', no leading '/', symlinks last)
      await runRuntime("tar", ["-C", bundle, "--numeric-owner", "-xf", archive]);
    } else if (!(await bundleAt(bundle))) {
      throw new Error(`the bundle ${bundle} is not here and was not sent`);
    }
    pid = await restoreRunc(options.nodes.runc, {
      id: req.id,
      imagesDir,
      bundle,
      workDir: home,
      tcpEstablished: ctx.request.tcpEstablished === true,
      logFile: `${home}/container.log`,
    });
    let verified: Verification | undefined;
    if (verify.data && checked) {
      verified = await verifyAfterRestore(pid, imagesDir, verify.data, checked);
    }
    return {
      ok: true,
      pid,
      restoreMs: performance.now() - started,
      ...(verified ? { verified } : {}),
    };
  } catch (e) {
    await discardRunc(options.nodes, options.containersDir, ctx.migrationId, req.id);
    return {
      ok: false,
      error: `runc container restore failed: ${(e as Error).message}`,
      restoreMs: performance.now() - started,
    };
  } finally {
    if (ownScratch) await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
}

/** Remove a runc container migration `id` restored here, and the directory u2cm made for it. */
export async function discardRunc(
  nodes: RuntimeNodes,
  containersDir: string,
  migrationId: string,
  containerId: string,
): Promise<void> {
  const home = runcContainerDir(containersDir, migrationId);
  let ours = false;
  try {
    ours = (await Deno.stat(home)).isDirectory;
  } catch { /* never made */ }
  // only a container this migration restored (its bundle is ours) is deleted
  const c = await inspectRuncContainer(nodes.runc, containerId).catch(() => undefined);
  if (c && c.bundle === `${home}/bundle`) await deleteRunc(nodes.runc, containerId).catch(() => {});
  if (ours) await Deno.remove(home, { recursive: true }).catch(() => {});
}
