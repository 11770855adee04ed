/**
 * Container migration benchmark (prints one JSON object): a 256 MiB write-heavy memcheck container
 * (100 pages per 20 ms tick in a 10 % hot set) moved between two podman nodes of one machine (two
 * stores; the image already on the destination, to be fair to podman), on each link of one run
 * (loopback, and two network namespaces joined by a tbf-shaped veth at 1 Gbit/s):
 * - podman's own stop-and-copy: `podman container checkpoint --export --compress none` on one
 *   node, the export sent over the link (a plain TCP copy between the namespaces; on loopback it
 *   moves as a file), `podman container restore --import` on the other. Downtime: from the
 *   checkpoint's start until the restore returned, the container running;
 * - u2cm: `u2cm migrate --container --policy u2c` from the source namespace to a `u2cm agent` in
 *   the destination's (u2cm's pre-copy, then podman's checkpoint at the source and its restore at
 *   the destination, left stopped until the commit, read back against the page manifest).
 *   Downtime as u2cm reports it (freeze → restored copy running), with its phases.
 * Every run's memory is verified by memcheck itself (SIGUSR1 → "verify ok") before it counts.
 * The figure of merit, per link: median u2cm downtime / median podman downtime (goal ≤ 0.3). The
 * floor u2cm cannot pass while podman checkpoints (all memory written inside the freeze) and
 * restores: podman's checkpoint + restore without the wire, reported as `podman_floor_ratio`.
 *
 * u2cm runs with each container freeze of `U2CM_BENCH_FREEZES` ("dump,lazy"): podman's full
 * checkpoint, and the lazy dump under podman's checkpoint (`U2CM_CONTAINER_FREEZE=lazy`).
 * `podman_restore_ratio`: podman's restore alone over its downtime — what u2cm's destination side
 * (podman's `restore --import` of the whole image set) costs at least.
 *
 * Env: U2CM_BENCH_MIB (256), U2CM_BENCH_REPS (3), U2CM_BENCH_LINKS ("lo,1gbit"),
 * U2CM_BENCH_FREEZES ("dump,lazy").
 *
 * @module
 */
import { makePodmanPair, waitLog } from "../../tests/support/podman.ts";
import { memcheckImage } from "../../tests/support/container_images.ts";
import { retryHandshake, startMemcheckContainer } from "../../tests/support/podman_agents.ts";
import { makeNodes, u2cm } from "../../tests/engine/support/agents.ts";
import { type LinkedNamespaces, linkedNamespaces } from "../../tests/support/netns.ts";

const MIB = Number(Deno.env.get("U2CM_BENCH_MIB") ?? 256);
const REPS = Number(Deno.env.get("U2CM_BENCH_REPS") ?? 3);
const LINKS = (Deno.env.get("U2CM_BENCH_LINKS") ?? "lo,1gbit").split(",").filter(Boolean);
const ARGS = ["--mib", String(MIB), "--write-pages", "100", "--hot-percent", "10"];
/** u2cm's container freezes: podman's full checkpoint, and the lazy dump (`U2CM_CONTAINER_FREEZE`). */
const FREEZES = (Deno.env.get("U2CM_BENCH_FREEZES") ?? "dump,lazy").split(",").filter(Boolean);

interface PodmanRun {
  checkpoint_ms: number;
  wire_ms: number;
  restore_ms: number;
  downtime_ms: number;
  export_bytes: number;
  verified: boolean;
}

interface U2cmRun {
  total_ms: number;
  downtime_ms: number;
  bytes_sent: number;
  precopy_rounds: number;
  verified_pages: number;
  phases: Record<string, number>;
  verified: boolean;
}

const pair = makePodmanPair();
const { a, b } = pair;
const results: Record<string, unknown> = {};
let subnet = 91;
try {
  await memcheckImage(a);
  await memcheckImage(b);
  for (const link of LINKS) {
    const net = link === "lo" ? undefined : linkedNamespaces(`cb${subnet}`, link, subnet++);
    try {
      results[link] = await benchLink(net);
    } finally {
      net?.cleanup();
    }
  }
} finally {
  await pair.cleanup();
}

