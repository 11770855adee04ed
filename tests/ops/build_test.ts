import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { elfArch } from "../../build/denort.ts";
import { requireCommand } from "../support/env.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

interface Run {
  code: number;
  /** stdout then stderr. */
  stderr: string;
}

async function runBuild(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const base = Deno.env.toObject();
  delete base.DENORT_BIN;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}build/build.ts`, ...args],
    cwd: ROOT,
    env: { ...base, NO_COLOR: "1", ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stderr: text.decode(out.stdout) + text.decode(out.stderr) };
}

/** A DENO_DIR with the real npm cache and nothing downloaded (no seeded denort). */
function emptyDenoDir(): string {
  const dir = Deno.makeTempDirSync({ prefix: "u2cm-denodir-" });
  const info = new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).outputSync();
  Deno.symlinkSync(JSON.parse(new TextDecoder().decode(info.stdout)).npmCache, `${dir}/npm`);
  return dir;
}

Deno.test("build prepares both shims (C tests pass, aarch64 under qemu) and a complete embed list", async () => {
  requireCommand("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu");
  requireCommand("qemu-aarch64-static", "qemu-user-static");
  const run = await runBuild(["--prepare-only"]);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /shim C tests: all passed[\s\S]*shim C tests: all passed/);
  const list = JSON.parse(Deno.readTextFileSync(`${ROOT}dist/embed-list.json`));
  assert.equal(list.deno, Deno.version.deno);
  assert.deepEqual(list.targets.map((t: { arch: string }) => t.arch), ["x86_64", "aarch64"]);
  for (const target of list.targets) {
    const roles = target.files.map((f: { role: string }) => f.role);
    for (const role of ["shim", "model", "model-meta", "ort-wasm", "ort-loader"]) {
      assert.ok(roles.includes(role), `${target.arch} embeds a ${role}`);
    }
    const names = target.files.map((f: { path: string }) => f.path);
    assert.ok(names.includes("models/u2c-predictor.onnx"));
    assert.ok(names.includes("models/u2c-predictor.json"));
    assert.ok(names.some((p: string) => p.endsWith("/dist/ort-wasm-simd-threaded.wasm")));
    for (const file of target.files) {
      const path = file.path.startsWith("/") ? file.path : `${ROOT}${file.path}`;
      assert.equal(Deno.statSync(path).size, file.bytes, `${path} exists with its listed size`);
    }
    const shim = target.files.find((f: { role: string }) => f.role === "shim");
    assert.equal(elfArch(`${ROOT}${shim.path}`), target.arch, "the staged shim is for its arch");
  }
});

Deno.test("build without any denort fails with exit 5 naming the download, DENORT_BIN and the seeded zip", async () => {
  const denoDir = emptyDenoDir();
  try {
    const run = await runBuild(["--offline", "--no-shim-tests"], { DENO_DIR: denoDir });
    assert.equal(run.code, 5, run.stderr);
    for (const triple of ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"]) {
      assert.ok(
        run.stderr.includes(`no denort runtime for ${triple}`),
        `message for ${triple}: ${run.stderr}`,
      );
      assert.ok(
        run.stderr.includes(
          `https://dl.deno.land/release/v${Deno.version.deno}/denort-${triple}.zip: not attempted (--offline)`,
        ),
      );
      assert.ok(
        run.stderr.includes(
          `no pre-seeded ${denoDir}/dl/release/v${Deno.version.deno}/denort-${triple}.zip`,
        ),
      );
    }
    assert.match(run.stderr, /DENORT_BIN is not set/);
  } finally {
    Deno.removeSync(denoDir, { recursive: true });
  }
});

Deno.test("a refused denort download is reported as missing denort, exit 5", async () => {
  const denoDir = emptyDenoDir();
  try {
    // A proxy on a closed loopback port: the download fails at once, nothing leaves the machine.
    const proxy = "http://127.0.0.1:9";
    const run = await runBuild(["--no-shim-tests", "--target", "aarch64"], {
      DENO_DIR: denoDir,
      HTTPS_PROXY: proxy,
      https_proxy: proxy,
    });
    assert.equal(run.code, 5, run.stderr);
    assert.match(
      run.stderr,
      /download https:\/\/dl\.deno\.land\/\S+aarch64-unknown-linux-gnu\.zip: .*(refused|error)/,
    );
    assert.doesNotMatch(run.stderr, /x86_64-unknown-linux-gnu/);
  } finally {
    Deno.removeSync(denoDir, { recursive: true });
  }
});

Deno.test("DENORT_BIN for another architecture is not used, and the message says so", async () => {
  const denoDir = emptyDenoDir();
  try {
    const run = await runBuild(["--offline", "--no-shim-tests", "--target", "aarch64"], {
      DENO_DIR: denoDir,
      DENORT_BIN: Deno.execPath(),
    });
    assert.equal(run.code, 5, run.stderr);
    assert.match(
      run.stderr,
      new RegExp(`DENORT_BIN=\\S+ is a ${Deno.build.arch} binary, not aarch64`),
    );
  } finally {
    Deno.removeSync(denoDir, { recursive: true });
  }
});

Deno.test("with a pre-seeded denort zip, deno compile embeds the shim, the models and the wasm", async () => {
  // The deno CLI stands in for denort (it is not a working u2cm binary, but deno compile appends
  // the same payload): this checks the compile command and the embedded bytes, offline.
  requireCommand("zip");
  const denoDir = emptyDenoDir();
  const out = Deno.makeTempDirSync({ prefix: "u2cm-dist-" });
  try {
    const triple = `${Deno.build.arch}-unknown-linux-gnu`;
    const seeded = `${denoDir}/dl/release/v${Deno.version.deno}`;
    Deno.mkdirSync(seeded, { recursive: true });
    Deno.copyFileSync(Deno.execPath(), `${seeded}/denort`);
    const zip = new Deno.Command("zip", {
      args: ["-q", "-0", `denort-${triple}.zip`, "denort"],
      cwd: seeded,
    }).outputSync();
    assert.ok(zip.success);
    Deno.removeSync(`${seeded}/denort`);
    const run = await runBuild(
      ["--offline", "--no-shim-tests", "--target", Deno.build.arch, "--out-dir", out],
      { DENO_DIR: denoDir },
    );
    assert.equal(run.code, 0, run.stderr);
    const binary = `${out}/u2cm-${Deno.build.arch}-linux`;
    const bytes = Buffer.from(Deno.readFileSync(binary));
    const list = JSON.parse(Deno.readTextFileSync(`${ROOT}dist/embed-list.json`));
    const files = list.targets.find((t: { arch: string }) => t.arch === Deno.build.arch).files;
    for (const file of files) {
      const path = file.path.startsWith("/") ? file.path : `${ROOT}${file.path}`;
      const needle = Deno.readFileSync(path).subarray(0, 4096);
      assert.ok(bytes.indexOf(needle) >= 0, `${file.path} is embedded in the binary`);
    }
  } finally {
    Deno.removeSync(out, { recursive: true });
    Deno.removeSync(denoDir, { recursive: true });
  }
});
