import assert from "node:assert/strict";
import { lastTick, memcheckBundle, waitLine } from "../support/runc_bundle.ts";
import { requireCommand, requireRoot } from "../support/env.ts";
import { requireCriu } from "../../src/criu/locate.ts";
import { processState, treePids } from "../../src/tracker/proc.ts";
import {
  checkpointRunc,
  deleteRunc,
  inspectRuncContainer,
  listRuncContainers,
  resolveContainer,
  restoreRunc,
  resumeContainer,
  type RuncNode,
  runLogged,
} from "../../src/container/mod.ts";

Deno.test("a runc bundle container is checkpointed by runc on one state dir and restored stopped on another, memory verified", async () => {
  requireRoot("runc containers");
  const runcBin = requireCommand("runc");
  requireCommand("setsid", "util-linux");
  const criu = requireCriu().path;
  const root = Deno.makeTempDirSync({ prefix: "u2cm-runc-" });
  Deno.mkdirSync(`${root}/bin`);
  Deno.symlinkSync(criu, `${root}/bin/criu`);
  const env = { PATH: `${root}/bin:${Deno.env.get("PATH")}` };
  const a: RuncNode = { bin: runcBin, root: `${root}/state-a`, env };
  const b: RuncNode = { bin: runcBin, root: `${root}/state-b`, env };
  const bundle = memcheckBundle(`${root}/bundle`, ["--mib", "16", "--interval-ms", "20"]);
  const spec = JSON.parse(Deno.readTextFileSync(`${bundle}/config.json`));
  // runc spec's default namespaces include a private (empty) network namespace: --network none
  assert.ok(spec.linux.namespaces.some((n: { type: string }) => n.type === "network"));
  const logA = `${root}/a.log`;
  const logB = `${root}/b.log`;
  let pidB = 0;
  try {
    await runLogged(a, ["run", "--detach", "--bundle", bundle, "mc"], {
      logFile: `${root}/a.log`,
    });
    await waitLine(logA, /^tick 10 /);
    const info = await resolveContainer({ ref: "mc", runtime: "runc", runc: a });
    assert.equal(info.runtime, "runc");
    assert.equal(info.bundle, bundle);
    assert.equal(info.networkMode, "private");
    const work = Deno.makeTempDirSync({ dir: root });
    const images = await checkpointRunc(a, { id: "mc", workDir: work });
    // runc checkpoint ends the container and forgets it (a rollback restores it from the images)
    assert.equal(await inspectRuncContainer(a, "mc"), undefined);
    const ticked = lastTick(logA);
    const destWork = Deno.makeTempDirSync({ dir: root });
    pidB = await restoreRunc(b, {
      id: "mc",
      imagesDir: images,
      bundle,
      workDir: destWork,
      logFile: `${root}/b.log`,
    });
    assert.equal(processState(pidB), "T", "restored tree left stopped");
    resumeContainer(pidB);
    await waitLine(logB, new RegExp(`^tick ${ticked + 5} `));
    Deno.kill(pidB, "SIGUSR1");
    assert.equal(await waitLine(logB, /^verify /), `verify ok ${16 * 256}`);
    assert.deepEqual((await listRuncContainers(b)).map((c) => [c.id, c.status]), [[
      "mc",
      "running",
    ]]);
    assert.deepEqual(await listRuncContainers(a), []);
  } finally {
    await deleteRunc(b, "mc").catch(() => {});
    await deleteRunc(a, "mc").catch(() => {});
    if (pidB) { for (const p of treePids(pidB)) Deno.kill(p, "SIGKILL"); }
    Deno.removeSync(root, { recursive: true });
  }
});
