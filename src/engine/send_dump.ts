/**
 * Sending a finished, unchained CRIU dump with its page manifest: every page is read and hashed
 * once, recorded in the manifest, and sent only when the source's ledger says the destination
 * lacks it (or holds an older hash); shared memory that live processes map travels as their
 * pages; the other image files go whole (shared-memory pages files hashed as they go); then the
 * manifest. The restore request fields it returns make the destination rebuild the pages files,
 * check them against the manifest and read the restored tree back before it is reported ready.
 *
 * Used by the final phases of container targets, whose runtime writes the dump (podman's or
 * runc's checkpoint) where u2cm's own stop-and-copy runs `criu dump` itself.
 *
 * @example
 * ```ts
 * const sent = await sendDumpVerified({ channel, dir: ck.imagesDir, ledger, verify: "sample" });
 * const request = { engine: "delta", ...sent.request };
 * ```
 *
 * @module
 */
import { readDumpDir, rebuildableShmem } from "../criu/images/mod.ts";
import { pageHashes } from "../native/page_hash.ts";
import type { MigrationChannel } from "./channel.ts";
import { MANIFEST_FILE, type VerifyMode, type VerifyRequest } from "./contract.ts";
import { sendChangedPages, sendShmemPages } from "./dump_pages.ts";
import { imageFilesToSend } from "./files.ts";
import type { PageLedger } from "./ledger.ts";
import { ManifestBuilder } from "./manifest.ts";

/** Options of {@linkcode sendDumpVerified}. */
export interface SendDumpOptions {
  /** The channel to the destination. */
  channel: MigrationChannel;
  /** The dump's images directory (pages files may be symlinks). */
  dir: string;
  /** What the destination holds (every page sent so far, with its hash). */
  ledger: PageLedger;
  /** How much of the restored tree the destination reads back. @default "sample" */
  verify?: VerifyMode;
  /** Leave out image files for which this returns true (files sent another way). */
  skipFile?: (name: string) => boolean;
  /**
   * The processes' pages were sent and added to `manifest` by the caller (a lazy dump left them
   * in memory): only shared memory and the other files go here. @default true
   */
  processPages?: boolean;
  /** The manifest to complete. @default a new one */
  manifest?: ManifestBuilder;
  /** Read the dump as a lazy one (pages files hold the eager pages only). @default false */
  lazyDump?: boolean;
}

/** What {@linkcode sendDumpVerified} sent. */
export interface SentDump {
  /** Pages sent (those the destination lacked). */
  pages: number;
  /** Pages the manifest names (the whole frozen tree). */
  manifestPages: number;
  /** The restore request's fields for this dump. */
  request: { rebuildPages: true; rebuildShmem: true; verify: VerifyRequest };
}

/** Send the dump in `dir` and its manifest; see the module doc. */
export async function sendDumpVerified(options: SendDumpOptions): Promise<SentDump> {
  const { channel, dir, ledger, verify = "sample", skipFile, processPages = true } = options;
  const images = await readDumpDir(dir, options.lazyDump ?? false);
  const manifest = options.manifest ?? new ManifestBuilder();
  let pages = 0;
  for (const mem of processPages ? images.memory : []) {
    pages += await sendChangedPages(
      channel,
      mem.pid,
      mem.addresses,
      `${dir}/${mem.pagesFile}`,
      ledger.held(mem.pid),
      undefined,
      manifest,
    );
  }
  const viaPages = await rebuildableShmem(images);
  for (const obj of images.shmem) {
    const candidates = viaPages.get(obj.id);
    if (!candidates) continue;
    pages += await sendShmemPages(
      channel,
      obj,
      `${dir}/${obj.pagesFile}`,
      candidates,
      ledger,
      manifest,
    );
  }
  const shmemOf = new Map(images.shmem.map((s) => [s.pagesFile, s]));
  const names = new Set(await imageFilesToSend(dir, true, true));
  // pages files that travel whole may be symlinks to where the runtime wrote them
  for (const obj of images.shmem) if (!viaPages.has(obj.id)) names.add(obj.pagesFile);
  for (const name of [...names].sort()) {
    if (name === MANIFEST_FILE || skipFile?.(name)) continue;
    const data = await Deno.readFile(`${dir}/${name}`);
    const shmem = shmemOf.get(name);
    if (shmem) manifest.add("shmem", shmem.id, shmem.offsets, pageHashes(data));
    await channel.sendFile(name, data);
  }
  await channel.sendFile(MANIFEST_FILE, manifest.encode());
  return {
    pages,
    manifestPages: manifest.pages,
    request: {
      rebuildPages: true,
      rebuildShmem: true,
      verify: { mode: verify, pages: manifest.pages },
    },
  };
}
