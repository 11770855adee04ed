import assert from "node:assert/strict";
import { ExitCode } from "../../src/cli/errors.ts";
import { PREFIX_STAMP } from "../../src/criu/locate.ts";
import { requireCommand, requireRoot } from "../support/env.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

async function u2cm(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("doctor --fix installs CRIU 4.1.1 into a fresh private prefix, idempotently", async () => {
  requireRoot("criu check and the pipe size need root");
  const patchelf = requireCommand("patchelf");
  const prefix = Deno.makeTempDirSync({ prefix: "u2cm-criu-" }) + "/criu";
  const env = { U2CM_CRIU_PREFIX: prefix, PATH: "/usr/bin:/bin" };
  try {
    const first = await u2cm(["doctor", "--fix", "--format", "json"], env);
    assert.equal(first.code, 0, first.stderr);
    const report = JSON.parse(first.stdout);
    assert.equal(report.ok, true);
    assert.equal(report.criu.source, "private");
    assert.equal(report.criu.path, `${prefix}/usr/sbin/criu`);
    assert.match(report.criu.version, /^4\./);
    assert.equal(report.criu.check_ok, true);
    assert.ok(report.fixed.some((f: string) => f.startsWith("installed CRIU")), first.stdout);
    assert.ok(report.pipe_max_size.bytes >= 4 * 1024 * 1024);
    assert.equal(report.engines.delta, true);
    // The binary runs on the prefix's own loader: the system libc was not touched.
    const interp = new Deno.Command(patchelf, {
      args: ["--print-interpreter", `${prefix}/usr/sbin/criu`],
      stdout: "piped",
    }).outputSync();
    assert.ok(new TextDecoder().decode(interp.stdout).trim().startsWith(prefix));
    const stamp = JSON.parse(Deno.readTextFileSync(`${prefix}/${PREFIX_STAMP}`));
    assert.ok(stamp.packages.includes("libc6") && stamp.packages.includes("libcompel1"));

    const second = await u2cm(["doctor", "--fix", "--format", "json"], env);
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(JSON.parse(second.stdout).fixed, []);
  } finally {
    Deno.removeSync(prefix.slice(0, -5), { recursive: true });
  }
});

Deno.test("doctor --fix exits 5 with an actionable message when the mirror is unreachable", async () => {
  const prefix = Deno.makeTempDirSync({ prefix: "u2cm-criu-" }) + "/criu";
  try {
    const r = await u2cm(["doctor", "--fix"], {
      U2CM_CRIU_PREFIX: prefix,
      U2CM_DEBIAN_MIRROR: "http://127.0.0.1:9/debian",
      PATH: "/usr/bin:/bin",
    });
    assert.equal(r.code, ExitCode.Environment, r.stderr);
    assert.match(r.stderr, /could not install CRIU: apt-get update .*U2CM_DEBIAN_MIRROR/s);
    assert.throws(() => Deno.statSync(`${prefix}/${PREFIX_STAMP}`));
  } finally {
    Deno.removeSync(prefix.slice(0, -5), { recursive: true });
  }
});

Deno.test("doctor exits 5 and says how to fix it when U2CM_CRIU points at a broken binary", async () => {
  const r = await u2cm(["doctor", "--format", "json"], { U2CM_CRIU: "/bin/false" });
  assert.equal(r.code, ExitCode.Environment);
  const report = JSON.parse(r.stdout);
  assert.equal(report.ok, false);
  assert.equal(report.criu.source, "env");
  assert.match(r.stderr, /doctor --fix/);
  const fix = await u2cm(["doctor", "--fix"], { U2CM_CRIU: "/bin/false" });
  assert.equal(fix.code, ExitCode.Environment);
  assert.match(fix.stderr, /unset it/);
});

Deno.test("doctor rejects an unknown --format with a usage error", async () => {
  const r = await u2cm(["doctor", "--format", "yaml"]);
  assert.equal(r.code, ExitCode.Usage);
  assert.match(r.stderr, /--format must be one of table, json/);
});
