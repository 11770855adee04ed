import assert from "node:assert/strict";
import { FEATURE_NAMES, FeatureSampler, findCgroup2Mount } from "../../src/history/features.ts";

const at = (name: string) => FEATURE_NAMES.indexOf(name);

Deno.test("feature names start with the paper's seven system features", () => {
  assert.deepEqual(FEATURE_NAMES.slice(0, 7), [
    "pgfault",
    "pgpgin",
    "pgpgout",
    "ctxt",
    "softirq",
    "mem_free_bytes",
    "disk_write_bytes",
  ]);
  assert.equal(new Set(FEATURE_NAMES).size, FEATURE_NAMES.length);
});

/** Read a child's stdout until `pattern` shows up (chunks may split lines); fails at EOF. */
async function readUntil(reader: ReadableStreamDefaultReader<Uint8Array>, pattern: RegExp) {
  let text = "";
  for (let i = 0; i < 1000 && !pattern.test(text); i++) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  assert.match(text, pattern);
}

Deno.test("counters start at zero and then count a real child's writes and CPU time", async () => {
  // A child that writes 8 MiB to /dev/null in 64 KiB chunks and burns CPU, then waits.
  const script = `
    import os, time
    buf = b"x" * 65536
    fd = os.open("/dev/null", os.O_WRONLY)
    print("ready", flush=True)
    input()
    for _ in range(128): os.write(fd, buf)
    t = time.process_time()
    while time.process_time() - t < 0.2: pass
    print("done", flush=True)
    input()
  `;
  const child = new Deno.Command("python3", {
    args: ["-c", script.replace(/^ {4}/gm, "")],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  const reader = child.stdout.getReader();
  try {
    await readUntil(reader, /ready/);
    const sampler = new FeatureSampler(child.pid);
    const first = sampler.sample([child.pid]);
    assert.equal(first[at("proc_write_bytes")], 0);
    assert.equal(first[at("pgfault")], 0);
    assert.ok(first[at("mem_free_bytes")] > 0, "MemFree is a gauge, present from the start");
    assert.ok(first[at("proc_rss_bytes")] > 0, "RSS is a gauge, present from the start");
    await writer.write(new TextEncoder().encode("\n"));
    await readUntil(reader, /done/);
    const second = sampler.sample([child.pid]);
    assert.ok(
      second[at("proc_write_bytes")] >= 128 * 65536,
      `wchar ${second[at("proc_write_bytes")]}`,
    );
    assert.ok(second[at("proc_cpu_ms")] >= 100, `cpu ${second[at("proc_cpu_ms")]} ms`);
    assert.ok(second[at("ctxt")] > 0);
    assert.ok(!Number.isNaN(second[at("pgpgin")]), "pgpgin comes from /proc/vmstat, never NaN");
  } finally {
    child.kill();
    await child.status;
    await reader.cancel().catch(() => {});
  }
});

Deno.test("a process that exits does not make tree counters go backwards", () => {
  const sampler = new FeatureSampler(Deno.pid);
  sampler.sample([Deno.pid, 999_999_999]);
  const next = sampler.sample([Deno.pid]);
  for (const name of ["proc_cpu_ms", "proc_minflt", "proc_write_bytes"]) {
    assert.ok(next[at(name)] >= 0, `${name} = ${next[at(name)]}`);
  }
});

Deno.test("cgroup features come from the cgroup2 mount, or are NaN without one", () => {
  const sampler = new FeatureSampler(Deno.pid);
  sampler.sample([Deno.pid]);
  const f = sampler.sample([Deno.pid]);
  if (findCgroup2Mount()) assert.ok(f[at("cg_cpu_usec")] >= 0);
  const none = new FeatureSampler(Deno.pid, { cgroupRoot: "/nonexistent" });
  assert.ok(Number.isNaN(none.sample([Deno.pid])[at("cg_cpu_usec")]));
});
