import assert from "node:assert/strict";
import { makePodmanPair, requireCriu42 } from "../support/podman.ts";
import { redisImage } from "../support/container_images.ts";
import { makeNodes, u2cm } from "../engine/support/agents.ts";
import { retryHandshake } from "./support.ts";
import { listPodmanContainers } from "../../src/container/mod.ts";

async function ping(conn: Deno.TcpConn): Promise<string> {
  await conn.write(new TextEncoder().encode("PING\r\n"));
  const buf = new Uint8Array(64);
  const n = await conn.read(buf);
  return n ? new TextDecoder().decode(buf.subarray(0, n)).trim() : "(closed)";
}

Deno.test("--tcp established: a client's open connection to a bridge-networked redis container keeps working across the migration (CRIU 4.2, same host address)", async () => {
  const criu = await requireCriu42();
  const pair = makePodmanPair(criu.path);
  const { a, b } = pair;
  const nodes = await makeNodes();
  const agent = await nodes.startB(0, [], "127.0.0.1", {
    ...b.env,
    ...criu.env,
    U2CM_CGROUP_PARENT: b.cgroupParent,
  });
  const port = 20000 + (Deno.pid % 20000) + 11;
  let conn: Deno.TcpConn | undefined;
  try {
    const img = await redisImage(a);
    await redisImage(b);
    await a.run([
      "run",
      "-d",
      "--name",
      "rt",
      "--cgroup-parent",
      a.cgroupParent,
      "-p",
      `127.0.0.1:${port}:6379`,
      img.name,
      "redis-server",
      "--save",
      "",
      "--protected-mode",
      "no",
    ]);
    for (let i = 0; i < 200 && !conn; i++) {
      try {
        conn = await Deno.connect({ hostname: "127.0.0.1", port });
        if (await ping(conn) !== "+PONG") throw new Error("not ready");
      } catch {
        conn?.close();
        conn = undefined;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    assert.ok(conn, "redis never answered");
    const r = await retryHandshake(() =>
      u2cm([
        "migrate",
        "--container",
        "rt",
        "--to",
        "b",
        "--tcp",
        "established",
        "--format",
        "json",
        "--state-dir",
        nodes.a,
      ], { ...a.env, ...criu.env })
    );
    assert.equal(r.code, 0, r.stderr + r.stdout + agent.log().slice(-2000));
    assert.deepEqual((await listPodmanContainers(b)).map((c) => c.name), ["rt"]);
    assert.equal(await ping(conn), "+PONG", "the same connection answers after the migration");
  } finally {
    conn?.close();
    await agent.stop();
    nodes.cleanup();
    await pair.cleanup();
  }
});
