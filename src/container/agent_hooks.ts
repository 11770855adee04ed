/**
 * What `u2cm agent` does for containers, on top of the engine's Destination: answer pre-checks,
 * restore container migrations through the runtime — podman, or runc from a bundle (other restore
 * requests go to the engine's own handler) — and keep a small record per restored container
 * (`<state dir>/containers/<migration id>.json`: its ID and what the migration brought — the image
 * it loaded) so that a copy discarded later (the source rolled back, or recovery after a restart)
 * is removed from podman too, image included, leaving no trace.
 *
 * @example
 * ```ts
 * const hooks = containerAgentHooks({ stateDir, nodes: runtimeNodes(config.containers) });
 * const destination = new Destination({ stateDir, restore: hooks.restore(restoreMigration) });
 * ```
 *
 * @module
 */
import type { RestoreContext, RestoreResult } from "../engine/channel.ts";
import type { RestoreOptions } from "../engine/restore.ts";
import type { ContainerCheck, ContainerCheckAnswer } from "../peer/container_check.ts";
import { checkContainer, discardContainer, restoreContainer } from "./destination.ts";
import { imageInfo } from "./image.ts";
import type { RuntimeNodes } from "./node.ts";
import { discardRunc, restoreRuncContainer } from "./runc_destination.ts";
import { ContainerRestoreSchema, containerRuntimeOf, RuncRestoreSchema } from "./transfer.ts";

/** A restored container's record. */
interface ContainerRecord {
  /** Its runtime. @default "podman" (records before runc) */
  runtime?: "podman" | "runc";
  /** Container ID. */
  id: string;
  /** The image this migration loaded (removed with a discarded copy). */
  loadedImage?: string;
  /** Volumes this migration created. */
  volumes: string[];
}

/** The agent's container hooks. */
export interface ContainerAgentHooks {
  /** Answer a pre-check. */
  check(check: ContainerCheck): Promise<ContainerCheckAnswer>;
  /** A restore handler: containers here, everything else to `fallback`. */
  restore(
    fallback: (ctx: RestoreContext, options: RestoreOptions) => Promise<RestoreResult>,
  ): (ctx: RestoreContext, options: RestoreOptions) => Promise<RestoreResult>;
  /**
   * After the engine answered a resolve: a discarded migration's container is removed from
   * podman; a resumed one's record is dropped.
   */
  afterResolve(id: string, state: string): Promise<void>;
  /** After the engine's recovery: settle every record by its migration's phase. */
  sweep(phaseOf: (id: string) => string | undefined): Promise<void>;
}

/** The hooks for `stateDir` and this node's runtimes. */
export function containerAgentHooks(
  options: { stateDir: string; nodes: RuntimeNodes },
): ContainerAgentHooks {
  const { nodes } = options;
  const dir = `${options.stateDir}/containers`;
  Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = (id: string) => `${dir}/${id}.json`;
  const read = (id: string): ContainerRecord | undefined => {
    if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(id)) return undefined;
    try {
      return JSON.parse(Deno.readTextFileSync(file(id)));
    } catch {
      return undefined;
    }
  };
  const drop = (id: string) => Deno.remove(file(id)).catch(() => {});
  const discard = async (id: string) => {
    const rec = read(id);
    if (!rec) return;
    if (rec.runtime === "runc") await discardRunc(nodes, dir, id, rec.id);
    else await discardContainer(nodes, rec.id, { imageId: rec.loadedImage, volumes: rec.volumes });
    await drop(id);
  };
  return {
    check: (check) => checkContainer(check, nodes),
    restore: (fallback) => async (ctx, opts) => {
      if (ctx.request.container === undefined) return await fallback(ctx, opts);
      if (containerRuntimeOf(ctx.request.container) === "runc") {
        // recorded first: an agent killed mid-restore leaves what recovery must remove
        const parsed = RuncRestoreSchema.safeParse(ctx.request.container);
        if (parsed.success) {
          const rec: ContainerRecord = { runtime: "runc", id: parsed.data.id, volumes: [] };
          Deno.writeTextFileSync(file(ctx.migrationId), JSON.stringify(rec));
        }
        const result = await restoreRuncContainer(ctx, {
          nodes,
          containersDir: dir,
          scratch: opts.scratch,
        });
        if (!result.ok) await drop(ctx.migrationId);
        return result;
      }
      const parsed = ContainerRestoreSchema.safeParse(ctx.request.container);
      const had = parsed.success &&
        (await imageInfo(nodes.podman, parsed.data.image.id)) !== undefined;
      const result = await restoreContainer(ctx, {
        nodes,
        scratch: opts.scratch,
        verify: opts.verify,
      });
      if (result.ok && parsed.success) {
        const rec: ContainerRecord = {
          id: parsed.data.id,
          ...(had ? {} : { loadedImage: parsed.data.image.id }),
          volumes: parsed.data.volumes,
        };
        Deno.writeTextFileSync(file(ctx.migrationId), JSON.stringify(rec));
      }
      return result;
    },
    afterResolve: async (id, state) => {
      if (state === "discarded" || state === "unknown") await discard(id);
      else if (state === "resumed") await drop(id);
    },
    sweep: async (phaseOf) => {
      for (const e of Deno.readDirSync(dir)) {
        if (!e.name.endsWith(".json")) continue;
        const id = e.name.slice(0, -5);
        const phase = phaseOf(id);
        if (phase === "resumed") await drop(id);
        else if (phase !== "ready" && phase !== "restoring") await discard(id);
      }
    },
  };
}
