import assert from "node:assert/strict";
import { type PodmanTestNode, waitLog } from "../support/podman.ts";
import { podmanAgents, startMemcheckContainer } from "../support/podman_agents.ts";
import { u2cm } from "../engine/support/agents.ts";
import { ExitCode } from "../../src/cli/errors.ts";
import {
  imageInfo,
  inspectPodmanContainer,
  listPodmanContainers,
} from "../../src/container/mod.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const MIB = 32;
const MEMCHECK = ["--mib", String(MIB), "--write-pages", "64", "--interval-ms", "20"];

function runMemcheck(node: PodmanTestNode, name: string, runArgs: string[] = []): Promise<void> {
  return startMemcheckContainer(node, name, MEMCHECK, { tick: 20, runArgs });
}

function lastTick(log: string): number {
  const line = log.trim().split("\n").filter((l) => l.startsWith("tick ")).at(-1) ?? "tick 0";
  return Number(line.split(" ")[1]);
}

/** Two podman nodes with a u2cm agent on b (its env = b's podman), a pinning b. */
const setup = podmanAgents;

Deno.test("u2cm migrate --container moves a self-checking podman container between two agents' stores: image sent when missing, not when present, podman ps consistent, memory verified", async () => {
  const t = await setup();
  try {
    await runMemcheck(t.a, "mc1");
    const src = (await inspectPodmanContainer(t.a, "mc1"))!;
    assert.equal(await imageInfo(t.b, src.imageId!), undefined, "b starts without the image");
    const r = await t.migrate(["--container", "mc1"]);
    assert.equal(r.code, 0, r.stderr + r.stdout + t.agent.log().slice(-3000));
    const result = JSON.parse(r.stdout);
    assert.equal(result.ok, true);
    // ok means verified: every page against the source's manifest, a sample read back
    assert.ok(result.verified_pages >= MIB * 256, `verified_pages ${result.verified_pages}`);
    assert.equal(result.verification.mode, "sample");
    assert.ok(result.verification.read_back_pages > 0);
    assert.deepEqual(result.container, {
      name: "mc1",
      id: src.id,
      runtime: "podman",
      image: src.image,
      image_sent: true,
    });
    for (
      const k of ["engine", "policy", "total_ms", "downtime_ms", "bytes_sent", "rounds", "phases"]
    ) {
      assert.ok(k in result, k);
    }
    const dest = (await inspectPodmanContainer(t.b, "mc1"))!;
    assert.equal(dest.id, src.id);
    assert.equal(result.dest_pid, dest.initPid, "dest_pid is the container's init on b");
    assert.deepEqual((await listPodmanContainers(t.b)).map((c) => [c.name, c.state]), [[
      "mc1",
      "running",
    ]]);
    assert.deepEqual(await listPodmanContainers(t.a, { all: true }), [], "gone from a's podman");
    assert.ok((await imageInfo(t.b, src.imageId!)) !== undefined, "the image arrived");
    // memory intact, counter going on
    const before = lastTick(await t.b.run(["logs", "mc1"]));
    await t.b.run(["kill", "--signal", "USR1", "mc1"]);
    assert.equal(await waitLog(t.b, "mc1", /^verify /), `verify ok ${MIB * 256}`);
    await waitLog(t.b, "mc1", new RegExp(`^tick ${before + 10} `));

    // a second container of the same image: the destination has it now, nothing is sent
    await runMemcheck(t.a, "mc2");
    const r2 = await t.migrate(["--container", "mc2"]);
    assert.equal(r2.code, 0, r2.stderr + r2.stdout + t.agent.log().slice(-2500));
    const result2 = JSON.parse(r2.stdout);
    assert.equal(result2.container.image_sent, false);
    await t.b.run(["kill", "--signal", "USR1", "mc2"]);
    assert.equal(await waitLog(t.b, "mc2", /^verify /), `verify ok ${MIB * 256}`);
    assert.deepEqual((await listPodmanContainers(t.b)).map((c) => c.name).sort(), ["mc1", "mc2"]);
  } finally {
    await t.cleanup();
  }
});

