import assert from "node:assert/strict";
import { requireCriu42 } from "../support/podman.ts";
import { redisImage } from "../support/container_images.ts";
import { podmanAgents } from "../support/podman_agents.ts";
import { startRedisContainer } from "../support/redis.ts";
import { listPodmanContainers } from "../../src/container/mod.ts";

async function ping(conn: Deno.TcpConn): Promise<string> {
  await conn.write(new TextEncoder().encode("PING\r\n"));
  const buf = new Uint8Array(64);
  const n = await conn.read(buf);
  return n ? new TextDecoder().decode(buf.subarray(0, n)).trim() : "(closed)";
}

Deno.test("--tcp established: a client's open connection to a bridge-networked redis container keeps working across the migration (CRIU 4.2, same host address)", async () => {
  const t = await podmanAgents({ criu: await requireCriu42() });
  const port = 20000 + (Deno.pid % 20000) + 11;
  let conn: Deno.TcpConn | undefined;
  try {
    await redisImage(t.b);
    await startRedisContainer(t.a, "rt", port, { waitReady: false });
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
    const r = await t.migrate(["--container", "rt", "--tcp", "established"]);
    assert.equal(r.code, 0, r.stderr + r.stdout + t.agent.log().slice(-2000));
    assert.deepEqual((await listPodmanContainers(t.b)).map((c) => c.name), ["rt"]);
    assert.equal(await ping(conn), "+PONG", "the same connection answers after the migration");
  } finally {
    conn?.close();
    await t.cleanup();
  }
});
