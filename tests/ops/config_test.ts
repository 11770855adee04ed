import assert from "node:assert/strict";
import { ConfigError, defaultConfig, loadConfig, writeConfig } from "../../src/ops/config.ts";

function tempFile(text: string): string {
  const file = Deno.makeTempFileSync({ prefix: "u2cm-config-", suffix: ".json" });
  Deno.writeTextFileSync(file, text);
  return file;
}

Deno.test("the default configuration fills every field and survives a write and a read", () => {
  const config = defaultConfig();
  assert.equal(config.listen, "0.0.0.0:7070");
  assert.equal(config.stateDir, "/var/lib/u2cm");
  assert.equal(config.transport, "ws");
  assert.equal(config.engine, "auto");
  assert.equal(config.policy, "u2c");
  assert.equal(config.logLevel, "info");
  assert.equal(config.metricsPort, 9464);
  assert.equal(config.limits.maxConcurrentMigrations, 2);
  const file = Deno.makeTempFileSync();
  try {
    writeConfig(file, config);
    assert.deepEqual(loadConfig(file), config);
  } finally {
    Deno.removeSync(file);
  }
});

Deno.test("a partial configuration gets defaults for what it leaves out", () => {
  const file = tempFile(JSON.stringify({
    version: 1,
    listen: "127.0.0.1:7171",
    transport: "quic",
    policy: "fixed-3",
    peers: [{ name: "edge-b", address: "10.0.0.2:7070" }],
    limits: { maxConcurrentMigrations: 4 },
  }));
  try {
    const config = loadConfig(file);
    assert.equal(config.listen, "127.0.0.1:7171");
    assert.equal(config.transport, "quic");
    assert.equal(config.policy, "fixed-3");
    assert.equal(config.peers[0].name, "edge-b");
    assert.equal(config.limits.maxConcurrentMigrations, 4);
    assert.equal(config.limits.migrationTimeoutSeconds, 600);
  } finally {
    Deno.removeSync(file);
  }
});

Deno.test("invalid configurations are rejected naming the file and each bad field", () => {
  const cases: Array<[string, RegExp]> = [
    ["{", /not valid JSON/],
    [JSON.stringify({ version: 2 }), /version/],
    [JSON.stringify({ version: 1, listen: "nowhere" }), /listen: HOST:PORT/],
    [JSON.stringify({ version: 1, stateDir: "relative/dir" }), /stateDir: an absolute path/],
    [JSON.stringify({ version: 1, stateDir: "/var/../etc" }), /stateDir/],
    [JSON.stringify({ version: 1, transport: "carrier-pigeon" }), /transport/],
    [JSON.stringify({ version: 1, engine: "magic" }), /engine/],
    [JSON.stringify({ version: 1, policy: "best" }), /policy: one of u2c/],
    [JSON.stringify({ version: 1, metricsPort: 70000 }), /metricsPort/],
    [JSON.stringify({ version: 1, lisen: "1.2.3.4:5" }), /lisen|Unrecognized/i],
    [JSON.stringify({ version: 1, peers: [{ name: "../x", address: "a:1" }] }), /peers\.0\.name/],
    [
      JSON.stringify({ version: 1, limits: { maxConcurrentMigrations: 0 } }),
      /limits\.maxConcurrent/,
    ],
  ];
  for (const [text, pattern] of cases) {
    const file = tempFile(text);
    try {
      assert.throws(() => loadConfig(file), (e: unknown) => {
        assert.ok(e instanceof ConfigError, `ConfigError for ${text}`);
        assert.ok(e.message.startsWith(file), "names the file");
        assert.match(e.message, pattern, text);
        return true;
      });
    } finally {
      Deno.removeSync(file);
    }
  }
  assert.throws(() => loadConfig("/nonexistent/u2cm.json"), /not found.*u2cm install/);
});

Deno.test("bulkPort is a port or 'off', and absent by default", () => {
  assert.equal(defaultConfig().bulkPort, undefined);
  assert.equal(defaultConfig({ bulkPort: 7071 }).bulkPort, 7071);
  assert.equal(defaultConfig({ bulkPort: 0 }).bulkPort, 0);
  assert.equal(defaultConfig({ bulkPort: "off" }).bulkPort, "off");
  for (const bad of [70000, -1, 1.5, "on", "7071"]) {
    assert.throws(
      () => defaultConfig({ bulkPort: bad as number }),
      (e: unknown) => e instanceof ConfigError && /bulkPort/.test(e.message),
      String(bad),
    );
  }
});
