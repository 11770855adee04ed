import assert from "node:assert/strict";
import { runCli } from "../../src/cli/mod.ts";
import { loadConfig } from "../../src/ops/config.ts";
import { requireCommand } from "../support/env.ts";

function listTree(dir: string): string[] {
  const out: string[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    const path = `${dir}/${entry.name}`;
    out.push(path);
    if (entry.isDirectory) out.push(...listTree(path));
  }
  return out.sort();
}

async function capture(args: string[]): Promise<{ code: number; stdout: string }> {
  const lines: string[] = [];
  const original = console.log;
  console.log = (...parts: unknown[]) => lines.push(parts.join(" "));
  try {
    const code = await runCli(args);
    return { code, stdout: lines.join("\n") };
  } finally {
    console.log = original;
  }
}

Deno.test("install under a prefix writes binary, unit, config and identity; uninstall leaves nothing", async () => {
  requireCommand("openssl");
  requireCommand("systemd-analyze", "systemd");
  const prefix = Deno.makeTempDirSync({ prefix: "u2cm-install-" });
  try {
    const done = await capture(["install", "--prefix", prefix, "--format", "json"]);
    assert.equal(done.code, 0, done.stdout);
    const result = JSON.parse(done.stdout);
    assert.equal(result.identity, "created");
    assert.equal(result.executable, "wrapper");
    const files = listTree(prefix);
    for (
      const path of [
        "/usr/local/bin/u2cm",
        "/etc/systemd/system/u2cm-agent.service",
        "/etc/u2cm/config.json",
        "/var/lib/u2cm/identity.pub",
        "/var/lib/u2cm/tls.crt",
      ]
    ) assert.ok(files.includes(`${prefix}${path}`), `${path} installed`);
    for (const path of files) {
      assert.ok(path.startsWith(`${prefix}/`), `${path} is under the prefix`);
    }
    const config = loadConfig(`${prefix}/etc/u2cm/config.json`);
    assert.equal(config.stateDir, `${prefix}/var/lib/u2cm`);
    assert.equal(Deno.statSync(config.stateDir).mode! & 0o777, 0o700);

    // The wrapper runs this checkout's u2cm.
    const help = new Deno.Command(`${prefix}/usr/local/bin/u2cm`, { args: ["--version"] })
      .outputSync();
    assert.equal(new TextDecoder().decode(help.stdout).trim(), "0.1.0");

    const unit = `${prefix}/etc/systemd/system/u2cm-agent.service`;
    const verify = new Deno.Command("systemd-analyze", { args: ["verify", unit], stderr: "piped" })
      .outputSync();
    assert.equal(new TextDecoder().decode(verify.stderr).trim(), "");
    assert.equal(verify.code, 0);

    assert.equal(
      (await capture(["install", "--prefix", prefix])).code,
      1,
      "second install refused",
    );
    assert.equal((await capture(["install", "--prefix", prefix, "--force"])).code, 0, "--force");

    const removed = await capture(["uninstall", "--prefix", prefix, "--format", "json"]);
    assert.equal(removed.code, 0);
    assert.deepEqual(listTree(prefix), [], "uninstall leaves nothing");
  } finally {
    Deno.removeSync(prefix, { recursive: true });
  }
});

Deno.test("uninstall --keep-state keeps the identity and removes the rest", async () => {
  requireCommand("openssl");
  const prefix = Deno.makeTempDirSync({ prefix: "u2cm-install-" });
  try {
    assert.equal((await capture(["install", "--prefix", prefix])).code, 0);
    const pub = Deno.readTextFileSync(`${prefix}/var/lib/u2cm/identity.pub`);
    assert.equal((await capture(["uninstall", "--prefix", prefix, "--keep-state"])).code, 0);
    assert.equal(Deno.readTextFileSync(`${prefix}/var/lib/u2cm/identity.pub`), pub);
    const left = listTree(prefix).filter((p) => !p.startsWith(`${prefix}/var`));
    assert.deepEqual(left, []);
  } finally {
    Deno.removeSync(prefix, { recursive: true });
  }
});

Deno.test("install takes a given config (validated) and rejects a bad one with exit 6", async () => {
  const prefix = Deno.makeTempDirSync({ prefix: "u2cm-install-" });
  const source = Deno.makeTempFileSync({ suffix: ".json" });
  try {
    Deno.writeTextFileSync(source, JSON.stringify({ version: 1, listen: "no port" }));
    assert.equal((await capture(["install", "--prefix", prefix, "--config", source])).code, 6);
    assert.deepEqual(listTree(prefix), [], "nothing written for a bad config");
    Deno.writeTextFileSync(
      source,
      JSON.stringify({ version: 1, listen: "127.0.0.1:7171", policy: "phaul" }),
    );
    const run = await capture([
      "install",
      "--prefix",
      prefix,
      "--config",
      source,
      "--no-identity",
    ]);
    assert.equal(run.code, 0);
    const config = loadConfig(`${prefix}/etc/u2cm/config.json`);
    assert.equal(config.listen, "127.0.0.1:7171");
    assert.equal(config.policy, "phaul");
    assert.equal((await capture(["uninstall", "--prefix", prefix])).code, 0);
    assert.deepEqual(listTree(prefix), []);
    assert.equal((await capture(["uninstall", "--prefix", prefix])).code, 6, "nothing to remove");
  } finally {
    Deno.removeSync(prefix, { recursive: true });
    Deno.removeSync(source);
  }
});
