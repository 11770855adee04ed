import assert from "node:assert/strict";
import { launchIsolated } from "../../src/engine/launch.ts";
import { isAlive, processState, waitGone } from "../../src/tracker/proc.ts";
import { requireCriuBinary } from "../criu/support.ts";
import { requireCommand } from "../support/env.ts";
import { makeNodes, migrateTo, u2cm } from "./support/agents.ts";
import { linkedNamespaces } from "../support/netns.ts";

/**
 * A workload whose memory is compressible: 48 MiB of key-value text (a Python bytearray), a
 * SHA-256 of it taken at start, a tick counter, and "verify ok|FAIL" on SIGUSR1.
 */
const TEXT_WORKLOAD = `
import hashlib, signal, sys, time
rows = []
x = 2463534242
size = 0
while size < 48 * 1024 * 1024:
    x ^= (x << 13) & 0xffffffff; x ^= x >> 17; x ^= (x << 5) & 0xffffffff
    row = 'session:%d {"user":"u%d","city":"%s","seen":%d}\\n' % (
        len(rows), x % 1000000, ("Berlin", "Lyon", "Porto", "Oslo")[x % 4], 1764000000 + x % 999999)
    rows.append(row)
    size += len(row)
data = bytearray("".join(rows).encode())
del rows
digest = hashlib.sha256(data).hexdigest()
def verify(*_):
    ok = hashlib.sha256(data).hexdigest() == digest
    print("verify ok" if ok else "verify FAIL", flush=True)
signal.signal(signal.SIGUSR1, verify)
print("ready", flush=True)
tick = 0
while True:
    tick += 1
    print("tick %d" % tick, flush=True)
    time.sleep(0.05)
`;

