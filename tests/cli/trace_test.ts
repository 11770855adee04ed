import assert from "node:assert/strict";
import { ExitCode } from "../../src/cli/errors.ts";
import { readTraceFile } from "../../src/trace/mod.ts";
import { requireCommand, requireRoot } from "../support/env.ts";
import { startDirtyPattern } from "../support/workloads.ts";
import { MAIN, runU2cm as u2cm } from "../support/cli.ts";

Deno.test("u2cm trace --format jsonl prints one object per round and writes a readable file", async () => {
  const w = await startDirtyPattern(["--hot", "32", "--duration-ms", "20000"]);
  const file = Deno.makeTempFileSync({ suffix: ".u2ct" });
  try {
    const r = await u2cm([
      "trace",
      "--pid",
      String(w.pid),
      "--interval",
      "50",
      "--rounds",
      "6",
      "--format",
      "jsonl",
      "-o",
      file,
      "--workload",
      "dirty_pattern",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(rows.length, 6);
    for (
      const key of ["round", "elapsed_ms", "scan_ms", "dirty_pages", "resident_pages", "backend"]
    ) {
      assert.ok(key in rows[0], `missing ${key}`);
    }
    assert.equal(rows[0].backend, "hash");
    assert.ok(rows[3].dirty_pages >= 32);
    const trace = await readTraceFile(file);
    assert.equal(trace.rounds.length, 6);
    assert.equal(trace.header.workload?.name, "dirty_pattern");
    const info = await u2cm(["trace", "info", file, "--format", "json"]);
    assert.equal(info.code, 0, info.stderr);
    assert.equal(JSON.parse(info.stdout).rounds, 6);
  } finally {
    await w.stop();
    Deno.removeSync(file);
  }
});

Deno.test("u2cm trace refuses bad input with a clear message and exit code", async () => {
  const missing = await u2cm(["trace", "--pid", "999999", "--rounds", "2"]);
  assert.equal(missing.code, ExitCode.NoTarget);
  assert.match(missing.stderr, /no process with pid 999999/);
  const interval = await u2cm(["trace", "--pid", "1", "--rounds", "2", "--interval", "-5"]);
  assert.equal(interval.code, ExitCode.Usage);
  assert.match(interval.stderr, /--interval/);
  const both = await u2cm(["trace", "--pid", "1", "--rounds", "2", "--duration", "3"]);
  assert.equal(both.code, ExitCode.Usage);
  const noPid = await u2cm(["trace", "--rounds", "2"]);
  assert.equal(noPid.code, ExitCode.Usage);
});

Deno.test("u2cm trace info rejects a truncated or corrupt file", async () => {
  const w = await startDirtyPattern(["--duration-ms", "20000"]);
  const file = Deno.makeTempFileSync({ suffix: ".u2ct" });
  try {
    assert.equal(
      (await u2cm(["trace", "--pid", String(w.pid), "--rounds", "3", "-o", file])).code,
      0,
    );
    const bytes = Deno.readFileSync(file);
    Deno.writeFileSync(file, bytes.subarray(0, 10));
    const cut = await u2cm(["trace", "info", file]);
    assert.equal(cut.code, ExitCode.BadInput);
    assert.match(cut.stderr, /trace/i);
    bytes[bytes.length - 3] ^= 0xff;
    Deno.writeFileSync(file, bytes);
    const corrupt = await u2cm(["trace", "info", file]);
    assert.equal(corrupt.code, ExitCode.BadInput);
    const none = await u2cm(["trace", "info", "/nonexistent/file.u2ct"]);
    assert.notEqual(none.code, 0);
  } finally {
    await w.stop();
    Deno.removeSync(file);
  }
});

Deno.test("u2cm trace as an unprivileged user on a root process exits 'not permitted'", async () => {
  requireRoot("switching to an unprivileged user with setpriv");
  requireCommand("setpriv", "util-linux");
  const home = Deno.makeTempDirSync({ prefix: "u2cm-nobody-" });
  try {
    const denoDir = Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`;
    // The npm cache, hard-linked (world-readable, no copy): the lockfile pins every package.
    Deno.mkdirSync(`${home}/deno/npm`, { recursive: true });
    const cp = (from: string, to: string) =>
      new Deno.Command("cp", { args: ["-r", from, to] }).outputSync();
    new Deno.Command("cp", {
      args: ["-al", `${denoDir}/npm/registry.npmjs.org`, `${home}/deno/npm/`],
    }).outputSync();
    const { ensureShim } = await import("../../src/native/build.ts");
    cp(ensureShim(), `${home}/libu2cm.so`);
    // The same deno, where the other user can run it (npx keeps it under root's 0700 home).
    const deno = `${home}/deno-bin`;
    Deno.copyFileSync(Deno.execPath(), deno);
    Deno.chmodSync(deno, 0o755);
    new Deno.Command("chown", { args: ["65534:65534", home, `${home}/deno`] }).outputSync();
    Deno.chmodSync(home, 0o755);
    const out = await new Deno.Command("setpriv", {
      args: [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "env",
        `HOME=${home}`,
        `DENO_DIR=${home}/deno`,
        `U2CM_SHIM=${home}/libu2cm.so`,
        "NO_COLOR=1",
        deno,
        "run",
        "-A",
        "--no-check",
        "--cached-only",
        "--frozen",
        MAIN,
        "trace",
        "--pid",
        "1",
        "--rounds",
        "1",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, ExitCode.NotPermitted, stderr);
    assert.match(stderr, /not permitted to read the memory of pid 1/);
  } finally {
    Deno.removeSync(home, { recursive: true });
  }
});
