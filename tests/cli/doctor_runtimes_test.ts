import assert from "node:assert/strict";
import { runU2cm } from "../support/cli.ts";
import { makePodmanNode } from "../support/podman.ts";
import type { RuntimeReport } from "../../src/container/runtimes.ts";

Deno.test("doctor reports podman, runc and crun with versions, the CRIU they reach and what they support, for the podman of its environment", async () => {
  const node = makePodmanNode({ tag: "doc" });
  try {
    const run = await runU2cm(["doctor", "--format", "json"], node.env);
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout) as { runtimes: RuntimeReport[] };
    const by = Object.fromEntries(report.runtimes.map((r) => [r.name, r]));
    assert.deepEqual(Object.keys(by).sort(), ["crun", "podman", "runc"]);
    // this node's containers.conf makes its runc wrapper podman's runtime
    assert.match(by.podman.oci_runtime ?? "", new RegExp(`${node.dir}/bin/runc`));
    assert.equal(by.podman.version, "4.3.1");
    assert.equal(by.podman.criu.ok, true);
    assert.equal(by.podman.supports.checkpoint, true);
    assert.equal(by.podman.supports.restore_new_name, true);
    assert.equal(by.podman.supports.lazy_pages, false);
    assert.equal(by.podman.migratable, true);
    assert.match(by.runc.version ?? "", /^1\.1\.5/);
    assert.equal(by.runc.supports.checkpoint, true);
    assert.equal(by.runc.supports.lazy_pages, true);
    // Debian 12's crun is built without CRIU
    assert.equal(by.crun.supports.checkpoint, false);
    assert.match(by.crun.detail, /without CRIU/);
  } finally {
    await node.cleanup();
  }
});

Deno.test("doctor says when podman's OCI runtime cannot checkpoint (Debian 12's crun, built without CRIU)", async () => {
  const node = makePodmanNode({ tag: "doc2" });
  try {
    const conf = `${node.dir}/containers-crun.conf`;
    Deno.writeTextFileSync(
      conf,
      Deno.readTextFileSync(node.env.CONTAINERS_CONF).replace(
        /runtime = "u2cmrunc"/,
        'runtime = "crun"',
      ),
    );
    const run = await runU2cm(["doctor", "--format", "json"], {
      ...node.env,
      CONTAINERS_CONF: conf,
    });
    assert.equal(run.code, 0, run.stderr);
    const podman = (JSON.parse(run.stdout).runtimes as RuntimeReport[]).find((r) =>
      r.name === "podman"
    )!;
    assert.match(podman.oci_runtime ?? "", /crun/);
    assert.equal(podman.supports.checkpoint, false);
    assert.equal(podman.migratable, false);
    assert.match(podman.detail, /crun built without CRIU/);
  } finally {
    await node.cleanup();
  }
});
