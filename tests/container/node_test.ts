import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../../src/ops/config.ts";
import { runtimeNodes } from "../../src/container/node.ts";

Deno.test("the config file's containers keys validate and become podman's environment when u2cm's own leaves them unset", () => {
  const config = parseConfig({
    version: 1,
    containers: {
      CONTAINERS_STORAGE_CONF: "/etc/u2cm/storage.conf",
      CONTAINERS_CONF: "/etc/u2cm/containers.conf",
      runcRoot: "/run/u2cm-runc",
      cgroupParent: "/u2cm",
    },
  }, "t.json");
  const saved = [
    "CONTAINERS_STORAGE_CONF",
    "CONTAINERS_CONF",
    "U2CM_RUNC_ROOT",
    "U2CM_CGROUP_PARENT",
  ]
    .map((k) => [k, Deno.env.get(k)] as const);
  try {
    for (const [k] of saved) Deno.env.delete(k);
    const nodes = runtimeNodes(config.containers);
    assert.deepEqual(nodes.podman.env, {
      CONTAINERS_STORAGE_CONF: "/etc/u2cm/storage.conf",
      CONTAINERS_CONF: "/etc/u2cm/containers.conf",
    });
    assert.equal(nodes.runc.root, "/run/u2cm-runc");
    assert.equal(nodes.cgroupParent, "/u2cm");
    // the environment u2cm was started with wins (podman inherits it)
    Deno.env.set("CONTAINERS_CONF", "/tmp/node-b/containers.conf");
    assert.deepEqual(runtimeNodes(config.containers).podman.env, {
      CONTAINERS_STORAGE_CONF: "/etc/u2cm/storage.conf",
    });
  } finally {
    for (const [k, v] of saved) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
  }
  assert.throws(
    () => parseConfig({ version: 1, containers: { CONTAINERS_CONF: "relative.conf" } }, "t.json"),
    ConfigError,
  );
  assert.throws(() => parseConfig({ version: 1, containers: { typo: 1 } }, "t.json"), ConfigError);
});
