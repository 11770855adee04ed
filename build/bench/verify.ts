/**
 * Verification benchmark (prints one JSON object): what checking the restored tree against the
 * final page manifest costs. The same memcheck workload (U2CM_BENCH_MIB, default 256 MiB) is
 * migrated with the delta engine through an in-process channel (no link in the way), reading
 * the restored tree back with `--verify sample` and `--verify full`, U2CM_BENCH_REPS times each
 * (default 2), alternating. Reported: the destination's restore time (rebuild, image check, criu
 * restore, read-back), the downtime, the pages checked, and full over sample as ratios.
 *
 * @module
 */
import { runMigration } from "../../src/engine/driver.ts";
import { planOf } from "../../src/engine/select.ts";
import { LocalChannel } from "../../src/engine/local_channel.ts";
import type { VerifyMode } from "../../src/engine/contract.ts";
import { createPolicy } from "../../src/policy/mod.ts";
import { requireCriuBinary, startMemcheck } from "../../tests/criu/support.ts";

const MIB = Number(Deno.env.get("U2CM_BENCH_MIB") ?? 256);
const REPS = Number(Deno.env.get("U2CM_BENCH_REPS") ?? 2);
const WORKLOAD = ["--mib", String(MIB), "--write-pages", "100", "--hot-percent", "10"];

interface Row {
  restore_ms: number;
  downtime_ms: number;
  image_ms: number;
  read_back_ms: number;
  image_pages: number;
  read_back_pages: number;
  samples: number;
}

const KEYS = [
  "restore_ms",
  "downtime_ms",
  "image_ms",
  "read_back_ms",
  "image_pages",
  "read_back_pages",
] as const;

function empty(): Row {
  return {
    restore_ms: 0,
    downtime_ms: 0,
    image_ms: 0,
    read_back_ms: 0,
    image_pages: 0,
    read_back_pages: 0,
    samples: 0,
  };
}

requireCriuBinary();
const rows: Record<VerifyMode, Row> = {
  sample: empty(),
  full: empty(),
};
for (let rep = 0; rep < REPS; rep++) {
  for (const mode of ["sample", "full"] as const) {
    const r = await once(mode, `v${rep}${mode[0]}`);
    const row = rows[mode];
    row.restore_ms += r.restore_ms;
    row.downtime_ms += r.downtime_ms;
    row.image_ms += r.image_ms;
    row.read_back_ms += r.read_back_ms;
    row.image_pages += r.image_pages;
    row.read_back_pages += r.read_back_pages;
    row.samples++;
  }
}
for (const row of Object.values(rows)) {
  for (const k of KEYS) {
    row[k] = Math.round(row[k] / row.samples * 10) / 10;
  }
}
const ratio = (k: "restore_ms" | "downtime_ms" | "read_back_ms") =>
  Math.round(rows.full[k] / rows.sample[k] * 100) / 100;
console.log(JSON.stringify({
  name: "verify",
  workload: { program: "memcheck", args: WORKLOAD.join(" ") },
  sample: rows.sample,
  full: rows.full,
  full_over_sample: {
    read_back: ratio("read_back_ms"),
    restore: ratio("restore_ms"),
    downtime: ratio("downtime_ms"),
  },
  load_average: Deno.loadavg(),
}));

async function once(mode: VerifyMode, id: string): Promise<Omit<Row, "samples">> {
  const w = await startMemcheck(WORKLOAD);
  const dest = Deno.makeTempDirSync({ prefix: "u2cm-bench-dest-" });
  const work = Deno.makeTempDirSync({ prefix: "u2cm-bench-work-" });
  const channel = new LocalChannel({ dir: dest, migrationId: id });
  let restored = 0;
  try {
    await w.waitFor(/^tick 5 /, 30_000);
    const out = await runMigration({
      id,
      pid: w.pid,
      channel,
      policy: createPolicy("fixed-2"),
      workDir: work,
      verify: mode,
    }, planOf("delta", { softDirty: false, lazy: false }));
    restored = out.destPid;
    return {
      restore_ms: out.phases.restore_ms,
      downtime_ms: out.downtimeMs,
      image_ms: out.verified?.imageMs ?? 0,
      read_back_ms: out.verified?.readBackMs ?? 0,
      image_pages: out.verified?.imagePages ?? 0,
      read_back_pages: out.verified?.readBackPages ?? 0,
    };
  } finally {
    channel.close();
    if (restored) {
      try {
        Deno.kill(restored, "SIGKILL");
      } catch { /* gone */ }
    }
    await w.stop();
    for (const d of [dest, work, w.dir]) Deno.removeSync(d, { recursive: true });
  }
}
