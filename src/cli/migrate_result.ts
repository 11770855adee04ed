/**
 * The result of `u2cm migrate`: the JSON object (`--format json`) and the table, for finished and
 * failed migrations.
 *
 * @module
 */
import type { MigrationChannel } from "../engine/channel.ts";
import type { MigrationOutcome } from "../engine/types.ts";
import type { CompressionStats } from "../peer/compression.ts";
import type { ContainerSummary } from "../container/types.ts";

/** The JSON result of `u2cm migrate --format json`. */
export interface MigrateResult {
  ok: boolean;
  engine: string;
  policy: string;
  total_ms: number;
  downtime_ms: number;
  bytes_sent: number;
  precopy_rounds: number;
  dest_pid: number | null;
  rounds: MigrationOutcome["rounds"];
  phases: MigrationOutcome["phases"] | null;
  /** Page-batch compression: mode, whether it ended active, and what it did. */
  compression?: CompressionResult;
  /**
   * Pages of the frozen tree the destination checked against the source's final page manifest
   * before restoring (every page of every private and shared mapping); 0 when not verified.
   */
  verified_pages: number;
  /** The verification in detail, or null when the engine does not verify. */
  verification: VerificationResult | null;
  /**
   * Post-copy final phases only: the pages fetched after the resume, each checked against the
   * source's manifest as it arrived, the page requests and remote faults, and the risk run.
   */
  post_copy?: PostCopyResult;
  /**
   * A verified lazy local restore (scan-and-copy with a big tree): the pages placed after the
   * resume from the destination's own images, each checked against the manifest first.
   */
  local_lazy?: LocalLazyResult;
  /**
   * The container migrated (`--container`): name, ID, runtime, image, and whether the image had
   * to be sent (the destination lacked it).
   */
  container?: ContainerSummary & { image_sent?: boolean };
  error?: string;
}

/** The `verification` object of the JSON result. */
export interface VerificationResult {
  /** Read-back mode: "sample" (a sample per mapping) or "full" (every page). */
  mode: string;
  /** Pages the manifest names. */
  manifest_pages: number;
  /** Pages of the assembled images checked before the restore. */
  image_pages: number;
  /** Pages of the restored, stopped tree read back and matched. */
  read_back_pages: number;
  /** Milliseconds the image check and the read-back took (part of restore_ms). */
  image_ms: number;
  read_back_ms: number;
  /**
   * Pages left lazy by a verified lazy local restore, each checked as it was placed after the
   * resume (`local_lazy`); absent when none were.
   */
  lazy_pages?: number;
  /** Milliseconds of each step of the destination's restore (absent from older agents). */
  steps_ms?: Record<string, number>;
}

/** The `post_copy` object of the JSON result. */
export interface PostCopyResult {
  /** Pages left at the source after the restore. */
  lazy_pages: number;
  /** Of them, pages that arrived and matched the manifest (all of them: otherwise not ok). */
  checked_pages: number;
  /** Page requests of the destination's lazy-pages daemon (faults and background fetches). */
  requests: number;
  /** Faults of the running tree served from the source, when the destination counted them. */
  remote_faults: number | null;
  /** The link-loss risk post-copy ran. */
  link_risk: string;
  /** Milliseconds from the resume until the last lazy page was served. */
  drain_ms: number | null;
}

/** The `local_lazy` object of the JSON result. */
export interface LocalLazyResult {
  /** Pages the restore left to the destination's lazy-pages daemon. */
  lazy_pages: number;
  /** Of them, pages placed after matching the manifest (all of them: otherwise not ok). */
  checked_pages: number;
  /** Page requests of the daemon (faults and background fetches). */
  requests: number;
  /** Faults of the running tree the daemon served, when counted. */
  faults: number | null;
  /** Milliseconds from the resume until the fill was reported complete (inside total_ms). */
  fill_ms: number;
}

/** The `compression` object of the JSON result. */
export interface CompressionResult {
  /** The mode asked for (or "off" when the peer cannot decompress). */
  mode: string;
  /** Whether batches were being compressed at the end. */
  active: boolean;
  /** Batches sent compressed / raw. */
  packed_frames: number;
  raw_frames: number;
  /** Wire bytes of the compressed batches' data over their raw size (1 when none). */
  ratio: number;
  /** Measured LZ4 throughput and busy-link rate, MB/s (0 when not measured). */
  lz4_mb_s: number;
  link_mb_s: number;
}

/** The JSON view of a channel's compression figures. */
export function compressionOf(s: CompressionStats): CompressionResult {
  const mbs = (bps: number) => Math.round(bps / 1e6);
  return {
    mode: s.mode,
    active: s.active,
    packed_frames: s.packedFrames,
    raw_frames: s.rawFrames,
    ratio: s.packedRawBytes > 0 ? Math.round(s.packedBytes / s.packedRawBytes * 1000) / 1000 : 1,
    lz4_mb_s: mbs(s.compressBps),
    link_mb_s: mbs(s.linkBps),
  };
}

