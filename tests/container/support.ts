/**
 * Helpers of the container tests.
 *
 * @module
 */
import { PAGE_SIZE } from "../../src/criu/images/mod.ts";
import type { MigrationChannel, PageBatch, PageStoreView } from "../../src/engine/channel.ts";
import { PageLedger } from "../../src/engine/ledger.ts";
import { sendDumpVerified, type SentDump } from "../../src/engine/send_dump.ts";
import { type PodmanCheckpoint, sendPodmanFiles } from "../../src/container/mod.ts";

/**
 * What the wire would deliver: CRIU's images (pages left out), the page manifest and podman's
 * files in `<dir>/images`, the pages in a store — sent by the source's own
 * {@linkcode sendDumpVerified} over a channel that writes them down. `request` holds the restore
 * request's fields that go with it (rebuild, verify).
 */
export async function ship(
  ck: PodmanCheckpoint,
  dir: string,
): Promise<{ store: PageStoreView; files: string[]; request: SentDump["request"] }> {
  await Deno.mkdir(`${dir}/images`, { recursive: true });
  const pages = new Map<string, Uint8Array>();
  const write = (name: string, data: Uint8Array) => Deno.writeFile(`${dir}/images/${name}`, data);
  const channel = {
    sendPages: (b: PageBatch) => {
      Array.from(b.addresses).forEach((addr, i) => {
        pages.set(`${b.pid}:${addr}`, b.data.slice(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
      });
      return Promise.resolve();
    },
    sendFile: write,
    flush: () => Promise.resolve(),
  } as unknown as MigrationChannel;
  const sent = await sendDumpVerified({ channel, dir: ck.imagesDir, ledger: new PageLedger() });
  const files = await sendPodmanFiles(ck, write);
  return {
    store: { get: (pid, addr) => pages.get(`${pid}:${addr}`) },
    files,
    request: sent.request,
  };
}
