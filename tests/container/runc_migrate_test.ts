import assert from "node:assert/strict";
import { makeNodes, type TestAgent, u2cm } from "../engine/support/agents.ts";
import { lastTick, memcheckBundle, waitLine } from "../support/runc_bundle.ts";
import { requireCommand, requireRoot } from "../support/env.ts";
import { requireCriu } from "../../src/criu/locate.ts";
import { ExitCode } from "../../src/cli/errors.ts";
import { listRuncContainers, type RuncNode, runLogged } from "../../src/container/mod.ts";
import { retryHandshake } from "../support/podman_agents.ts";

const MIB = 16;

/** memcheck in container `pid` logging to `log` goes on counting, and its memory verifies. */
async function assertRunsVerified(log: string, pid: number): Promise<void> {
  await waitLine(log, /^tick /);
  const before = lastTick(log);
  await waitLine(log, new RegExp(`^tick ${before + 5} `));
  Deno.kill(pid, "SIGUSR1");
  assert.equal(await waitLine(log, /^verify /), `verify ok ${MIB * 256}`);
}

/**
 * Two runc nodes (state dirs of their own, u2cm's CRIU first on PATH as `criu`), a bundle of the
 * memcheck rootfs, and a u2cm agent on b. `hideBundles`: b's agent runs in a mount namespace of
 * its own where the bundles directory is an empty tmpfs (b has no bundle at that path);
 * `failRestoreB`: b's runc fails every restore.
 */
async function setup(options: { hideBundles?: boolean; failRestoreB?: boolean } = {}) {
  requireRoot("runc containers");
  const runcBin = requireCommand("runc");
  requireCommand("setsid", "util-linux");
  requireCommand("unshare", "util-linux");
  const criu = requireCriu().path;
  const root = Deno.makeTempDirSync({ prefix: "u2cm-runcmig-" });
  const binDir = (tag: string) => {
    const dir = `${root}/bin-${tag}`;
    Deno.mkdirSync(dir);
    Deno.symlinkSync(criu, `${dir}/criu`);
    if (tag === "b" && options.failRestoreB) {
      Deno.writeTextFileSync(
        `${dir}/runc`,
        "#!/bin/sh\n" +
          'for a in "$@"; do [ "$a" = restore ] && { echo "injected restore failure" >&2; exit 1; }; done\n' +
          `exec ${runcBin} "$@"\n`,
      );
      Deno.chmodSync(`${dir}/runc`, 0o755);
    }
    return `${dir}:${Deno.env.get("PATH")}`;
  };
  const envOf = (tag: string) => ({ PATH: binDir(tag), U2CM_RUNC_ROOT: `${root}/state-${tag}` });
  const envA = envOf("a");
  const envB = envOf("b");
  const a: RuncNode = { bin: runcBin, root: envA.U2CM_RUNC_ROOT, env: { PATH: envA.PATH } };
  const b: RuncNode = { bin: runcBin, root: envB.U2CM_RUNC_ROOT, env: { PATH: envB.PATH } };
  const bundles = `${root}/bundles`;
  const bundle = memcheckBundle(`${bundles}/mc`, [
    "--mib",
    String(MIB),
    "--write-pages",
    "32",
    "--interval-ms",
    "20",
  ]);
  const nodes = await makeNodes();
  const prefix = options.hideBundles
    ? [
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-c",
      `mount -t tmpfs tmpfs ${bundles} && exec "$@"`,
      "sh",
    ]
    : [];
  const agent: TestAgent = await nodes.startB(0, prefix, "127.0.0.1", envB);
  const logA = `${root}/a.log`;
  const migrate = (args: string[]) =>
    retryHandshake(() =>
      u2cm(["migrate", ...args, "--to", "b", "--format", "json", "--state-dir", nodes.a], envA)
    );
  return {
    root,
    a,
    b,
    bundle,
    nodes,
    agent,
    logA,
    envA,
    migrate,
    start: async () => {
      await runLogged(a, ["run", "--detach", "--bundle", bundle, "mc"], { logFile: logA });
      await waitLine(logA, /^tick 10 /);
    },
    /** The log of the container b restored. */
    logB: () => {
      const dir = `${nodes.b}/containers`;
      const home = [...Deno.readDirSync(dir)].find((e) => e.isDirectory && /^runc-/.test(e.name));
      return home ? `${dir}/${home.name}/container.log` : "";
    },
    cleanup: async () => {
      await agent.stop();
      for (const n of [a, b]) {
        for (const c of await listRuncContainers(n).catch(() => [])) {
          await new Deno.Command(runcBin, { args: ["--root", n.root, "delete", "--force", c.id] })
            .output();
        }
      }
      nodes.cleanup();
      Deno.removeSync(root, { recursive: true });
    },
  };
}