/** The result object printed for a finished migration. */
export function resultOf(o: MigrationOutcome): MigrateResult {
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    ok: true,
    engine: o.engine,
    policy: o.policy,
    total_ms: r(o.totalMs),
    downtime_ms: r(o.downtimeMs),
    bytes_sent: o.bytesSent,
    precopy_rounds: o.precopyRounds,
    dest_pid: o.destPid,
    rounds: o.rounds,
    phases: {
      freeze_ms: r(o.phases.freeze_ms),
      dump_ms: r(o.phases.dump_ms),
      transfer_ms: r(o.phases.transfer_ms),
      restore_ms: r(o.phases.restore_ms),
      ...optionalPhases(o.phases, r),
    },
    // Post-copy checks its lazy pages as they arrive: they count once all of them matched.
    verified_pages: (o.verified?.imagePages ?? 0) + (o.postCopy?.checkedPages ?? 0),
    verification: o.verified
      ? {
        mode: o.verified.mode,
        manifest_pages: o.verified.manifestPages,
        image_pages: o.verified.imagePages,
        read_back_pages: o.verified.readBackPages,
        image_ms: o.verified.imageMs,
        read_back_ms: o.verified.readBackMs,
        ...(o.verified.lazyPages !== undefined ? { lazy_pages: o.verified.lazyPages } : {}),
        ...(o.verified.stepsMs ? { steps_ms: o.verified.stepsMs } : {}),
      }
      : null,
    ...(o.localLazy
      ? {
        local_lazy: {
          lazy_pages: o.localLazy.lazyPages,
          checked_pages: o.localLazy.checkedPages,
          requests: o.localLazy.requests,
          faults: o.localLazy.faults ?? null,
          fill_ms: Math.round(o.localLazy.fillMs),
        },
      }
      : {}),
    ...(o.postCopy
      ? {
        post_copy: {
          lazy_pages: o.postCopy.lazyPages,
          checked_pages: o.postCopy.checkedPages,
          requests: o.postCopy.requests,
          remote_faults: o.postCopy.remoteFaults ?? null,
          link_risk: o.postCopy.linkRisk,
          drain_ms: o.postCopy.drainMs === undefined ? null : Math.round(o.postCopy.drainMs),
        },
      }
      : {}),
  };
}

/** The breakdown phases a final phase or the driver reported (scan, release, resume, other). */
function optionalPhases(
  p: MigrationOutcome["phases"],
  r: (x: number) => number,
): Partial<MigrationOutcome["phases"]> {
  const out: Partial<MigrationOutcome["phases"]> = {};
  const keys = [
    "scan_ms",
    "scan_overlap_ms",
    "transfer_pages_ms",
    "transfer_eager_ms",
    "transfer_pagemap_ms",
    "transfer_manifest_ms",
    "transfer_files_ms",
    "transfer_flush_ms",
    "release_ms",
    "manifest_ms",
    "resume_ms",
    "other_ms",
  ] as const;
  for (const k of keys) {
    if (p[k] !== undefined) out[k] = r(p[k]!);
  }
  return out;
}

/** The result object printed for a migration that failed (the source runs on). */
export function failedResult(
  engine: string,
  policy: string,
  error: string,
  channel?: MigrationChannel & { readonly compression?: CompressionStats },
): MigrateResult {
  return {
    ok: false,
    engine,
    policy,
    total_ms: 0,
    downtime_ms: 0,
    bytes_sent: channel?.bytesSent ?? 0,
    precopy_rounds: 0,
    dest_pid: null,
    rounds: [],
    phases: null,
    verified_pages: 0,
    verification: null,
    ...(channel?.compression ? { compression: compressionOf(channel.compression) } : {}),
    error,
  };
}

/** Print a result as JSON or as a table of rounds and figures. */
export function printResult(format: "table" | "json", r: MigrateResult): void {
  if (format === "json") {
    console.log(JSON.stringify(r));
    return;
  }
  console.log("round  pages_sent  dirtied  predicted  duration_ms  MiB");
  for (const x of r.rounds) {
    console.log(
      `${String(x.index).padStart(5)}  ${String(x.pages_sent).padStart(10)}  ${
        String(x.pages_dirtied).padStart(7)
      }  ${String(x.predicted_dirty ?? "-").padStart(9)}  ${String(x.duration_ms).padStart(11)}  ${
        (x.bytes / 2 ** 20).toFixed(1).padStart(5)
      }`,
    );
  }
  const rows: [string, string][] = [
    ["result", r.ok ? "migrated" : `failed: ${r.error}`],
    ["engine / policy", `${r.engine} / ${r.policy}`],
    ["total", `${r.total_ms} ms`],
    ["downtime", `${r.downtime_ms} ms`],
    ["sent", `${(r.bytes_sent / 2 ** 20).toFixed(1)} MiB`],
    ...(r.compression
      ? [[
        "compression",
        `${r.compression.mode}: ${r.compression.packed_frames} batches LZ4 (ratio ${r.compression.ratio}), ${r.compression.raw_frames} raw`,
      ] as [string, string]]
      : []),
    ["pre-copy rounds", String(r.precopy_rounds)],
    ["destination pid", String(r.dest_pid)],
    [
      "verified",
      r.verification
        ? `${r.verified_pages} pages against the manifest, ${r.verification.read_back_pages} read back (${r.verification.mode})`
        : "no",
    ],
    ...(r.container
      ? [[
        "container",
        `${r.container.name} (${r.container.runtime}, ${
          r.container.id.slice(0, 12)
        }, ${r.container.image})`,
      ] as [string, string]]
      : []),
  ];
  if (r.phases) {
    const p = r.phases;
    rows.push([
      "final phase",
      `freeze ${p.freeze_ms} · dump ${p.dump_ms} · transfer ${p.transfer_ms} · restore ${p.restore_ms} ms`,
    ]);
    if (p.resume_ms !== undefined) {
      const scan = p.scan_ms !== undefined
        ? `scan ${p.scan_ms} · release ${p.release_ms ?? 0} · `
        : "";
      rows.push(["downtime split", `${scan}resume ${p.resume_ms} · other ${p.other_ms ?? 0} ms`]);
    }
  }
  for (const [k, v] of rows) console.log(`${k.padEnd(16)} ${v}`);
}