Deno.test("a container whose bind mount the destination lacks is refused before anything is frozen", async () => {
  const t = await setup();
  try {
    const host = Deno.makeTempDirSync({ dir: t.a.dir });
    await runMemcheck(t.a, "mb", ["-v", `${host}:/data`]);
    const pid = (await inspectPodmanContainer(t.a, "mb"))!.initPid;
    Deno.removeSync(host, { recursive: true }); // the source keeps its mount; b has no such path
    const r = await t.migrate(["--container", "mb"]);
    assert.equal(r.code, ExitCode.MigrationFailed, r.stderr);
    assert.match(r.stderr, /nothing was frozen.*bind-mount source .* does not exist here/);
    const after = (await inspectPodmanContainer(t.a, "mb"))!;
    assert.equal(after.state, "running");
    assert.equal(after.initPid, pid, "never checkpointed: the same process runs on");
    assert.deepEqual(await listPodmanContainers(t.b, { all: true }), []);
  } finally {
    await t.cleanup();
  }
});

Deno.test("when the destination's restore fails after the checkpoint, the container runs on at the source with its memory, and the destination keeps no trace", async () => {
  const t = await setup({ failRestoreB: true });
  try {
    await runMemcheck(t.a, "mf");
    const src = (await inspectPodmanContainer(t.a, "mf"))!;
    const r = await t.migrate(["--container", "mf"]);
    assert.equal(r.code, ExitCode.MigrationFailed, r.stderr + r.stdout);
    assert.match(r.stderr, /keeps running here/);
    const result = JSON.parse(r.stdout);
    assert.equal(result.ok, false);
    assert.equal(result.container.name, "mf");
    const after = (await inspectPodmanContainer(t.a, "mf"))!;
    assert.equal(after.state, "running");
    assert.equal(after.id, src.id);
    const before = lastTick(await t.a.run(["logs", "mf"]));
    await t.a.run(["kill", "--signal", "USR1", "mf"]);
    assert.equal(await waitLog(t.a, "mf", /^verify /), `verify ok ${MIB * 256}`);
    await waitLog(t.a, "mf", new RegExp(`^tick ${before + 5} `));
    assert.deepEqual(await listPodmanContainers(t.b, { all: true }), []);
    assert.equal(await imageInfo(t.b, src.imageId!), undefined, "the image it brought is gone");
  } finally {
    await t.cleanup();
  }
});

Deno.test("a container restored with a page that differs from the source's manifest is caught by the read-back: rolled back, the source container runs on with its memory, the destination keeps nothing", async () => {
  const t = await setup({ corruptRestoreB: true });
  try {
    await runMemcheck(t.a, "mr");
    const src = (await inspectPodmanContainer(t.a, "mr"))!;
    const r = await t.migrate(["--container", "mr", "--verify", "full"]);
    assert.equal(r.code, ExitCode.MigrationFailed, r.stderr + r.stdout);
    assert.match(
      r.stderr,
      /verification failed: pid 1: page 0x[0-9a-f]+ differs after the restore/,
    );
    const result = JSON.parse(r.stdout);
    assert.equal(result.ok, false);
    const after = (await inspectPodmanContainer(t.a, "mr"))!;
    assert.equal(after.state, "running");
    assert.equal(after.id, src.id);
    const before = lastTick(await t.a.run(["logs", "mr"]));
    await t.a.run(["kill", "--signal", "USR1", "mr"]);
    assert.equal(await waitLog(t.a, "mr", /^verify /), `verify ok ${MIB * 256}`);
    await waitLog(t.a, "mr", new RegExp(`^tick ${before + 5} `));
    assert.deepEqual(await listPodmanContainers(t.b, { all: true }), []);
  } finally {
    await t.cleanup();
  }
});

