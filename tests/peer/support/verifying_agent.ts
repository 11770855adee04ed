/**
 * A destination agent process for tests: `startAgent` (the code behind `u2cm agent`) with a restore
 * handler that checks every stored page byte for byte against the deterministic generator the
 * sender used, and every image file against its announced SHA-256.
 *
 * Usage: deno run -A verifying_agent.ts --listen ADDR --state-dir DIR [--transport ws|quic]
 *        [--resume-timeout MS]
 *
 * The restore request is `{ pid, first, pages, round, content?, files: { name: sha256hex } }`
 * (`content: "text"`: the pages are textPages(pages), else fillPage's pseudo-random pages).
 *
 * @module
 */
import { startAgent } from "../../../src/peer/agent.ts";
import { sha256Hex } from "../../../src/peer/keys.ts";
import { createLogger } from "../../../src/peer/log.ts";
import { fillPage } from "./nodes.ts";
import { textPages } from "./text_pages.ts";

const arg = (name: string, fallback?: string) => {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : fallback;
};

const agent = await startAgent({
  listen: arg("--listen", "127.0.0.1:0")!,
  stateDir: arg("--state-dir")!,
  transport: arg("--transport", "ws") as "ws" | "quic",
  resumeTimeoutMs: Number(arg("--resume-timeout", "30000")),
  memoryLimitBytes: Number(arg("--memory-mib", "128")) * 2 ** 20,
  log: createLogger("info"),
  onRestore: async ({ store, request }) => {
    const { pid, first, pages, round, files, content } = request as {
      pid: number;
      first: number;
      pages: number;
      round: number;
      files: Record<string, string>;
      content?: string;
    };
    const text = content === "text" ? textPages(pages) : undefined;
    const want = new Uint8Array(4096);
    let bad = 0;
    for (let i = 0; i < pages; i++) {
      const addr = first + i * 4096;
      if (text) want.set(text.subarray(i * 4096, (i + 1) * 4096));
      else fillPage(want, pid, addr, round);
      const got = store.get(pid, addr);
      if (!got || got.length !== 4096) {
        bad++;
        continue;
      }
      const g = new Uint32Array(got.buffer, got.byteOffset, 1024);
      const w = new Uint32Array(want.buffer, 0, 1024);
      for (let k = 0; k < 1024; k++) {
        if (g[k] !== w[k]) {
          bad++;
          break;
        }
      }
    }
    for (const [name, sha] of Object.entries(files ?? {})) {
      if (await sha256Hex(store.readFile(name)) !== sha) bad++;
    }
    const ok = bad === 0 && store.pageCount === pages;
    return {
      ok,
      pid: ok ? Deno.pid : undefined,
      error: ok ? undefined : `${bad} pages or files differ; ${store.pageCount} of ${pages} stored`,
    };
  },
});
const stop = Promise.withResolvers<void>();
Deno.addSignalListener("SIGTERM", () => stop.resolve());
await stop.promise;
await agent.close();
