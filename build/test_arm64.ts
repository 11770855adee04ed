/**
 * The `test-arm64` task: run u2cm's own TypeScript on aarch64 under qemu-user.
 *
 * 1. installs the Debian packages the lane needs (all listed in build/debian-packages.txt);
 * 2. builds the native shim for x86_64 and aarch64;
 * 3. fetches the arm64 Deno from npm (build/arm64/fetch.ts: pinned version, SHA-256 checked);
 * 4. runs the cross-architecture tests natively, writing the x86_64 reference results;
 * 5. runs the lane's test files (build/arm64/lane.ts) with the arm64 Deno under
 *    `qemu-aarch64-static -L /usr/aarch64-linux-gnu`, comparing against that reference. The arm64
 *    Deno gets its own DENO_DIR (sharing the npm packages and transpiled modules) so that its V8
 *    code cache is not the x86_64 one, and runs WebAssembly with Liftoff only ({@linkcode V8_FLAGS});
 * 6. prints a summary: what ran, what cannot run and why, the wall and CPU time taken, and a
 *    closing `arm64: N passed, N failed` line.
 *
 * Usage: `deno task test-arm64`
 *
 * @module
 */
import { cacheDir } from "../src/native/build.ts";
import { arm64DenoPin, ensureArm64Deno } from "./arm64/fetch.ts";
import { LANE_FILES, notInLaneReason, PROPERTY_RUNS_SCALE, REFERENCE_FILES } from "./arm64/lane.ts";
import { parseDenoTest, type TestRun } from "./arm64/report.ts";
import { CAPABILITIES, type Capability } from "../tests/support/env.ts";
import { buildShims, ensureDebianPackages, REPO_ROOT, step } from "./setup.ts";

const QEMU = "qemu-aarch64-static";
const SYSROOT = "/usr/aarch64-linux-gnu";
/**
 * V8 flags of every arm64 Deno the lane starts (`DENO_V8_FLAGS`, inherited by child processes).
 * `--liftoff-only`: no TurboFan tier-up of WebAssembly. Under qemu-user, optimizing
 * onnxruntime's hot functions costs more than it saves: the predict and simulate sections took
 * 38 % less CPU with it. WebAssembly's arithmetic is deterministic in every tier, and the
 * cross-architecture comparison checks the results anyway.
 */
const V8_FLAGS = "--liftoff-only";

const started = performance.now();
step("Debian packages the arm64 lane needs (tagged arm64 in build/debian-packages.txt)");
await ensureDebianPackages("arm64");
step("native shim (x86_64 and aarch64)");
await buildShims({ crossArm64: true });
step("arm64 Deno");
const deno = await ensureArm64Deno();
const wrapper = writeWrapper(deno);
const denoDir = await laneDenoDir();

const work = Deno.makeTempDirSync({ prefix: "u2cm-arm64-" });
const reference = `${work}/x86_64.json`;
const unavailable = `${work}/unavailable.jsonl`;
Deno.writeTextFileSync(unavailable, "");

step(`x86_64 reference: ${REFERENCE_FILES.join(" ")}`);
const native = await runTests(Deno.execPath(), ["--no-check=remote", ...REFERENCE_FILES], {
  U2CM_ARCH_OUT: reference,
});

step(`aarch64 under ${QEMU}: ${LANE_FILES.length} test files`);
const arm = await runTests(wrapper, ["--no-check", ...LANE_FILES], {
  U2CM_DENO: wrapper,
  DENO_DIR: denoDir,
  DENO_V8_FLAGS: V8_FLAGS,
  U2CM_ARCH_REFERENCE: reference,
  U2CM_ARCH_OUT: `${work}/aarch64.json`,
  U2CM_LANE_WITHOUT: "ptrace,criu",
  U2CM_LANE_UNAVAILABLE: unavailable,
  U2CM_PROPERTY_RUNS_SCALE: String(PROPERTY_RUNS_SCALE),
});
// A file that did not run (a load error, a crash) is a failure, not a silent gap.
const missing = LANE_FILES.filter((f) =>
  !arm.files.some((r) => r.file === f && r.passed + r.failed + r.ignored > 0)
);
const minutes = (performance.now() - started) / 60_000;
printSummary(native, arm, minutes, cpuMinutes());
Deno.removeSync(work, { recursive: true });
const failed = arm.failed + native.failed + missing.length +
  (arm.code !== 0 && arm.failed === 0 && missing.length === 0 ? 1 : 0);
console.log(`arm64: ${arm.passed} passed, ${failed} failed`);
Deno.exit(failed > 0 ? 1 : 0);

/**
 * The arm64 Deno's DENO_DIR: `deno-dir` next to it, with `npm` and `gen` linked to the x86_64
 * Deno's package and transpile caches (both architecture-independent). Its V8 code cache stays
 * its own: in one shared DENO_DIR each Deno rejects and rewrites the other's entries on every
 * start, about 190 of them for one `u2cm --help`.
 */