Deno.test("u2cm migrate killed while the destination restores: u2cm recover restores the checkpointed container at the source, memory intact, the destination keeps nothing", async () => {
  const t = await setup();
  try {
    await runMemcheck(t.a, "mk");
    const src = (await inspectPodmanContainer(t.a, "mk"))!;
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        MAIN,
        "migrate",
        "--container",
        "mk",
        "--to",
        "b",
        "--state-dir",
        t.nodes.a,
      ],
      env: { NO_COLOR: "1", ...t.a.env },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const phase = () => {
      try {
        const f = [...Deno.readDirSync(`${t.nodes.a}/migrations`)].find((e) =>
          e.name.endsWith(".json")
        );
        return f
          ? JSON.parse(Deno.readTextFileSync(`${t.nodes.a}/migrations/${f.name}`)).phase
          : "";
      } catch {
        return "";
      }
    };
    const until = Date.now() + 120_000;
    while (phase() !== "restoring" && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(phase(), "restoring");
    child.kill("SIGKILL");
    await child.status;
    assert.equal((await inspectPodmanContainer(t.a, "mk"))?.state, "exited", "checkpointed");
    const r = await u2cm(["recover", "--state-dir", t.nodes.a, "--format", "json"], t.a.env);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const after = (await inspectPodmanContainer(t.a, "mk"))!;
    assert.equal(after.state, "running");
    assert.equal(after.id, src.id);
    await t.a.run(["kill", "--signal", "USR1", "mk"]);
    assert.equal(await waitLog(t.a, "mk", /^verify /), `verify ok ${MIB * 256}`);
    // the destination dropped its copy (its restore may finish after the discard: wait for it)
    const gone = Date.now() + 30_000;
    while ((await listPodmanContainers(t.b, { all: true })).length > 0 && Date.now() < gone) {
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.deepEqual(await listPodmanContainers(t.b, { all: true }), []);
  } finally {
    await t.cleanup();
  }
});

Deno.test("--with-volumes through two agents: without it a container whose named volume the destination lacks is refused before the freeze; with it the volume's contents arrive and the container runs there, memory verified", async () => {
  const t = await setup();
  try {
    await t.a.run(["volume", "create", "data"]);
    const mount = (await t.a.run(["volume", "inspect", "--format", "{{.Mountpoint}}", "data"]))
      .trim();
    Deno.writeTextFileSync(`${mount}/note.txt`, "kept across the migration\n");
    await runMemcheck(t.a, "mv", ["-v", "data:/data"]);
    const pid = (await inspectPodmanContainer(t.a, "mv"))!.initPid;
    const refused = await t.migrate(["--container", "mv"]);
    assert.equal(refused.code, ExitCode.MigrationFailed, refused.stderr);
    assert.match(refused.stderr, /nothing was frozen.*named volume data does not exist here/);
    assert.equal((await inspectPodmanContainer(t.a, "mv"))!.initPid, pid, "never checkpointed");
    const r = await t.migrate(["--container", "mv", "--with-volumes"]);
    assert.equal(r.code, 0, r.stderr + r.stdout + t.agent.log().slice(-3000));
    const result = JSON.parse(r.stdout);
    assert.equal(result.ok, true);
    assert.ok(result.verified_pages >= MIB * 256);
    const dest = (await inspectPodmanContainer(t.b, "mv"))!;
    assert.equal(dest.state, "running");
    assert.deepEqual(dest.mounts.map((m) => [m.type, m.name, m.destination]), [[
      "volume",
      "data",
      "/data",
    ]]);
    const mountB = (await t.b.run(["volume", "inspect", "--format", "{{.Mountpoint}}", "data"]))
      .trim();
    assert.ok(mountB.startsWith(`${t.b.dir}/`), mountB);
    assert.equal(Deno.readTextFileSync(`${mountB}/note.txt`), "kept across the migration\n");
    await t.b.run(["kill", "--signal", "USR1", "mv"]);
    assert.equal(await waitLog(t.b, "mv", /^verify /), `verify ok ${MIB * 256}`);
    assert.deepEqual(await listPodmanContainers(t.a, { all: true }), [], "gone from a's podman");
    // the source's volume is the user's: u2cm leaves it where it was
    assert.equal(Deno.readTextFileSync(`${mount}/note.txt`), "kept across the migration\n");
  } finally {
    await t.cleanup();
  }
});

Deno.test("U2CM_CONTAINER_FREEZE=lazy: podman's checkpoint as a lazy dump (only changed pages read in the freeze) moves the container verified; a failed restore leaves it running at the source, never checkpointed in podman's view", async () => {
  const lazy = { U2CM_CONTAINER_FREEZE: "lazy" };
  const t = await setup();
  try {
    await runMemcheck(t.a, "ml");
    const src = (await inspectPodmanContainer(t.a, "ml"))!;
    const r = await t.migrate(["--container", "ml", "--verify", "full"], lazy);
    assert.equal(r.code, 0, r.stderr + r.stdout + t.agent.log().slice(-3000));
    const result = JSON.parse(r.stdout);
    assert.equal(result.ok, true);
    assert.ok(result.verified_pages >= MIB * 256, `verified_pages ${result.verified_pages}`);
    assert.ok(result.verification.read_back_pages >= MIB * 256, "every page read back");
    assert.equal(typeof result.phases.scan_ms, "number", "the lazy freeze ran (it scans)");
    const dest = (await inspectPodmanContainer(t.b, "ml"))!;
    assert.equal(dest.id, src.id);
    assert.equal(result.dest_pid, dest.initPid);
    assert.deepEqual(await listPodmanContainers(t.a, { all: true }), [], "gone from a");
    assert.equal(Deno.statSync("/etc").isDirectory, true);
    assert.throws(() => Deno.statSync("/etc/criu/runc.conf"), "the host's /etc untouched");
    const before = lastTick(await t.b.run(["logs", "ml"]));
    await waitLog(t.b, "ml", new RegExp(`^tick ${before + 10} `));
    await t.b.run(["kill", "--signal", "USR1", "ml"]);
    assert.equal(await waitLog(t.b, "ml", /^verify /), `verify ok ${MIB * 256}`);
    // a container whose spec names a CRIU config of its own takes podman's full checkpoint
    await runMemcheck(t.a, "ma", ["--annotation", "org.criu.config=/nonexistent/criu.conf"]);
    const r2 = await t.migrate(["--container", "ma"], lazy);
    assert.equal(r2.code, 0, r2.stderr + r2.stdout + t.agent.log().slice(-3000));
    assert.equal(JSON.parse(r2.stdout).phases.scan_ms, undefined, "podman's full checkpoint");
    await t.b.run(["kill", "--signal", "USR1", "ma"]);
    assert.equal(await waitLog(t.b, "ma", /^verify /), `verify ok ${MIB * 256}`);
  } finally {
    await t.cleanup();
  }
  const f = await setup({ failRestoreB: true });
  try {
    await runMemcheck(f.a, "mf");
    const src = (await inspectPodmanContainer(f.a, "mf"))!;
    const r = await f.migrate(["--container", "mf"], lazy);
    assert.equal(r.code, ExitCode.MigrationFailed, r.stderr + r.stdout);
    const after = (await inspectPodmanContainer(f.a, "mf"))!;
    assert.equal(after.state, "running");
    assert.equal(after.initPid, src.initPid, "the same process runs on (resumed, not restored)");
    const before = lastTick(await f.a.run(["logs", "mf"]));
    await waitLog(f.a, "mf", new RegExp(`^tick ${before + 5} `));
    await f.a.run(["kill", "--signal", "USR1", "mf"]);
    assert.equal(await waitLog(f.a, "mf", /^verify /), `verify ok ${MIB * 256}`);
    assert.deepEqual(await listPodmanContainers(f.b, { all: true }), []);
  } finally {
    await f.cleanup();
  }
});
