/**
 * Local page server benchmark (prints one JSON object): what one request of CRIU's lazy-pages
 * daemon costs the destination's page server (local_page_server.ts), native (page_serve.c)
 * against the TypeScript fallback (`U2CM_LOCAL_PAGE_SERVER=ts`), without CRIU in the way. A slot
 * file of U2CM_BENCH_MIB (default 256) MiB in /dev/shm and its manifest; a client speaking the
 * daemon's side of the protocol (page_client.c, a process of its own: 24-byte iovs, one request
 * at a time, as the daemon's background fill asks) reads it whole in each request size of U2CM_BENCH_PAGES (default "1,16,256,1024"
 * pages: a fault, the background fetch after a fault, a grown fetch, CRIU's largest), each page
 * checked by the server. The kinds take turns, U2CM_BENCH_REPS (default 3) times; reported per
 * size and kind: the median µs per request and per page, and native over TypeScript.
 *
 * @module
 */
import { cacheDir, compile, hostArch } from "../../src/native/build.ts";
import { pageHashes } from "../../src/native/page_hash.ts";
import type { ComposeResult } from "../../src/engine/lazy_images.ts";
import {
  type LocalPageServerKind,
  startLocalPageServer,
} from "../../src/engine/local_page_server.ts";
import { decodeManifest, ManifestBuilder, type PageManifest } from "../../src/engine/manifest.ts";

const P = 4096;
const MIB = Number(Deno.env.get("U2CM_BENCH_MIB") ?? 256);
const SIZES = (Deno.env.get("U2CM_BENCH_PAGES") ?? "1,16,256,1024").split(",").map(Number);
const REPS = Math.max(1, Number(Deno.env.get("U2CM_BENCH_REPS") ?? 3));
const KINDS: LocalPageServerKind[] = ["native", "ts"];
const BASE = 0x7f0000000000;

const pages = MIB * 256;
const clientExe = buildClient();
await main();

/** Build the daemon's side (page_client.c) into the cache. */
function buildClient(): string {
  const out = `${cacheDir()}/bench/page_client`;
  Deno.mkdirSync(`${cacheDir()}/bench`, { recursive: true });
  compile(hostArch(), ["-o", out, new URL("./page_client.c", import.meta.url).pathname]);
  return out;
}

async function main(): Promise<void> {
  const dir = Deno.makeTempDirSync({ dir: "/dev/shm", prefix: "u2cm-bench-ps-" });
  try {
    const data = new Uint8Array(pages * P);
    crypto.getRandomValues(data.subarray(0, 65536));
    for (let off = 65536; off < data.length; off += 65536) {
      data.copyWithin(off, 0, 65536);
      data[off] = (off / 65536) & 0xff; // no two neighbouring 64 KiB blocks alike
    }
    const file = `${dir}/pages-1.img`;
    Deno.writeFileSync(file, data);
    const addresses = Array.from({ length: pages }, (_, i) => BASE + i * P);
    const hashes = pageHashes(data);
    const composed: ComposeResult = {
      inPlace: pages,
      copied: 0,
      processes: new Map([[1, {
        addresses,
        fileCount: pages,
        hashes,
        covered: new Set<number>(),
        page: () => Promise.resolve(new Uint8Array(P)),
        pagesFile: file,
      }]]),
    };
    const b = new ManifestBuilder();
    b.add("process", 1, addresses, hashes);
    const manifest = decodeManifest(b.encode());

    const samples: Record<string, number[]> = {};
    for (let rep = 0; rep < REPS; rep++) {
      for (const nr of SIZES) {
        for (const kind of KINDS) {
          const ms = await readAll({ kind, nr, composed, manifest });
          (samples[`${nr}/${kind}`] ??= []).push(ms);
        }
      }
    }
    const results: Record<string, unknown> = {};
    for (const nr of SIZES) {
      const requests = Math.floor(pages / nr);
      const row: Record<string, unknown> = { requests };
      for (const kind of KINDS) {
        const ms = median(samples[`${nr}/${kind}`]);
        row[kind] = {
          ms: round(ms),
          us_per_request: round((ms * 1000) / requests),
          us_per_page: round((ms * 1000) / (requests * nr)),
        };
      }
      row.native_vs_ts = round(median(samples[`${nr}/native`]) / median(samples[`${nr}/ts`]));
      results[String(nr)] = row;
    }
    console.log(JSON.stringify({ name: "page_server", mib: MIB, reps: REPS, results }, null, 2));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/** One session of `kind` reading every page in requests of `nr` pages; its milliseconds. */
async function readAll(o: {
  kind: LocalPageServerKind;
  nr: number;
  composed: ComposeResult;
  manifest: PageManifest;
}): Promise<number> {
  const { kind, nr } = o;
  const server = startLocalPageServer({
    composed: o.composed,
    manifest: o.manifest,
    expectedPages: pages,
    criuVersion: "4.1.1",
  }, kind);
  if (server.kind !== kind) throw new Error(`asked for the ${kind} server, got ${server.kind}`);
  // The daemon's side is a process of its own, in C (as CRIU's daemon is).
  const run = new Deno.Command(clientExe, {
    args: [String(server.port), String(nr), String(pages), String(BASE), "1"],
    stdout: "piped",
  }).output();
  const out = await run;
  const stats = await server.done;
  if (!out.success || !stats.closed || stats.mismatch) {
    throw new Error(`session failed: ${JSON.stringify(stats)}`);
  }
  return Number(new TextDecoder().decode(out.stdout)) / 1000;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