async function laneDenoDir(): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`deno info --json failed (exit ${out.code})`);
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    npmCache: string;
    typescriptCache: string;
  };
  const dir = `${cacheDir()}/deno-arm64/${arm64DenoPin().version}/deno-dir`;
  Deno.mkdirSync(dir, { recursive: true });
  const shared = { npm: info.npmCache, gen: info.typescriptCache };
  for (const [name, target] of Object.entries(shared)) {
    Deno.mkdirSync(target, { recursive: true });
    const link = `${dir}/${name}`;
    let current: string | undefined;
    try {
      current = Deno.readLinkSync(link);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e; // a real directory: leave it
      Deno.symlinkSync(target, link);
      continue;
    }
    if (current !== target) {
      Deno.removeSync(link);
      Deno.symlinkSync(target, link);
    }
  }
  return dir;
}

/**
 * CPU minutes (user + sys) of this process and every child it waited for, with theirs
 * (`/proc/self/stat`: utime, stime, cutime, cstime, in clock ticks of 1/100 s).
 */
function cpuMinutes(): number {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = [11, 12, 13, 14].reduce((a, i) => a + Number(fields[i]), 0);
  return ticks / 100 / 60;
}

/** A shell script that runs the arm64 Deno under qemu-user; tests spawn children with it. */
function writeWrapper(denoBin: string): string {
  const path = `${cacheDir()}/deno-arm64/${arm64DenoPin().version}/deno-qemu`;
  const text = `#!/bin/sh\nexec ${QEMU} -L ${SYSROOT} '${denoBin}' "$@"\n`;
  Deno.writeTextFileSync(path, text, { mode: 0o755 });
  return path;
}

async function runTests(
  exe: string,
  args: string[],
  env: Record<string, string>,
): Promise<TestRun & { code: number }> {
  const child = new Deno.Command(exe, {
    args: ["test", "-A", ...args],
    cwd: REPO_ROOT,
    env: { NO_COLOR: "1", QEMU_LD_PREFIX: SYSROOT, ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let text = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stdout) {
    await Deno.stdout.write(chunk);
    text += decoder.decode(chunk, { stream: true });
  }
  const { code } = await child.status;
  return { ...parseDenoTest(text), code };
}

function printSummary(native: TestRun, arm: TestRun, minutes: number, cpu: number): void {
  const pin = arm64DenoPin();
  console.log(`\n==> arm64 lane summary (${pin.package}@${pin.version} under ${QEMU})`);
  console.log(
    `x86_64 reference: ${native.passed} passed, ${native.failed} failed ` +
      `(${REFERENCE_FILES.join(", ")})`,
  );
  console.log("ran on aarch64:");
  for (const f of arm.files) {
    console.log(
      `  ${f.file.padEnd(36)} ${f.passed} passed, ${f.failed} failed, ${f.ignored} cannot run`,
    );
  }
  for (const f of arm.failures) console.log(`  FAILED ${f}`);
  for (const f of missing) console.log(`  FAILED ${f}: did not run (see its error above)`);
  console.log(
    `  (property tests run ${PROPERTY_RUNS_SCALE * 100} % of their fast-check runs here, at ` +
      "least 20 each; x86_64 runs them all)",
  );
  console.log("cannot run on this lane (x86_64 runs them):");
  for (const line of Deno.readTextFileSync(unavailable).split("\n").filter(Boolean)) {
    const u = JSON.parse(line) as {
      file: string;
      test: string;
      capability: string;
      detail: string;
    };
    const what = CAPABILITIES[u.capability as Capability] ?? u.capability;
    console.log(`  ${u.file} › ${u.test}: needs ${what}; here ${u.detail}`);
  }
  const others = allTestFiles().filter((f) => !LANE_FILES.includes(f));
  const byReason = new Map<string, string[]>();
  for (const f of others) {
    const reason = notInLaneReason(f) ?? "not classified in build/arm64/lane.ts yet";
    byReason.set(reason, [...(byReason.get(reason) ?? []), f]);
  }
  for (const [reason, files] of byReason) {
    console.log(`  ${files.length} file(s): ${reason}:`);
    for (const line of wrapList(files.map((f) => f.replace(/^tests\//, "")), 96)) {
      console.log(`      ${line}`);
    }
  }
  console.log(
    `duration: ${minutes.toFixed(1)} min wall, ${cpu.toFixed(1)} min CPU (user + sys, all ` +
      `processes); load average at the end ${Deno.loadavg().map((l) => l.toFixed(1)).join(" ")}`,
  );
}

function allTestFiles(dir = "tests"): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(`${REPO_ROOT}${dir}`)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...allTestFiles(path));
    else if (e.name.endsWith("_test.ts")) out.push(path);
  }
  return out.sort();
}

function wrapList(names: string[], width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const name of names) {
    const next = line ? `${line}, ${name}` : name;
    if (next.length > width && line) {
      lines.push(`${line},`);
      line = name;
    } else line = next;
  }
  if (line) lines.push(line);
  return lines;
}
