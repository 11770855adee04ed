/**
 * Shared pieces of the peer benchmark (build/bench/peer.ts): the page batches every run moves,
 * one raw ws:// run, one run of the authenticated channel, the CPU a process spent, and the ports
 * the serving child reports.
 *
 * @example
 * ```ts
 * const batches = makeBatches(16);
 * const ms = await channelRun(stateDir, batches, "bench-0");
 * ```
 *
 * @module
 */
import { connectPeer } from "../../../src/peer/mod.ts";
import { pageHashes } from "../../../src/native/page_hash.ts";

const PAGE = 4096;
const BATCH_PAGES = 1024;

/** Page batches as the engines hand them to a channel. */
export type PageBatches = {
  pid: number;
  addresses: number[];
  data: Uint8Array;
  hashes: Uint8Array;
}[];

/** The benchmark's entry script, which its children run with `--serve`, `--send`, …. */
export const BENCH_SCRIPT = new URL("../peer.ts", import.meta.url).pathname;

/** The ports the serving child (`--serve`) reports on its first line. */
export interface ServePorts {
  /** The agent (WebSocket and QUIC). */
  agent: number;
  /** The raw ws:// sink. */
  raw: number;
  /** The wss:// sink (Deno's TLS). */
  wss: number;
  /** The plain TCP sink. */
  tcp: number;
  /** The raw QUIC sink (UDP). */
  quic: number;
}

/** CPU time (user + system) of process `pid` so far, in ms. */
export function cpuMs(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** `mib` MiB of pseudo-random pages in batches of 1024, with their page hashes. */
export function makeBatches(mib: number): PageBatches {
  const pages = mib * 256;
  const out: PageBatches = [];
  for (let first = 0; first < pages; first += BATCH_PAGES) {
    const n = Math.min(BATCH_PAGES, pages - first);
    const data = new Uint8Array(n * PAGE);
    const words = new Uint32Array(data.buffer);
    let x = first + 1;
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      words[i] = x;
    }
    const addresses = Array.from({ length: n }, (_, i) => 0x7f00_0000_0000 + (first + i) * PAGE);
    out.push({ pid: 4242, addresses, data, hashes: pageHashes(data) });
  }
  return out;
}

/** One run over raw ws:// (or wss://) into the sink at `path`; its time in ms. */
export async function rawRun(
  port: number,
  batches: { data: Uint8Array }[],
  scheme = "ws",
  path = "/",
): Promise<number> {
  const ws = new WebSocket(`${scheme}://127.0.0.1:${port}${path}`);
  ws.binaryType = "arraybuffer";
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error("raw ws connect failed"));
  });
  const total = batches.reduce((s, b) => s + b.data.length, 0);
  const done = new Promise<void>((resolve) => {
    ws.onmessage = (e) => {
      if (Number(e.data) >= total) resolve();
    };
  });
  const started = performance.now();
  for (const b of batches) {
    for (let at = 0; at < b.data.length; at += 1 << 20) {
      ws.send(b.data.subarray(at, at + (1 << 20)));
      for (let i = 0; i < 100_000 && ws.bufferedAmount > 16 << 20; i++) {
        await new Promise((r) => setTimeout(r, 1));
      }
    }
  }
  ws.send("done");
  await done;
  const ms = performance.now() - started;
  ws.close();
  return ms;
}

/** One migration of `batches` over the authenticated channel (bulk: the sealed stream); ms. */
export async function channelRun(
  stateDir: string,
  batches: PageBatches,
  id: string,
  bulk = true,
) {
  const client = await connectPeer({ stateDir, peer: "b", bulk });
  if (bulk && !client.sealedBulk) throw new Error("the channel did not get its sealed bulk stream");
  const total = batches.reduce((s, b) => s + b.data.length, 0);
  const ch = await client.openMigration(id, total);
  const started = performance.now();
  for (const b of batches) await ch.sendPages(b);
  await ch.flush();
  const ms = performance.now() - started;
  await ch.abort("benchmark done");
  await client.close();
  return ms;
}

/** The ports the serving child prints on its first line of `stdout`. */
export async function readPorts(stdout: ReadableStream<Uint8Array>): Promise<ServePorts> {
  const reader = stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  for (let i = 0; i < 100; i++) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
    const nl = text.indexOf("\n");
    if (nl >= 0) {
      reader.releaseLock();
      return JSON.parse(text.slice(0, nl)) as ServePorts;
    }
  }
  throw new Error("the serving child did not report its ports");
}
