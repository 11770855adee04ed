import assert from "node:assert/strict";
import { makePodmanPair, type PodmanTestNode, waitLog } from "../support/podman.ts";
import { startMemcheckContainer } from "../support/podman_agents.ts";
import { memcheckImage } from "../support/container_images.ts";
import { PAGE_SIZE } from "../../src/criu/images/mod.ts";
import { ship } from "./support.ts";
import type { PageStoreView } from "../../src/engine/channel.ts";
import { processState } from "../../src/tracker/proc.ts";
import { MANIFEST_FILE } from "../../src/engine/contract.ts";
import {
  checkContainer,
  checkpointPodman,
  containerCheckFor,
  type ContainerInfo,
  containerRestoreRequest,
  IMAGE_FILE,
  imageInfo,
  inspectPodmanContainer,
  listPodmanContainers,
  podmanStore,
  restoreContainer,
  resumeContainer,
  saveImage,
} from "../../src/container/mod.ts";

const MEMCHECK = ["--mib", "16", "--interval-ms", "20"];

/** Start memcheck as container `name` on `node`. */
async function startMemcheck(node: PodmanTestNode, name: string): Promise<ContainerInfo> {
  await startMemcheckContainer(node, name, MEMCHECK);
  return (await inspectPodmanContainer(node, name))!;
}

Deno.test("the destination checks a container before the freeze: image presence, name, volumes, bind mounts", async () => {
  const pair = makePodmanPair();
  const { a, b } = pair;
  try {
    const info = await startMemcheck(a, "mc");
    const nodesB = { podman: b, runc: { bin: "runc", root: b.runcRoot, env: {} } };
    let answer = await checkContainer(containerCheckFor(info), nodesB);
    assert.deepEqual(answer, { runtimeOk: true, imagePresent: false, problems: [] });
    await memcheckImage(b);
    answer = await checkContainer(
      containerCheckFor({
        ...info,
        mounts: [
          { type: "volume", name: "data", source: "/x", destination: "/data" },
          { type: "bind", source: `${b.dir}/nowhere`, destination: "/bind" },
        ],
      }),
      nodesB,
    );
    assert.equal(answer.imagePresent, true);
    assert.equal(answer.problems.length, 2, answer.problems.join("; "));
    assert.match(answer.problems[0], /named volume data does not exist here/);
    assert.match(answer.problems[1], /bind-mount source .*nowhere does not exist/);
    await b.run(["volume", "create", "data"]);
    answer = await checkContainer(
      containerCheckFor({
        ...info,
        mounts: [{ type: "volume", name: "data", source: "/x", destination: "/data" }],
      }, { withVolumes: true }),
      nodesB,
    );
    assert.match(answer.problems.join(), /volume data already exists here/);
    await b.run(["create", "--name", "mc", (await memcheckImage(b)).name]);
    answer = await checkContainer(containerCheckFor(info), nodesB);
    assert.match(answer.problems.join(), /a container 'mc' already exists here/);
  } finally {
    await pair.cleanup();
  }
});

Deno.test("the destination restores a container from shipped files and pages, image loaded, left stopped", async () => {
  const pair = makePodmanPair();
  const { a, b } = pair;
  try {
    const info = await startMemcheck(a, "mc");
    const work = Deno.makeTempDirSync({ dir: a.dir });
    const mig = Deno.makeTempDirSync({ dir: b.dir });
    const sha = await saveImage(a, info.imageId!, `${mig}/images-tmp.tar`);
    await Deno.mkdir(`${mig}/images`);
    await Deno.rename(`${mig}/images-tmp.tar`, `${mig}/images/${IMAGE_FILE}`);
    const ck = await checkpointPodman(a, { id: info.id, workDir: work });
    const shipped = await ship(ck, mig);
    const { store, files } = shipped;
    const request = {
      engine: "delta",
      ...shipped.request,
      container: containerRestoreRequest({
        info,
        roots: await podmanStore(a),
        files,
        imageSha256: sha,
      }),
    };
    const nodesB = {
      podman: b,
      runc: { bin: "runc", root: b.runcRoot, env: {} },
      cgroupParent: b.cgroupParent,
    };
    const r = await restoreContainer({ migrationId: "m1", dir: mig, store, request }, {
      nodes: nodesB,
    });
    assert.ok(r.ok, r.error);
    assert.equal(processState(r.pid!), "T");
    // checked against the source's manifest: every image page, then a sample read back
    assert.ok(r.verified, "the restore reports what it verified");
    assert.equal(r.verified.mode, "sample");
    assert.equal(r.verified.manifestPages, shipped.request.verify.pages);
    assert.equal(r.verified.imagePages, r.verified.manifestPages);
    assert.ok(r.verified.readBackPages > 0);
    resumeContainer(r.pid!);
    await b.run(["kill", "--signal", "USR1", "mc"]);
    assert.equal(await waitLog(b, "mc", /^verify /), `verify ok ${16 * 256}`);
    assert.deepEqual((await listPodmanContainers(b)).map((c) => c.name), ["mc"]);
  } finally {
    await pair.cleanup();
  }
});