async function startTextWorkload(prefix?: string[]) {
  const python = requireCommand("python3");
  const dir = Deno.makeTempDirSync({ prefix: "u2cm-textwl-" });
  const out = `${dir}/stdout`;
  const w = await launchIsolated({
    cmd: python,
    args: ["-c", TEXT_WORKLOAD],
    stdout: out,
    stderr: `${dir}/stderr`,
    prefix,
  });
  const lines = () => {
    try {
      return Deno.readTextFileSync(out).split("\n").filter((l) => l !== "");
    } catch {
      return [];
    }
  };
  const waitFor = async (re: RegExp, from = 0, timeoutMs = 30_000) => {
    const until = performance.now() + timeoutMs;
    for (let i = 0; i < 10_000 && performance.now() < until; i++) {
      const hit = lines().slice(from).find((l) => re.test(l));
      if (hit) return hit;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(
      `workload never printed ${re}: ${lines().slice(-3)} ${readOr(`${dir}/stderr`)}`,
    );
  };
  await waitFor(/^tick 3$/);
  return { ...w, dir, lines, waitFor };
}

function readOr(path: string): string {
  try {
    return Deno.readTextFileSync(path).slice(-500);
  } catch {
    return "";
  }
}

Deno.test("u2cm migrate --compress on moves a text-heavy workload intact with far fewer bytes than off", async () => {
  requireCriuBinary();
  const nodes = await makeNodes();
  const agent = await nodes.startB();
  const results: Record<string, { bytes_sent: number; compression: Record<string, unknown> }> = {};
  const dests: number[] = [];
  const workloads: Awaited<ReturnType<typeof startTextWorkload>>[] = [];
  try {
    for (const mode of ["off", "on"]) {
      const w = await startTextWorkload();
      workloads.push(w);
      const r = await u2cm([
        ...migrateTo(w.pid),
        "--compress",
        mode,
        "--format",
        "json",
        "--state-dir",
        nodes.a,
      ]);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const result = JSON.parse(r.stdout);
      assert.equal(result.ok, true);
      dests.push(result.dest_pid);
      results[mode] = result;
      assert.ok(await waitGone(w.pid, 5000), "source still exists");
      assert.ok(isAlive(result.dest_pid), "restored copy not running");
      const mark = w.lines().length;
      Deno.kill(result.dest_pid, "SIGUSR1");
      assert.equal(await w.waitFor(/^verify /, mark), "verify ok");
      const before = w.lines().length;
      await w.waitFor(/^tick /, before);
    }
    const off = results.off, on = results.on;
    assert.equal(off.compression.mode, "off");
    assert.equal(off.compression.packed_frames, 0);
    assert.equal(on.compression.mode, "on");
    assert.ok(Number(on.compression.packed_frames) > 0, JSON.stringify(on.compression));
    assert.ok(Number(on.compression.ratio) < 0.6, JSON.stringify(on.compression));
    assert.ok(off.bytes_sent >= 48 * 2 ** 20, `off sent ${off.bytes_sent}`);
    assert.ok(
      on.bytes_sent < 0.6 * off.bytes_sent,
      `on sent ${on.bytes_sent}, off ${off.bytes_sent}`,
    );
    console.log(
      `text workload: off ${(off.bytes_sent / 2 ** 20).toFixed(1)} MiB, on ${
        (on.bytes_sent / 2 ** 20).toFixed(1)
      } MiB (${JSON.stringify(on.compression)})`,
    );
  } finally {
    for (const d of dests) if (d && processState(d)) Deno.kill(d, "SIGKILL");
    for (const w of workloads) {
      await w.stop();
      Deno.removeSync(w.dir, { recursive: true });
    }
    await agent.stop();
    nodes.cleanup();
  }
});

Deno.test("over a 100 Mbit/s shaped link, --compress auto moves a text-heavy workload with far fewer bytes", async () => {
  requireCriuBinary();
  requireCommand("ip", "iproute2");
  requireCommand("nsenter", "util-linux");
  const net = linkedNamespaces("cz", "100mbit", 81);
  const nodes = await makeNodes();
  const agent = await nodes.startB(0, net.enter("b"), net.ipB);
  const results: Record<string, Record<string, unknown>> = {};
  const dests: number[] = [];
  const workloads: Awaited<ReturnType<typeof startTextWorkload>>[] = [];
  try {
    for (const mode of ["off", "auto"]) {
      const w = await startTextWorkload(net.enter("a"));
      workloads.push(w);
      const r = await u2cm(
        [
          ...migrateTo(w.pid),
          "--compress",
          mode,
          "--format",
          "json",
          "--state-dir",
          nodes.a,
        ],
        {},
        net.enter("a"),
      );
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const result = JSON.parse(r.stdout);
      dests.push(result.dest_pid);
      results[mode] = result;
      assert.ok(await waitGone(w.pid, 5000), "source still exists");
      const mark = w.lines().length;
      Deno.kill(result.dest_pid, "SIGUSR1");
      assert.equal(await w.waitFor(/^verify /, mark), "verify ok");
    }
    const off = results.off as { bytes_sent: number };
    const auto = results.auto as { bytes_sent: number; compression: { active: boolean } };
    assert.equal(auto.compression.active, true, JSON.stringify(auto.compression));
    assert.ok(auto.bytes_sent < 0.7 * off.bytes_sent, `${auto.bytes_sent} vs ${off.bytes_sent}`);
    const pick = (x: Record<string, unknown>) => ({
      total_ms: x.total_ms,
      downtime_ms: x.downtime_ms,
      mib: Math.round(Number(x.bytes_sent) / 2 ** 20 * 10) / 10,
      rounds: x.precopy_rounds,
      phases: x.phases,
      compression: x.compression,
    });
    console.log(`100mbit: ${JSON.stringify({ off: pick(results.off), auto: pick(results.auto) })}`);
  } finally {
    for (const d of dests) if (d && processState(d)) Deno.kill(d, "SIGKILL");
    for (const w of workloads) {
      await w.stop();
      Deno.removeSync(w.dir, { recursive: true });
    }
    await agent.stop();
    nodes.cleanup();
    net.cleanup();
  }
});

Deno.test("u2cm migrate rejects a bad --compress mode with exit 2", async () => {
  const r = await u2cm(["migrate", "--pid", "1", "--to", "b", "--compress", "max"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--compress must be one of auto, on, off, got 'max'/);
});
