/**
 * The `demo` task: the main job, on this machine. Two u2cm nodes (a source and a destination with
 * its agent) pin each other on loopback; a workload that checks its own memory runs in its own pid
 * namespace; `u2cm migrate` moves it live with the u2c policy and the delta engine; the demo then
 * shows that exactly one copy runs, on the destination, with its memory intact and its counter
 * going on, and writes the migration's HTML report.
 *
 * Everything it needs (Debian packages, the native shim, a private CRIU) is installed first.
 *
 * @module
 */
import { launchIsolated } from "../src/engine/launch.ts";
import { isAlive, waitGone } from "../src/tracker/proc.ts";
import { buildWorkload } from "../tests/support/workloads.ts";
import { buildShims, ensureDebianPackages, provisionCriu, REPO_ROOT, step } from "./setup.ts";

/** The step the demo is at, and the log that tells more, for the failure message. */
const at = { step: "start", log: "" };

/** Print a step header and remember it (and its log) for a failure message. */
function demoStep(text: string, log = ""): void {
  at.step = text;
  at.log = log;
  step(text);
}

const MIB = 256;
const work = `${REPO_ROOT}.cache/demo`;
Deno.mkdirSync(work, { recursive: true });
for (const old of Deno.readDirSync(work)) {
  Deno.removeSync(`${work}/${old.name}`, { recursive: true });
}

/** Run `u2cm ARGS` and return its stdout; a failure ends the demo with its stderr. */
async function u2cm(args: string[]): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${REPO_ROOT}main.ts`, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(
      `u2cm ${args[0]} failed (${out.code}):\n${new TextDecoder().decode(out.stderr)}${text}`,
    );
  }
  return text;
}

/** The last line of `file` matching `pattern`. */
function lastLine(file: string, pattern: RegExp): string | undefined {
  return Deno.readTextFileSync(file).split("\n").filter((l) => pattern.test(l)).at(-1);
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const until = performance.now() + timeoutMs;
  for (let i = 0; i < 10_000 && performance.now() < until; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the agent did not listen on 127.0.0.1:${port}; see ${work}/agent.log`);
}

async function waitForLine(file: string, pattern: RegExp, timeoutMs: number): Promise<string> {
  const until = performance.now() + timeoutMs;
  for (let i = 0; i < 10_000 && performance.now() < until; i++) {
    const line = lastLine(file, pattern);
    if (line) return line;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no line matching ${pattern} in ${file} within ${timeoutMs} ms`);
}

try {
  await demo();
} catch (e) {
  console.error(
    `\ndemo failed at step "${at.step}": ${(e as Error).message}` +
      (at.log ? `\n  log: ${at.log}` : "") + `\n  files: ${work}/`,
  );
  Deno.exit(1);
}

async function demo(): Promise<void> {
  if (Deno.uid() !== 0) throw new Error("the demo migrates a process with CRIU: run it as root");
  demoStep("Debian packages (the demo's in build/debian-packages.txt), native shim, CRIU");
  await ensureDebianPackages("demo");
  await buildShims({ crossArm64: false });
  await provisionCriu();

  demoStep("two nodes on loopback: identities, pinned peers, the destination's agent");
  const source = `${work}/source`, dest = `${work}/dest`;
  const src = JSON.parse(await u2cm(["init", "--state-dir", source, "--format", "json"]));
  const dst = JSON.parse(await u2cm(["init", "--state-dir", dest, "--format", "json"]));
  const port = 20000 + Math.floor(Math.random() * 20000);
  await u2cm(["peer", "add", "source", "127.0.0.1:1", src.publicKey, "--state-dir", dest]);
  await u2cm([
    "peer",
    "add",
    "dest",
    `127.0.0.1:${port}`,
    dst.publicKey,
    "--cert-fingerprint",
    dst.certFingerprint,
    "--state-dir",
    source,
  ]);
  const agentLog = await Deno.open(`${work}/agent.log`, { write: true, create: true });
  const agent = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${REPO_ROOT}main.ts`,
      "agent",
      "--listen",
      `127.0.0.1:${port}`,
      "--state-dir",
      dest,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  agent.stderr.pipeTo(agentLog.writable).catch(() => {});
  let restored = 0;
  const memcheck = buildWorkload("memcheck");
  const stdout = `${work}/workload.out`;
  const workload = await launchIsolated({
    cmd: memcheck,
    args: [
      "--mib",
      String(MIB),
      "--write-pages",
      "400",
      "--hot-percent",
      "5",
      "--interval-ms",
      "20",
    ],
    stdout,
  });
  try {
    await waitForPort(port, 30_000);
    demoStep(
      `workload: memcheck, ${MIB} MiB, rewriting 400 pages every 20 ms (pid ${workload.pid})`,
    );
    const before = await waitForLine(stdout, /^tick 50 /, 30_000);
    console.log(`  ${before}`);

    demoStep(
      `u2cm migrate --pid ${workload.pid} --to dest --engine delta --policy u2c`,
      `${work}/agent.log (the destination agent)`,
    );
    const resultText = await u2cm([
      "migrate",
      "--pid",
      String(workload.pid),
      "--to",
      "dest",
      "--engine",
      "delta",
      "--policy",
      "u2c",
      "--format",
      "json",
      "--state-dir",
      source,
    ]);
    Deno.writeTextFileSync(`${work}/result.json`, resultText);
    const result = JSON.parse(resultText);
    restored = result.dest_pid;
    await u2cm(["report", `${work}/result.json`, "-o", `${work}/report.html`]);

    demoStep(
      "exactly one copy runs, on the destination, memory intact, counter going on",
      `${work}/workload.out (the workload's own output)`,
    );
    const sourceGone = await waitGone(workload.pid, 5000);
    const lines = Deno.readTextFileSync(stdout).split("\n").length;
    Deno.kill(restored, "SIGUSR1");
    const verify = await waitForLine(stdout, /^verify /, 10_000);
    await new Promise((r) => setTimeout(r, 300));
    const after = Deno.readTextFileSync(stdout).split("\n").slice(lines - 1).filter((l) =>
      l.startsWith("tick ")
    ).at(-1);
    const rows: [string, string][] = [
      ["engine / policy", `${result.engine} / ${result.policy}`],
      ["total", `${result.total_ms} ms`],
      ["downtime (freeze → restored running)", `${result.downtime_ms} ms`],
      [
        "sent",
        `${
          (result.bytes_sent / 2 ** 20).toFixed(1)
        } MiB in ${result.precopy_rounds} pre-copy rounds`,
      ],
      ["source copy", sourceGone ? "gone" : "STILL THERE"],
      ["restored copy", `pid ${restored}, ${isAlive(restored) ? "running" : "NOT RUNNING"}`],
      ["memory check", verify],
      [
        "counter",
        `${before.split(" ").slice(0, 2).join(" ")} before → ${
          after?.split(" ").slice(0, 2).join(" ")
        } after`,
      ],
      ["result / report", `${work}/result.json, ${work}/report.html`],
    ];
    for (const [k, v] of rows) console.log(`  ${k.padEnd(38)} ${v}`);
    if (!sourceGone || !isAlive(restored) || !/^verify ok/.test(verify)) {
      throw new Error("the migrated workload is not as it should be (see above)");
    }
  } finally {
    if (restored > 0 && isAlive(restored)) Deno.kill(restored, "SIGKILL");
    await workload.stop();
    agent.kill("SIGTERM");
    await agent.status;
  }
}