Deno.test("a failing container restore leaves no trace: no container, and the image it loaded is removed", async () => {
  const pair = makePodmanPair();
  const { a, b } = pair;
  try {
    const info = await startMemcheck(a, "mc");
    const work = Deno.makeTempDirSync({ dir: a.dir });
    const mig = Deno.makeTempDirSync({ dir: b.dir });
    await Deno.mkdir(`${mig}/images`);
    const sha = await saveImage(a, info.imageId!, `${mig}/images/${IMAGE_FILE}`);
    const ck = await checkpointPodman(a, { id: info.id, workDir: work });
    const shipped = await ship(ck, mig);
    const { store, files } = shipped;
    const request = {
      engine: "delta",
      ...shipped.request,
      container: containerRestoreRequest({
        info,
        roots: await podmanStore(a),
        files,
        imageSha256: sha,
      }),
    };
    const nodesB = { podman: b, runc: { bin: "runc", root: b.runcRoot, env: {} } };
    const restore = (id: string, s: PageStoreView) =>
      restoreContainer({ migrationId: id, dir: mig, store: s, request }, { nodes: nodesB });
    // a page that never arrived
    const missing: PageStoreView = {
      get: (pid, addr) => (addr % (64 * PAGE_SIZE) === 0 ? undefined : store.get(pid, addr)),
    };
    const r1 = await restore("m1", missing);
    assert.equal(r1.ok, false);
    assert.match(r1.error ?? "", /never arrived/);
    // a page whose hash is not the manifest's: refused before anything is restored
    const manifestFile = `${mig}/images/${MANIFEST_FILE}`;
    const manifest = Deno.readTextFileSync(manifestFile);
    const json = JSON.parse(manifest);
    const h = json.processes[0].hashes as string;
    json.processes[0].hashes = h.slice(0, 40) + (h[40] === "A" ? "B" : "A") + h.slice(41);
    Deno.writeTextFileSync(manifestFile, JSON.stringify(json));
    const r0 = await restore("m0", store);
    assert.equal(r0.ok, false);
    assert.match(r0.error ?? "", /verification failed: pid 1: page 0x[0-9a-f]+ differs/);
    assert.deepEqual(await listPodmanContainers(b, { all: true }), []);
    assert.equal(await imageInfo(b, info.imageId!), undefined, "the loaded image was removed");
    Deno.writeTextFileSync(manifestFile, manifest);
    // podman refuses the checkpoint after the image was loaded: the image goes again
    const spec = Deno.readTextFileSync(`${mig}/images/podman.spec.dump`);
    Deno.writeTextFileSync(`${mig}/images/podman.spec.dump`, "{ not json");
    const r2 = await restore("m2", store);
    assert.equal(r2.ok, false);
    assert.equal(await imageInfo(b, info.imageId!), undefined, "the loaded image was removed");
    Deno.writeTextFileSync(`${mig}/images/podman.spec.dump`, spec);
    // a corrupted image archive is refused by its sha256, nothing loaded
    await Deno.writeFile(`${mig}/images/${IMAGE_FILE}`, new Uint8Array([1, 2, 3]), {
      append: true,
    });
    const r3 = await restore("m3", store);
    assert.equal(r3.ok, false);
    assert.match(r3.error ?? "", /sha256/);
    assert.deepEqual(await listPodmanContainers(b, { all: true }), []);
    assert.equal(await imageInfo(b, info.imageId!), undefined);
  } finally {
    await pair.cleanup();
  }
});

Deno.test("--with-volumes: a named volume is exported after the checkpoint and created at the destination with its contents", async () => {
  const pair = makePodmanPair();
  const { a, b } = pair;
  try {
    await memcheckImage(b);
    await a.run(["volume", "create", "data"]);
    const mount = (await a.run(["volume", "inspect", "--format", "{{.Mountpoint}}", "data"]))
      .trim();
    Deno.writeTextFileSync(`${mount}/note.txt`, "kept across the migration\n");
    await startMemcheckContainer(a, "mv", MEMCHECK, { runArgs: ["-v", "data:/data"] });
    const info = (await inspectPodmanContainer(a, "mv"))!;
    assert.deepEqual(info.mounts.map((m) => [m.type, m.name, m.destination]), [[
      "volume",
      "data",
      "/data",
    ]]);
    const nodesB = {
      podman: b,
      runc: { bin: "runc", root: b.runcRoot, env: {} },
      cgroupParent: b.cgroupParent,
    };
    assert.match(
      (await checkContainer(containerCheckFor(info), nodesB)).problems.join(),
      /named volume data does not exist here/,
    );
    assert.deepEqual(
      (await checkContainer(containerCheckFor(info, { withVolumes: true }), nodesB)).problems,
      [],
    );
    const work = Deno.makeTempDirSync({ dir: a.dir });
    const ck = await checkpointPodman(a, { id: info.id, workDir: work, withVolumes: true });
    assert.deepEqual(ck.volumes, ["data"]);
    const mig = Deno.makeTempDirSync({ dir: b.dir });
    const shipped = await ship(ck, mig);
    const { store, files } = shipped;
    const request = {
      engine: "delta",
      ...shipped.request,
      container: containerRestoreRequest({
        info,
        roots: await podmanStore(a),
        files,
        volumes: ["data"],
      }),
    };
    const r = await restoreContainer({ migrationId: "mv1", dir: mig, store, request }, {
      nodes: nodesB,
    });
    assert.ok(r.ok, r.error);
    assert.ok(r.verified && r.verified.readBackPages > 0);
    resumeContainer(r.pid!);
    const mountB = (await b.run(["volume", "inspect", "--format", "{{.Mountpoint}}", "data"]))
      .trim();
    assert.ok(mountB.startsWith(`${b.dir}/`), mountB);
    assert.equal(Deno.readTextFileSync(`${mountB}/note.txt`), "kept across the migration\n");
    await b.run(["kill", "--signal", "USR1", "mv"]);
    assert.equal(await waitLog(b, "mv", /^verify /), `verify ok ${16 * 256}`);
  } finally {
    await pair.cleanup();
  }
});