Deno.test("u2cm migrate --runtime runc moves a runc bundle container between two agents' runc state dirs: bundle present at the destination, memory verified, counter goes on", async () => {
  const t = await setup();
  try {
    await t.start();
    const r = await t.migrate(["--container", "mc", "--runtime", "runc"]);
    assert.equal(r.code, 0, r.stderr + r.stdout + t.agent.log().slice(-3000));
    const result = JSON.parse(r.stdout);
    assert.equal(result.ok, true);
    assert.deepEqual(result.container, {
      name: "mc",
      id: "mc",
      runtime: "runc",
      image: t.bundle,
      image_sent: false,
    });
    assert.ok(result.verified_pages >= MIB * 256, `verified_pages ${result.verified_pages}`);
    assert.ok(result.verification.read_back_pages > 0);
    const onB = await listRuncContainers(t.b);
    assert.deepEqual(onB.map((c) => [c.id, c.status]), [["mc", "running"]]);
    assert.equal(result.dest_pid, onB[0].pid, "dest_pid is the container's init on b");
    assert.deepEqual(await listRuncContainers(t.a), [], "runc on a no longer has it");
    assert.notEqual(t.logB(), "");
    await assertRunsVerified(t.logB(), onB[0].pid);
  } finally {
    await t.cleanup();
  }
});

Deno.test("u2cm migrate --runtime runc sends the bundle when the destination has none at its path: restored from the bundle that arrived, memory verified", async () => {
  const t = await setup({ hideBundles: true });
  try {
    await t.start();
    const r = await t.migrate(["--container", "mc", "--runtime", "runc"]);
    assert.equal(r.code, 0, r.stderr + r.stdout + t.agent.log().slice(-3000));
    const result = JSON.parse(r.stdout);
    assert.equal(result.ok, true);
    assert.equal(result.container.image_sent, true, "the bundle went over the channel");
    const onB = await listRuncContainers(t.b);
    assert.deepEqual(onB.map((c) => c.status), ["running"]);
    assert.ok(onB[0].bundle.startsWith(`${t.nodes.b}/containers/runc-`), onB[0].bundle);
    const spec = JSON.parse(Deno.readTextFileSync(`${onB[0].bundle}/config.json`));
    assert.match(spec.root.path, /\/source-bundle\/rootfs$/, "rootfs from the bundle sent");
    await assertRunsVerified(t.logB(), onB[0].pid);
  } finally {
    await t.cleanup();
  }
});

Deno.test("when the destination's runc restore fails, the runc container runs on at the source from its checkpoint, memory intact, and the destination keeps nothing", async () => {
  const t = await setup({ failRestoreB: true });
  try {
    await t.start();
    const r = await t.migrate(["--container", "mc", "--runtime", "runc"]);
    assert.equal(r.code, ExitCode.MigrationFailed, r.stderr + r.stdout);
    assert.match(r.stderr, /injected restore failure/);
    const onA = await listRuncContainers(t.a);
    assert.deepEqual(onA.map((c) => [c.id, c.status]), [["mc", "running"]]);
    // its stdout now goes to the log u2cm gave the restored container
    await assertRunsVerified(`${t.nodes.a}/containers/runc-mc.log`, onA[0].pid);
    assert.deepEqual(await listRuncContainers(t.b), []);
    assert.deepEqual(
      [...Deno.readDirSync(`${t.nodes.b}/containers`)].map((e) => e.name),
      [],
      "no runc directory or record left at the destination",
    );
  } finally {
    await t.cleanup();
  }
});

Deno.test("u2cm migrate killed after runc's checkpoint: u2cm recover restores the runc container at the source from the checkpoint, memory intact, the destination keeps nothing", async () => {
  const t = await setup();
  try {
    await t.start();
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("../../main.ts", import.meta.url).pathname,
        "migrate",
        "--container",
        "mc",
        "--runtime",
        "runc",
        "--to",
        "b",
        "--state-dir",
        t.nodes.a,
      ],
      env: { NO_COLOR: "1", ...t.envA, U2CM_FAULT_PAUSE: "dumped" },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    // it stops itself once the checkpoint is at the destination
    const until = Date.now() + 120_000;
    while (Date.now() < until) {
      const stat = Deno.readTextFileSync(`/proc/${child.pid}/stat`);
      if (stat.slice(stat.lastIndexOf(")") + 2)[0] === "T") break;
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill("SIGKILL");
    await child.status;
    assert.deepEqual(await listRuncContainers(t.a), [], "checkpointed: runc ended it");
    const r = await u2cm(["recover", "--state-dir", t.nodes.a, "--format", "json"], t.envA);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const onA = await listRuncContainers(t.a);
    assert.deepEqual(onA.map((c) => [c.id, c.status]), [["mc", "running"]]);
    // its stdout now goes to the log u2cm gave the restored container
    await assertRunsVerified(`${t.nodes.a}/containers/runc-mc.log`, onA[0].pid);
    assert.deepEqual(await listRuncContainers(t.b), []);
  } finally {
    await t.cleanup();
  }
});
