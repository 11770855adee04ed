/**
 * The loopback half of the peer benchmark (build/bench/peer.ts): raw ws:// against the
 * authenticated channel (sealed bulk stream and WebSocket only), a keeping sink and Deno's wss://,
 * alternately in the same rounds, with the CPU each side spent.
 *
 * @example
 * ```ts
 * const out = await loopbackRuns(stateDir, ports.raw, child.pid, 256, 3, ports.wss);
 * console.log(out.ratio);
 * ```
 *
 * @module
 */
import { simdMasking } from "../../../src/peer/ws_mask.ts";
import { BENCH_SCRIPT, channelRun, cpuMs, makeBatches, rawRun } from "./runs.ts";

/** Raw ws:// against the authenticated channel on loopback, alternately, `runs` times each. */
export async function loopbackRuns(
  stateDir: string,
  rawPort: number,
  agentPid: number,
  mib: number,
  runs: number,
  wssPort?: number,
) {
  const batches = makeBatches(mib);
  const totalBytes = mib * 2 ** 20;
  // Warm both paths once (the first channel also learns the agent's certificate).
  await rawRun(rawPort, batches.slice(0, 4));
  await channelRun(stateDir, batches.slice(0, 4), "warm");
  const raw: number[] = [], auth: number[] = [], wss: number[] = [];
  const wsOnly: number[] = [], rawKeep: number[] = [];
  const zero = () => ({ source: 0, agent: 0 });
  const cpu = { raw: zero(), auth: zero(), wsOnly: zero(), rawKeep: zero(), wssAgent: 0 };
  const timed = async (
    into: number[],
    c: { source: number; agent: number },
    run: () => Promise<number>,
  ) => {
    const before = [cpuMs(Deno.pid), cpuMs(agentPid)];
    into.push(await run());
    c.source += cpuMs(Deno.pid) - before[0];
    c.agent += cpuMs(agentPid) - before[1];
  };
  for (let i = 0; i < runs; i++) {
    await timed(raw, cpu.raw, () => rawRun(rawPort, batches));
    await timed(auth, cpu.auth, () => channelRun(stateDir, batches, `bench-${i}`));
    await timed(wsOnly, cpu.wsOnly, () => channelRun(stateDir, batches, `ws-${i}`, false));
    await timed(rawKeep, cpu.rawKeep, () => rawRun(rawPort, batches, "ws", "/keep"));
    if (wssPort) {
      const before = cpuMs(agentPid);
      wss.push(await wssRun(wssPort, mib));
      cpu.wssAgent += cpuMs(agentPid) - before;
    }
  }
  const mbps = (ms: number) => Math.round(totalBytes / 1e6 / (ms / 1000));
  const rawMs = Math.min(...raw), authMs = Math.min(...auth);
  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  const per = (c: { source: number; agent: number }) => ({
    source: Math.round(c.source / runs),
    agent: Math.round(c.agent / runs),
  });
  return {
    raw_ws_ms: Math.round(rawMs),
    raw_ws_mb_s: mbps(rawMs),
    auth_channel_ms: Math.round(authMs),
    auth_channel_mb_s: mbps(authMs),
    ratio: r3(rawMs / authMs),
    goal_ratio: 0.8,
    pair_ratios: raw.map((r, i) => r3(r / auth[i])),
    // The same channel with every frame on the WebSocket over TLS (bulk: false), as before the
    // sealed bulk stream; and raw ws:// into a sink that keeps what it receives, as a store must.
    ws_only_channel_ms: Math.round(Math.min(...wsOnly)),
    ws_only_ratio: r3(rawMs / Math.min(...wsOnly)),
    raw_ws_keep_ms: Math.round(Math.min(...rawKeep)),
    keep_ratio: r3(Math.min(...rawKeep) / authMs),
    // Deno's own wss:// against ws:// (the same sink, TLS added): what TLS alone leaves.
    deno_wss_ms: wss.length ? Math.round(Math.min(...wss)) : undefined,
    deno_wss_ratio: wss.length ? r3(rawMs / Math.min(...wss)) : undefined,
    runs: {
      raw_ms: raw.map(Math.round),
      auth_ms: auth.map(Math.round),
      ws_only_ms: wsOnly.map(Math.round),
      raw_keep_ms: rawKeep.map(Math.round),
      deno_wss_ms: wss.map(Math.round),
    },
    cpu_ms_per_run: {
      raw: per(cpu.raw),
      auth: per(cpu.auth),
      ws_only: per(cpu.wsOnly),
      raw_keep: per(cpu.rawKeep),
      deno_wss: { agent: Math.round(cpu.wssAgent / runs) },
    },
    simd_masking: simdMasking(),
  };
}

/** One wss:// run in a child that accepts the self-signed certificate; its time in ms. */
async function wssRun(port: number, mib: number): Promise<number> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unsafely-ignore-certificate-errors=127.0.0.1",
      BENCH_SCRIPT,
      "--wss-run",
      String(port),
      String(mib),
    ],
    stdout: "piped",
    stderr: "null",
  }).output();
  const text = new TextDecoder().decode(r.stdout).trim().split("\n").pop() ?? "";
  return r.success ? JSON.parse(text).ms : Infinity;
}
