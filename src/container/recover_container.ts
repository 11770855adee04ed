/**
 * What recovery (`u2cm recover`, src/engine/recover.ts) does with a container target, by its
 * runtime: where the source owns the workload again, a container its runtime holds checkpointed
 * runs here again (podman: from the checkpoint podman keeps; runc: `runc restore` from the
 * checkpoint in the migration's scratch directory, before that directory is removed); where the
 * destination took over, the source's checkpointed container is removed.
 *
 * @example
 * ```ts
 * await containerRunsAgain(rec.container, rec.scratchDir);
 * ```
 *
 * @module
 */
import type { ContainerJournal } from "../engine/journal.ts";
import { restoreLocally } from "./checkpoint.ts";
import { removeContainer } from "./import.ts";
import { podman } from "./podman.ts";
import { inspectRuncContainer } from "./runc.ts";
import { restoreRunc } from "./runc_checkpoint.ts";
import { runcImagesDir } from "./runc_final_phase.ts";

/**
 * The source owns container `c` again: when its runtime holds it checkpointed (the final phase
 * had dumped it), restore it here; a running one is left alone.
 */
export async function containerRunsAgain(c: ContainerJournal, scratchDir?: string): Promise<void> {
  if (c.runtime === "runc") {
    if (!c.runc) throw new Error(`the journal of runc container ${c.id} names no runc node`);
    const node = { bin: c.runc.bin, root: c.runc.root, env: c.env };
    if (await inspectRuncContainer(node, c.id)) return;
    if (!scratchDir) throw new Error(`runc container ${c.id} is gone and its checkpoint too`);
    const images = runcImagesDir(`${scratchDir}/final`);
    const restore = (tcpEstablished: boolean) =>
      restoreRunc(node, {
        id: c.id,
        imagesDir: images,
        bundle: c.runc!.bundle,
        workDir: `${scratchDir}/recover`,
        leaveStopped: false,
        tcpEstablished,
        logFile: c.runc!.logFile,
      });
    await restore(true).catch(() => restore(false));
    return;
  }
  const node = { bin: "podman", env: c.env };
  const state = await podman(node, ["inspect", "--format", "{{.State.Status}}", c.id])
    .then((s) => s.trim(), () => "gone");
  if (state === "running") return;
  await restoreLocally(node, { id: c.id, tcpEstablished: true }).catch(() =>
    restoreLocally(node, { id: c.id })
  );
}

/** The source's checkpointed container, once the destination owns the workload. */
export async function removeSourceContainer(c: ContainerJournal): Promise<void> {
  // runc ended and forgot the container at its checkpoint
  if (c.runtime === "runc") return;
  await removeContainer({ bin: "podman", env: c.env }, c.id);
}
