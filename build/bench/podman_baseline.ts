/**
 * Podman's own stop-and-copy, the baseline for u2cm's container migration (prints one JSON
 * object): a 256 MiB write-heavy memcheck container (100 pages per 20 ms tick in a 10 % hot set)
 * checkpointed on one podman node with `podman container checkpoint --export --compress none`
 * and restored on a second node of the same machine (its own store; the image already there, to
 * be fair to podman) with `podman container restore --import`. The export moves between the two
 * stores as a file (loopback: no wire time). Downtime runs from the checkpoint's start until the
 * restore returned with the container running; every run's memory is verified by memcheck itself
 * (SIGUSR1 → "verify ok") before it counts.
 *
 * Env: U2CM_BENCH_MIB (256), U2CM_BENCH_REPS (5).
 *
 * @module
 */
import { makePodmanPair, waitLog } from "../../tests/support/podman.ts";
import { memcheckImage } from "../../tests/support/container_images.ts";

const MIB = Number(Deno.env.get("U2CM_BENCH_MIB") ?? 256);
const REPS = Number(Deno.env.get("U2CM_BENCH_REPS") ?? 5);
const ARGS = ["--mib", String(MIB), "--write-pages", "100", "--hot-percent", "10"];

interface Run {
  checkpoint_ms: number;
  restore_ms: number;
  downtime_ms: number;
  export_bytes: number;
  verified: boolean;
}

const pair = makePodmanPair();
const { a, b } = pair;
const runs: Run[] = [];
try {
  const img = await memcheckImage(a);
  await memcheckImage(b);
  for (let rep = 0; rep < REPS; rep++) {
    const name = `bench${rep}`;
    await a.run([
      "run",
      "-d",
      "--name",
      name,
      "--network",
      "none",
      "--cgroup-parent",
      a.cgroupParent,
      img.name,
      "/bin/memcheck",
      ...ARGS,
    ]);
    await waitLog(a, name, /^tick 50 /, { timeoutMs: 60_000 });
    const tar = `${a.dir}/tmp/${name}.tar`;
    const t0 = performance.now();
    await a.run(["container", "checkpoint", name, "--export", tar, "--compress", "none"]);
    const t1 = performance.now();
    await b.run(["container", "restore", "--import", tar]);
    const t2 = performance.now();
    await b.run(["kill", "--signal", "USR1", name]);
    const verify = await waitLog(b, name, /^verify /, { timeoutMs: 30_000 });
    const run: Run = {
      checkpoint_ms: round(t1 - t0),
      restore_ms: round(t2 - t1),
      downtime_ms: round(t2 - t0),
      export_bytes: Deno.statSync(tar).size,
      verified: verify === `verify ok ${MIB * 256}`,
    };
    runs.push(run);
    console.error(`podman baseline run ${rep + 1}/${REPS}: ${JSON.stringify(run)}`);
    await a.run(["rm", "--force", "--time", "0", name]);
    await b.run(["rm", "--force", "--time", "0", name]);
    Deno.removeSync(tar);
  }
} finally {
  await pair.cleanup();
}

const med = (xs: number[]) => round([...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]);
console.log(JSON.stringify({
  name: "podman_baseline",
  workload: { program: "memcheck", args: ARGS.join(" "), image_present_on_destination: true },
  link: "loopback (two podman stores on one machine; the export moves as a file)",
  podman: new TextDecoder().decode(
    (await new Deno.Command("podman", { args: ["--version"] }).output()).stdout,
  ).trim(),
  runs,
  median: {
    checkpoint_ms: med(runs.map((r) => r.checkpoint_ms)),
    restore_ms: med(runs.map((r) => r.restore_ms)),
    downtime_ms: med(runs.map((r) => r.downtime_ms)),
  },
  all_verified: runs.every((r) => r.verified),
}));

function round(x: number): number {
  return Math.round(x * 10) / 10;
}
