/**
 * What this node can do, as sent in the handshake: architecture, kernel, CRIU version, working
 * tracker backends, free memory and free disk under the state directory.
 *
 * @module
 */
import { statfsSync } from "node:fs";
import { lz4Compress, lz4Decompress } from "../native/codec.ts";
import { trackerCapabilities } from "../tracker/probe.ts";
import type { Capabilities } from "./protocol.ts";

/** u2cm's version, as reported to peers. */
export const U2CM_VERSION = "0.1.0";

/** Options of {@linkcode probeCapabilities}. */
export interface ProbeCapabilitiesOptions {
  /** Directory whose file system's free space is reported. */
  stateDir: string;
  /** Transports this node listens on. @default ["ws"] */
  transports?: ("ws" | "quic")[];
  /** The CRIU binary to ask for its version. @default $U2CM_CRIU, else `criu` on PATH */
  criuPath?: string;
}

let trackerCache: string[] | undefined;
const criuCache = new Map<string, string | null>();

/** Probe this node's capabilities (tracker and CRIU probes are cached per process). */
export function probeCapabilities(opts: ProbeCapabilitiesOptions): Capabilities {
  const mem = Deno.systemMemoryInfo();
  return {
    arch: Deno.build.arch,
    kernel: Deno.osRelease().slice(0, 128),
    criu: criuVersion(opts.criuPath ?? Deno.env.get("U2CM_CRIU") ?? "criu"),
    trackerBackends: trackerBackends(),
    freeMemoryBytes: mem.available,
    freeDiskBytes: freeDisk(opts.stateDir),
    transports: opts.transports ?? ["ws"],
    version: U2CM_VERSION,
    codecs: codecs(),
  };
}

let codecCache: string[] | undefined;

/** Page-batch codecs that work here: "lz4" when the native shim's codec round-trips a page. */
export function codecs(): string[] {
  if (codecCache) return codecCache;
  const out: string[] = [];
  try {
    const page = new Uint8Array(4096).map((_, i) => i % 7);
    const back = lz4Decompress(lz4Compress(page), page.length);
    if (back.every((v, i) => v === page[i])) out.push("lz4");
  } catch { /* no native shim: raw batches only */ }
  return codecCache = out;
}

/** Free bytes for unprivileged use on the file system holding `dir` (0 when unknown). */
export function freeDisk(dir: string): number {
  try {
    const s = statfsSync(dir);
    return Number(s.bavail) * Number(s.bsize);
  } catch {
    return 0;
  }
}

function trackerBackends(): string[] {
  if (trackerCache) return trackerCache;
  const backends = ["hash"];
  try {
    if (trackerCapabilities().softDirty.available) backends.push("softdirty");
  } catch { /* probing needs the native shim; the hash backend is always there */ }
  return trackerCache = backends;
}

function criuVersion(path: string): string | null {
  if (criuCache.has(path)) return criuCache.get(path)!;
  let version: string | null = null;
  try {
    const out = new Deno.Command(path, { args: ["--version"], stdout: "piped", stderr: "null" })
      .outputSync();
    const m = /Version:\s*(\S+)/.exec(new TextDecoder().decode(out.stdout));
    if (out.success && m) version = m[1].slice(0, 64);
  } catch { /* not installed */ }
  criuCache.set(path, version);
  return version;
}
