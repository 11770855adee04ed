/**
 * The `demo` task: the main job on this machine. Until the migration engine lands it records a
 * dirty-page trace of a real workload (redis-server under redis-benchmark on loopback) and prints
 * the trace's summary.
 *
 * @module
 */
import { buildShims, ensureDebianPackages, REPO_ROOT, run, step } from "./setup.ts";

const work = `${REPO_ROOT}.cache/demo`;
Deno.mkdirSync(work, { recursive: true });

step("Debian packages for the demo workload");
await ensureDebianPackages(["redis-server", "redis-tools"]);
step("native shim");
await buildShims();

step("start redis-server on 127.0.0.1 and load it with redis-benchmark");
const port = 20000 + Math.floor(Math.random() * 20000);
const redis = new Deno.Command("redis-server", {
  args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
  stdout: "null",
  stderr: "null",
}).spawn();
let bench: Deno.ChildProcess | undefined;
try {
  await waitForRedis(port);
  bench = new Deno.Command("redis-benchmark", {
    args: ["-p", String(port), "-t", "set,get", "-n", "400000", "-r", "200000", "-d", "512", "-q"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  step(`u2cm trace --pid ${redis.pid} (10 s at 100 ms)`);
  const trace = `${work}/redis.u2ct`;
  await run("trace", [
    Deno.execPath(),
    "run",
    "-A",
    "main.ts",
    "trace",
    "--pid",
    String(redis.pid),
    "--interval",
    "100",
    "--duration",
    "10",
    "--workload",
    "redis",
    "--load",
    "redis-benchmark set,get -d 512 -r 200000",
    "-o",
    trace,
  ]);
  step(`u2cm trace info ${trace}`);
  await run("trace info", [Deno.execPath(), "run", "-A", "main.ts", "trace", "info", trace]);
} finally {
  try {
    bench?.kill();
  } catch { /* already ended */ }
  redis.kill();
  await redis.status;
  await bench?.status;
}

async function waitForRedis(port: number): Promise<void> {
  for (let i = 0; i < 50; i++) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`redis-server did not listen on 127.0.0.1:${port} within 5 s`);
}
