/**
 * A source process for tests: connects to pinned peer "b", sends a deterministic page set and an
 * image file, and asks for a restore (checked by verifying_agent.ts). Prints one JSON line with the
 * outcome on stdout and progress lines ({"sentMiB": n}) as it goes.
 *
 * Usage: deno run -A sender.ts --state-dir DIR --mib N [--id ID] [--transport ws|quic]
 *        [--resume-timeout MS] [--dead-after MS] [--compress auto|on|off] [--content random|text]
 *        [--timeout MS]   (the handshake's and each answer's bound; the client's default 10 s)
 *        [--file-kib N]   (the image file's size; default 5120)
 *
 * @module
 */
import { connectPeer } from "../../../src/peer/client.ts";
import { PeerError } from "../../../src/peer/errors.ts";
import { sha256Hex } from "../../../src/peer/keys.ts";
import { fillPage } from "./nodes.ts";
import { textPages } from "./text_pages.ts";

const arg = (name: string, fallback?: string) => {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : fallback;
};
const mib = Number(arg("--mib", "64"));
const fileBytes = Number(arg("--file-kib", "5120")) * 1024;
const pid = 4321, first = 0x7f12_3400_0000, round = 0;
const pages = mib * 256;
const content = arg("--content", "random");
const text = content === "text" ? textPages(pages) : undefined;
const started = performance.now();
const out = (o: unknown) => console.log(JSON.stringify(o));
try {
  const client = await connectPeer({
    stateDir: arg("--state-dir")!,
    peer: "b",
    transport: arg("--transport", "ws") as "ws" | "quic",
    resumeTimeoutMs: Number(arg("--resume-timeout", "30000")),
    deadAfterMs: Number(arg("--dead-after", "8000")),
    timeoutMs: arg("--timeout") === undefined ? undefined : Number(arg("--timeout")),
  });
  const ch = await client.openMigration(arg("--id", "m1")!, pages * 4096 + fileBytes, {
    compress: arg("--compress", "off") as "auto" | "on" | "off",
  });
  const BATCH = 1024;
  for (let at = 0; at < pages; at += BATCH) {
    const n = Math.min(BATCH, pages - at);
    const addresses = Array.from({ length: n }, (_, i) => first + (at + i) * 4096);
    const data = text?.slice(at * 4096, (at + n) * 4096) ?? new Uint8Array(n * 4096);
    for (let i = 0; i < n && !text; i++) {
      fillPage(data.subarray(i * 4096, (i + 1) * 4096), pid, addresses[i], round);
    }
    await ch.sendPages({ pid, addresses, data });
    if ((at / BATCH) % 16 === 15) out({ sentMiB: (at + n) / 256 });
  }
  const file = new Uint8Array(fileBytes).map((_, i) => (i * 7) & 0xff);
  await ch.sendFile("pages-1.img", file);
  await ch.flush();
  const transferMs = performance.now() - started;
  const result = await ch.restore({
    pid,
    first,
    pages,
    round,
    content,
    files: { "pages-1.img": await sha256Hex(file) },
  });
  await client.close();
  out({ done: true, result, transferMs, bytesSent: ch.bytesSent, compression: ch.compression });
  Deno.exit(result.ok ? 0 : 1);
} catch (e) {
  out({
    done: false,
    code: e instanceof PeerError ? e.code : "error",
    error: (e as Error).message,
  });
  Deno.exit(2);
}
