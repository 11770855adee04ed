/**
 * Write models/corpus/manifest.json: one entry per compressed trace (workload, command line, load,
 * duration, rounds, backend, size) and the corpus total, which must stay ≤ 40 MB.
 *
 * Usage: deno run -A build/corpus/manifest.ts [DIR]  (default models/corpus)
 *
 * @module
 */
import { readTraceFile } from "../../src/trace/mod.ts";

const dir = Deno.args[0] ?? new URL("../../models/corpus", import.meta.url).pathname;
const LIMIT = 40 * 1024 * 1024;
const traces = [];
let total = 0;
const files = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith(".u2ct.gz"))
  .sort();
for (const name of files) {
  const trace = await readTraceFile(`${dir}/${name}`);
  const size = Deno.statSync(`${dir}/${name}`).size;
  total += size;
  const last = trace.rounds.at(-1);
  traces.push({
    file: name,
    workload: trace.header.workload?.name ?? "",
    commandLine: trace.header.target.cmdline.join(" "),
    load: trace.header.workload?.load ?? "",
    durationS: Math.round((last?.elapsedMs ?? 0) / 100) / 10,
    rounds: trace.rounds.length,
    intervalMs: trace.header.intervalMs,
    backend: trace.header.backend,
    accessBits: trace.header.accessBits,
    pageSize: trace.header.pageSize,
    endReason: trace.end?.reason ?? "cut short",
    sizeBytes: size,
    recordedAt: trace.header.startedAt,
    kernel: trace.header.host.kernel,
  });
}
if (total > LIMIT) throw new Error(`corpus is ${total} bytes, over the 40 MB limit`);
await Deno.writeTextFile(
  `${dir}/manifest.json`,
  JSON.stringify({ totalBytes: total, traces }, null, 1) + "\n",
);
console.log(`${dir}/manifest.json: ${traces.length} traces, ${total} bytes`);
