import assert from "node:assert/strict";
import { ExitCode } from "../../src/cli/errors.ts";
import { runU2cm as u2cm } from "../support/cli.ts";

Deno.test("u2cm init creates a 0600 identity and prints its key and fingerprint", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const r = await u2cm(["init", "--state-dir", `${dir}/s`, "--format", "json"]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.created, true);
    assert.match(out.publicKey, /^[A-Za-z0-9_-]{43}$/);
    assert.match(out.certFingerprint, /^[0-9a-f]{64}$/);
    for (const f of ["identity.key", "identity.pub", "tls.crt", "tls.key"]) {
      assert.equal(Deno.statSync(`${dir}/s/${f}`).mode! & 0o777, 0o600, f);
    }
    assert.equal(Deno.statSync(`${dir}/s`).mode! & 0o777, 0o700);
    const cert = Deno.readTextFileSync(`${dir}/s/tls.crt`);
    const text = new Deno.Command("openssl", {
      args: ["x509", "-noout", "-text"],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    const w = text.stdin.getWriter();
    await w.write(new TextEncoder().encode(cert));
    await w.close();
    const decoded = new TextDecoder().decode((await text.output()).stdout);
    assert.match(decoded, /CA:FALSE/);
    // A second init keeps the identity.
    const again = JSON.parse(
      (await u2cm(["init", "--state-dir", `${dir}/s`, "--format", "json"]))
        .stdout,
    );
    assert.equal(again.created, false);
    assert.equal(again.publicKey, out.publicKey);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("u2cm peer add takes public keys that begin with '-', with or without '--'", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const sd = ["--state-dir", dir];
    // One base64url key in 64 begins with '-'; '-h', '-V' and '-f' must not read as options.
    const body = "A".repeat(41);
    const keys = [`-h${body}`, `-V${body}`, `--${body}`, `-f${body}`];
    let r = await u2cm(["peer", "add", "k0", "127.0.0.1:7070", keys[0], ...sd]);
    assert.equal(r.code, 0, r.stderr);
    r = await u2cm(["peer", "add", ...sd, "k1", "127.0.0.1:7071", keys[1], "--replace"]);
    assert.equal(r.code, 0, r.stderr);
    r = await u2cm(["peer", "add", ...sd, "k2", "127.0.0.1:7072", "--", keys[2]]);
    assert.equal(r.code, 0, r.stderr);
    // The form `u2cm init` prints: options first, then `--` before the key.
    const init = await u2cm(["init", "--state-dir", `${dir}/b`]);
    assert.equal(init.code, 0, init.stderr);
    const printed = init.stdout.match(
      /u2cm peer add (--cert-fingerprint \S+) NAME HOST:PORT -- (\S+)/,
    );
    assert.ok(printed, init.stdout);
    r = await u2cm([
      "peer",
      "add",
      ...printed[1].split(" "),
      ...sd,
      "k3",
      "127.0.0.1:7073",
      "--",
      printed[2],
    ]);
    assert.equal(r.code, 0, r.stderr);
    r = await u2cm(["peer", "add", "k4", "127.0.0.1:7074", keys[3], ...sd]);
    assert.equal(r.code, 0, r.stderr);
    r = await u2cm(["peer", "list", ...sd, "--format", "json"]);
    const peers = JSON.parse(r.stdout) as { name: string; publicKey: string }[];
    assert.deepEqual(peers.map((p) => p.publicKey), [
      keys[0],
      keys[1],
      keys[2],
      printed[2],
      keys[3],
    ]);
    // A dashed word that is no key is still an unknown option (usage error).
    r = await u2cm(["peer", "add", "k5", "127.0.0.1:7075", "-not-a-key", ...sd]);
    assert.equal(r.code, ExitCode.Usage);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("u2cm peer add, list and remove pin peers in a validated peers.json", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const b = JSON.parse(
      (await u2cm(["init", "--state-dir", `${dir}/b`, "--format", "json"]))
        .stdout,
    );
    const sd = ["--state-dir", `${dir}/a`];
    let r = await u2cm(["peer", "list", ...sd, "--format", "json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), []);
    const colonFp = b.certFingerprint.toUpperCase().match(/../g).join(":");
    r = await u2cm([
      "peer",
      "add",
      "edge-b",
      "127.0.0.1:7070",
      b.publicKey,
      ...sd,
      "--cert-fingerprint",
      colonFp,
    ]);
    assert.equal(r.code, 0, r.stderr);
    r = await u2cm(["peer", "list", ...sd, "--format", "json"]);
    const peers = JSON.parse(r.stdout);
    assert.equal(peers.length, 1);
    assert.equal(peers[0].name, "edge-b");
    assert.equal(peers[0].certFingerprint, b.certFingerprint);
    assert.equal(Deno.statSync(`${dir}/a/peers.json`).mode! & 0o777, 0o600);
    r = await u2cm(["peer", "list", ...sd]);
    assert.match(r.stdout, /edge-b\s+127\.0\.0\.1:7070/);
    // Duplicates and malformed input are refused with BadInput and a reason.
    r = await u2cm(["peer", "add", "edge-b", "127.0.0.1:7071", b.publicKey, ...sd]);
    assert.equal(r.code, ExitCode.BadInput);
    assert.match(r.stderr, /already pinned/);
    r = await u2cm(["peer", "add", "x", "nohostport", b.publicKey, ...sd]);
    assert.equal(r.code, ExitCode.BadInput);
    assert.match(r.stderr, /HOST:PORT/);
    r = await u2cm(["peer", "add", "x", "h:1", "not-a-key", ...sd]);
    assert.equal(r.code, ExitCode.BadInput);
    r = await u2cm(["peer", "add", "../x", "h:1", b.publicKey, ...sd]);
    assert.equal(r.code, ExitCode.BadInput);
    r = await u2cm(["peer", "add", "y", "h:1", b.publicKey, ...sd, "--cert-fingerprint", "abc"]);
    assert.equal(r.code, ExitCode.BadInput);
    r = await u2cm(["peer", "remove", "edge-b", ...sd]);
    assert.equal(r.code, 0, r.stderr);
    r = await u2cm(["peer", "remove", "edge-b", ...sd]);
    assert.equal(r.code, ExitCode.BadInput);
    // A tampered peers.json is reported, not trusted.
    Deno.writeTextFileSync(`${dir}/a/peers.json`, '{"version":1,"peers":[{"name":"../x"}]}');
    r = await u2cm(["peer", "list", ...sd]);
    assert.equal(r.code, ExitCode.BadInput);
    assert.match(r.stderr, /invalid/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