const ratios: Record<string, unknown> = {};
for (const [link, r] of Object.entries(results)) {
  ratios[link] = (r as { downtime_u2cm_over_podman: unknown }).downtime_u2cm_over_podman;
}
console.log(JSON.stringify({
  name: "container",
  workload: { program: "memcheck", args: ARGS.join(" "), image_present_on_destination: true },
  podman: new TextDecoder().decode(
    (await new Deno.Command("podman", { args: ["--version"] }).output()).stdout,
  ).trim(),
  links: results,
  downtime_u2cm_over_podman: ratios,
  load_average: Deno.loadavg(),
  goal: "downtime ≤ 0.3× podman's, memory verified",
}));

async function benchLink(net: LinkedNamespaces | undefined) {
  const nodes = await makeNodes();
  const agent = await nodes.startB(0, net?.enter("b") ?? [], net?.ipB ?? "127.0.0.1", {
    ...b.env,
    U2CM_CGROUP_PARENT: b.cgroupParent,
  });
  const u2cmRuns: Record<string, U2cmRun[]> = {};
  const runs: PodmanRun[] = [];
  const tag = net ? "n" : "l";
  for (const freeze of FREEZES) u2cmRuns[freeze] = [];
  const where = net ? "netns" : "lo";
  try {
    // interleaved (u2cm with each freeze, then podman, per repetition): a load that changes
    // during the run weighs on every series alike
    for (let rep = 0; rep < REPS; rep++) {
      for (const freeze of FREEZES) {
        const run = await u2cmRun(`u2cm${tag}${freeze}${rep}`, freeze, nodes.a, net, agent);
        u2cmRuns[freeze].push(run);
        console.error(`${where} u2cm ${freeze} run ${rep + 1}/${REPS}: ${JSON.stringify(run)}`);
      }
      const run = await podmanRun(`bench${tag}${rep}`, net);
      runs.push(run);
      console.error(`${where} podman run ${rep + 1}/${REPS}: ${JSON.stringify(run)}`);
    }
  } finally {
    await agent.stop();
    nodes.cleanup();
  }
  const podmanDowntime = med(runs.map((r) => r.downtime_ms));
  const podmanFloor = med(runs.map((r) => r.checkpoint_ms + r.restore_ms));
  const byFreeze: Record<string, unknown> = {};
  const ratio: Record<string, number> = {};
  for (const [freeze, rs] of Object.entries(u2cmRuns)) {
    const downtime = med(rs.map((r) => r.downtime_ms));
    byFreeze[freeze] = {
      runs: rs,
      median: {
        total_ms: med(rs.map((r) => r.total_ms)),
        downtime_ms: downtime,
        dump_ms: med(rs.map((r) => r.phases.dump_ms ?? 0)),
        freeze_ms: med(rs.map((r) => r.phases.freeze_ms ?? 0)),
        transfer_ms: med(rs.map((r) => r.phases.transfer_ms ?? 0)),
        restore_ms: med(rs.map((r) => r.phases.restore_ms ?? 0)),
        bytes_sent: med(rs.map((r) => r.bytes_sent)),
      },
    };
    ratio[freeze] = round(downtime / podmanDowntime * 100) / 100;
  }
  return {
    link: net ? "two netns, veth shaped with tbf" : "loopback (the export moves as a file)",
    podman: {
      runs,
      median: {
        checkpoint_ms: med(runs.map((r) => r.checkpoint_ms)),
        wire_ms: med(runs.map((r) => r.wire_ms)),
        restore_ms: med(runs.map((r) => r.restore_ms)),
        downtime_ms: podmanDowntime,
      },
    },
    u2cm: byFreeze,
    downtime_u2cm_over_podman: ratio,
    podman_floor_ratio: round(podmanFloor / podmanDowntime * 100) / 100,
    podman_restore_ratio: round(med(runs.map((r) => r.restore_ms)) / podmanDowntime * 100) / 100,
    all_verified: runs.every((r) => r.verified) &&
      Object.values(u2cmRuns).every((rs) => rs.every((r) => r.verified)),
  };
}

