import assert from "node:assert/strict";
import { makePodmanPair, waitLog } from "../support/podman.ts";
import { memcheckImage } from "../support/container_images.ts";
import {
  checkpointPodman,
  imageInfo,
  importPodman,
  ImportRefusedError,
  inspectPodmanContainer,
  listPodmanContainers,
  loadImage,
  podmanStore,
  removeContainer,
  restoreLocally,
  resumeContainer,
  rewriteConfigDump,
  saveImage,
} from "../../src/container/mod.ts";
import { processState } from "../../src/tracker/proc.ts";

const MEMCHECK = ["/bin/memcheck", "--mib", "32", "--write-pages", "64", "--interval-ms", "20"];

Deno.test("a memcheck container moves between two podman stores: image sent, restored stopped under its name, memory verified, podman ps consistent", async () => {
  const pair = makePodmanPair();
  const { a, b } = pair;
  try {
    const img = await memcheckImage(a);
    await a.run([
      "run",
      "-d",
      "--name",
      "mc",
      "--network",
      "none",
      "--cgroup-parent",
      a.cgroupParent,
      img.name,
      ...MEMCHECK,
    ]);
    await waitLog(a, "mc", /^tick 20 /);
    const info = await inspectPodmanContainer(a, "mc");
    assert.ok(info && info.state === "running" && info.initPid > 0);
    assert.equal(info.imageId, img.id);

    // the destination lacks the image: save the exact ID, load it, digest checked
    assert.equal(await imageInfo(b, img.id), undefined);
    const work = Deno.makeTempDirSync({ dir: a.dir });
    const sha = await saveImage(a, img.id, `${work}/image.tar`);
    const loaded = await loadImage(b, {
      path: `${work}/image.tar`,
      id: img.id,
      sha256: sha,
      names: [info.image],
    });
    assert.equal(loaded.id, img.id);
    assert.ok(loaded.names.includes(info.image));

    const ck = await checkpointPodman(a, { id: info.id, workDir: work });
    assert.ok(ck.files.includes("config.dump") && ck.files.includes("spec.dump"), ck.files.join());
    assert.ok((ck.pagesWritten ?? 0) >= 32 * 256, `pages written: ${ck.pagesWritten}`);
    assert.equal((await inspectPodmanContainer(a, "mc"))?.state, "exited");
    const lastTick = Number(
      /tick (\d+)/.exec((await a.run(["logs", "mc"])).trim().split("\n").at(-1)!)![1],
    );

    // "transfer": the destination's migration dir receives the export's files
    const dest = Deno.makeTempDirSync({ dir: b.dir });
    await new Deno.Command("cp", { args: ["-aL", ck.dir, `${dest}/export`] }).output();
    const restored = await importPodman(b, {
      dir: `${dest}/export`,
      sourceRoots: await podmanStore(a),
      destRoots: await podmanStore(b),
      cgroupParent: b.cgroupParent,
    });
    assert.equal(restored.name, "mc");
    assert.equal(restored.id, info.id);
    assert.equal(processState(restored.pid), "T", "restored tree is left stopped");
    const conmonPid = (await b.run(["inspect", "--format", "{{.ConmonPidFile}}", "mc"])).trim();
    assert.ok(conmonPid.startsWith(`${b.dir}/`), `conmon pid file on b: ${conmonPid}`);

    // commit: the source's copy goes, the destination's resumes
    await removeContainer(a, info.id);
    resumeContainer(restored.pid);
    const tick = await waitLog(b, "mc", new RegExp(`^tick ${lastTick + 5} `));
    assert.ok(tick.endsWith("ok"));
    await b.run(["kill", "--signal", "USR1", "mc"]);
    assert.equal(await waitLog(b, "mc", /^verify /), `verify ok ${32 * 256}`);
    const onB = await listPodmanContainers(b);
    assert.deepEqual(onB.map((c) => [c.name, c.state]), [["mc", "running"]]);
    assert.equal((await listPodmanContainers(a, { all: true })).length, 0);
  } finally {
    await pair.cleanup();
  }
});

Deno.test("a checkpointed podman container is restored on the source when the migration rolls back", async () => {
  const pair = makePodmanPair();
  const { a } = pair;
  try {
    const img = await memcheckImage(a);
    await a.run([
      "run",
      "-d",
      "--name",
      "mc",
      "--network",
      "none",
      "--cgroup-parent",
      a.cgroupParent,
      img.name,
      ...MEMCHECK,
    ]);
    await waitLog(a, "mc", /^tick 10 /);
    const info = (await inspectPodmanContainer(a, "mc"))!;
    const work = Deno.makeTempDirSync({ dir: a.dir });
    await checkpointPodman(a, { id: info.id, workDir: work });
    const pid = await restoreLocally(a, { id: info.id });
    assert.ok(pid > 0);
    await a.run(["kill", "--signal", "USR1", "mc"]);
    assert.equal(await waitLog(a, "mc", /^verify /), `verify ok ${32 * 256}`);
    assert.deepEqual((await listPodmanContainers(a)).map((c) => c.name), ["mc"]);
  } finally {
    await pair.cleanup();
  }
});

Deno.test("config.dump paths outside the container's storage are refused", () => {
  const id = "a".repeat(64);
  const src = { graphRoot: "/s/graph", runRoot: "/s/run" };
  const dst = { graphRoot: "/d/graph", runRoot: "/d/run" };
  const ok = rewriteConfigDump(
    JSON.stringify({
      id,
      logPath: `/s/graph/overlay-containers/${id}/userdata/ctr.log`,
      conmonPidFile: `/s/run/overlay-containers/${id}/userdata/conmon.pid`,
      cgroupParent: "/x",
    }),
    src,
    dst,
    "/y",
  );
  assert.equal(ok.logPath, `/d/graph/overlay-containers/${id}/userdata/ctr.log`);
  assert.equal(ok.conmonPidFile, `/d/run/overlay-containers/${id}/userdata/conmon.pid`);
  assert.equal(ok.cgroupParent, "/y");
  for (const logPath of ["/etc/passwd", `/s/graph/overlay-containers/${id}/../../x`]) {
    let threw = false;
    try {
      rewriteConfigDump(JSON.stringify({ id, logPath }), src, dst);
    } catch (e) {
      threw = e instanceof ImportRefusedError;
    }
    assert.ok(threw, logPath);
  }
});
