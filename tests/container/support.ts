/**
 * Helpers of the container tests.
 *
 * @module
 */
import { PAGE_SIZE, readDumpDir } from "../../src/criu/images/mod.ts";
import type { PageStoreView } from "../../src/engine/channel.ts";
import { type PodmanCheckpoint, sendPodmanFiles } from "../../src/container/mod.ts";

/**
 * What the wire would deliver: CRIU's images (pages left out) and podman's files in
 * `<dir>/images`, and the pages in a store.
 */
export async function ship(
  ck: PodmanCheckpoint,
  dir: string,
): Promise<{ store: PageStoreView; files: string[] }> {
  await Deno.mkdir(`${dir}/images`, { recursive: true });
  const pages = new Map<string, Uint8Array>();
  const dump = await readDumpDir(ck.imagesDir);
  for (const mem of dump.memory) {
    const data = await Deno.readFile(`${ck.imagesDir}/${mem.pagesFile}`);
    mem.addresses.forEach((addr, i) => {
      pages.set(`${mem.pid}:${addr}`, data.slice(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
    });
  }
  for await (const e of Deno.readDir(ck.imagesDir)) {
    if (e.isFile && !/^pages-\d+\.img$/.test(e.name) && !e.name.endsWith(".log")) {
      await Deno.copyFile(`${ck.imagesDir}/${e.name}`, `${dir}/images/${e.name}`);
    }
  }
  const files = await sendPodmanFiles(
    ck,
    (name, data) => Deno.writeFile(`${dir}/images/${name}`, data),
  );
  return { store: { get: (pid, addr) => pages.get(`${pid}:${addr}`) }, files };
}

/**
 * Run `run` again (twice at most) when the peer handshake timed out before anything started
 * (exit 7, "authentication failed": the agent allows 10 s for it, which a box at load 16+ on two
 * cores can miss; tests/peer/auth_test.ts shows the same). Any other outcome is returned as is.
 */
export async function retryHandshake(
  run: () => Promise<{ code: number; stdout: string; stderr: string }>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  let r = await run();
  for (let i = 0; i < 2 && r.code === 7 && /authentication failed/.test(r.stderr); i++) {
    console.error(`peer handshake timed out (loaded box); retrying: ${r.stderr.trim()}`);
    r = await run();
  }
  return r;
}