/** One u2cm migration of a fresh container with container freeze `freeze`, verified. */
async function u2cmRun(
  name: string,
  freeze: string,
  stateDir: string,
  net: LinkedNamespaces | undefined,
  agent: { log(): string },
): Promise<U2cmRun> {
  await startMemcheckContainer(a, name, ARGS, { tick: 50, timeoutMs: 60_000 });
  const args = ["migrate", "--container", name, "--to", "b", "--policy", "u2c"];
  const r = await retryHandshake(() =>
    u2cm(
      [...args, "--format", "json", "--state-dir", stateDir],
      { ...a.env, U2CM_CONTAINER_FREEZE: freeze },
      net?.enter("a") ?? [],
    )
  );
  if (r.code !== 0) throw new Error(`u2cm migrate failed: ${r.stderr}${agent.log().slice(-1500)}`);
  const res = JSON.parse(r.stdout);
  await b.run(["kill", "--signal", "USR1", name]);
  const verify = await waitLog(b, name, /^verify /, { timeoutMs: 30_000 });
  await b.run(["rm", "--force", "--time", "0", name]);
  return {
    total_ms: res.total_ms,
    downtime_ms: res.downtime_ms,
    bytes_sent: res.bytes_sent,
    precopy_rounds: res.precopy_rounds,
    verified_pages: res.verified_pages,
    phases: res.phases,
    verified: verify === `verify ok ${MIB * 256}` && res.verified_pages >= MIB * 256,
  };
}

/** podman's own stop-and-copy of a fresh container: checkpoint, the export over the link, restore. */
async function podmanRun(name: string, net: LinkedNamespaces | undefined): Promise<PodmanRun> {
  await startMemcheckContainer(a, name, ARGS, { tick: 50, timeoutMs: 60_000 });
  const tar = `${a.dir}/tmp/${name}.tar`;
  const arrived = `${b.dir}/tmp/${name}.tar`;
  const receiver = net ? receive(net, arrived) : undefined;
  const t0 = performance.now();
  await a.run(["container", "checkpoint", name, "--export", tar, "--compress", "none"]);
  const t1 = performance.now();
  if (net) await send(net, tar, receiver!);
  else Deno.renameSync(tar, arrived);
  const t2 = performance.now();
  await b.run(["container", "restore", "--import", arrived]);
  const t3 = performance.now();
  await b.run(["kill", "--signal", "USR1", name]);
  const verify = await waitLog(b, name, /^verify /, { timeoutMs: 30_000 });
  const bytes = Deno.statSync(arrived).size;
  await a.run(["rm", "--force", "--time", "0", name]);
  await b.run(["rm", "--force", "--time", "0", name]);
  for (const f of [tar, arrived]) await Deno.remove(f).catch(() => {});
  return {
    checkpoint_ms: round(t1 - t0),
    wire_ms: round(t2 - t1),
    restore_ms: round(t3 - t2),
    downtime_ms: round(t3 - t0),
    export_bytes: bytes,
    verified: verify === `verify ok ${MIB * 256}`,
  };
}

/** A TCP receiver in namespace b writing what arrives to `file`; resolves when it is done. */
function receive(net: LinkedNamespaces, file: string): Promise<void> {
  const py = "import socket,sys\n" +
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n" +
    "s.bind((sys.argv[1], 29511)); s.listen(1); c,_=s.accept(); f=open(sys.argv[2],'wb')\n" +
    "while True:\n  d=c.recv(1<<20)\n  if not d: break\n  f.write(d)\nf.close()\n";
  const child = new Deno.Command(net.enter("b")[0], {
    args: [...net.enter("b").slice(1), "python3", "-c", py, net.ipB, file],
  }).spawn();
  return child.status.then((s) => {
    if (!s.success) throw new Error("the export's receiver failed");
  });
}

/** Send `file` from namespace a to the receiver; resolves once it wrote the last byte. */
async function send(net: LinkedNamespaces, file: string, received: Promise<void>): Promise<void> {
  const py = "import socket,sys,time\n" +
    "for i in range(200):\n  try:\n    s=socket.create_connection((sys.argv[1], 29511)); break\n" +
    "  except OSError: time.sleep(0.01)\n" +
    "s.sendfile(open(sys.argv[2],'rb')); s.shutdown(socket.SHUT_WR); s.recv(1)\n";
  const out = await new Deno.Command(net.enter("a")[0], {
    args: [...net.enter("a").slice(1), "python3", "-c", py, net.ipB, file],
  }).output();
  if (!out.success) {
    throw new Error(`sending the export failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  await received;
}

function med(xs: number[]): number {
  return round([...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]);
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}
