import assert from "node:assert/strict";
import { startAgentOps } from "../../src/ops/agent_ops.ts";
import { getLogLevel, setLogLevel } from "../../src/ops/log.ts";

Deno.test("agent ops apply the config's log level and serve metrics on the configured port", async () => {
  const before = getLogLevel();
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  setLogLevel(undefined);
  const ops = startAgentOps({ logLevel: "warn", metricsPort: port }, { keepLogLevel: false });
  try {
    assert.equal(getLogLevel(), "warn");
    assert.equal(ops.server?.port, port);
    ops.metrics.recordMigration({
      ok: true,
      engine: "delta",
      policy: "u2c",
      total_ms: 1000,
      downtime_ms: 50,
      bytes_sent: 4096,
    });
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert.match(
      text,
      /^u2cm_migrations_total\{outcome="success",engine="delta",policy="u2c"\} 1$/m,
    );
  } finally {
    await ops.close();
    setLogLevel(before);
  }
});

Deno.test("metricsPort 0 serves nothing; a level set by --log-level wins over the config", async () => {
  setLogLevel("debug");
  const ops = startAgentOps({ logLevel: "error", metricsPort: 0 });
  try {
    assert.equal(ops.server, undefined);
    assert.equal(getLogLevel(), "debug");
  } finally {
    await ops.close();
    setLogLevel(undefined);
  }
});
