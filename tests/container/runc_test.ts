import assert from "node:assert/strict";
import { memcheckRootfs } from "../support/container_images.ts";
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

/** The lines of a log file so far. */
function logLines(path: string): () => string[] {
  return () => {
    try {
      return Deno.readTextFileSync(path).split("\n");
    } catch {
      return [];
    }
  };
}

async function waitLine(read: () => string[], re: RegExp, timeoutMs = 15_000): Promise<string> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const hit = read().find((l) => re.test(l));
    if (hit) return hit;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no line matching ${re}; last: ${read().slice(-3).join(" | ")}`);
}

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
  const bundle = `${root}/bundle`;
  Deno.mkdirSync(`${bundle}/rootfs`, { recursive: true });
  new Deno.Command("tar", { args: ["-C", `${bundle}/rootfs`, "-xf", memcheckRootfs()] })
    .outputSync();
  new Deno.Command(runcBin, { args: ["spec"], cwd: bundle }).outputSync();
  const spec = JSON.parse(Deno.readTextFileSync(`${bundle}/config.json`));
  spec.process.terminal = false;
  spec.process.args = ["/bin/memcheck", "--mib", "16", "--interval-ms", "20"];
  // runc spec's default namespaces include a private (empty) network namespace: --network none
  assert.ok(spec.linux.namespaces.some((n: { type: string }) => n.type === "network"));
  Deno.writeTextFileSync(`${bundle}/config.json`, JSON.stringify(spec));
  const outA = { lines: logLines(`${root}/a.log`) };
  const outB = { lines: logLines(`${root}/b.log`) };
  let pidB = 0;
  try {
    await runLogged(a, ["run", "--detach", "--bundle", bundle, "mc"], {
      logFile: `${root}/a.log`,
    });
    await waitLine(outA.lines, /^tick 10 /);
    const info = await resolveContainer({ ref: "mc", runtime: "runc", runc: a });
    assert.equal(info.runtime, "runc");
    assert.equal(info.bundle, bundle);
    assert.equal(info.networkMode, "private");
    const work = Deno.makeTempDirSync({ dir: root });
    const images = await checkpointRunc(a, { id: "mc", workDir: work });
    // runc checkpoint ends the container and forgets it (a rollback restores it from the images)
    assert.equal(await inspectRuncContainer(a, "mc"), undefined);
    const lastTick = Number(
      /tick (\d+)/.exec(outA.lines().filter((l) => l.startsWith("tick")).at(-1)!)![1],
    );
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
    await waitLine(outB.lines, new RegExp(`^tick ${lastTick + 5} `));
    Deno.kill(pidB, "SIGUSR1");
    assert.equal(await waitLine(outB.lines, /^verify /), `verify ok ${16 * 256}`);
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
