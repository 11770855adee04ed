/**
 * A redis container for the container tests: `redis-server` of the locally built redis image
 * (tests/support/container_images.ts) on a podman node, bridge-networked with its port published
 * on 127.0.0.1, and `redis-cli` against it.
 *
 * @example
 * ```ts
 * await startRedisContainer(node, "rd", port);
 * await fillRedis(port, 100_000);
 * console.log(await redisCli(port, ["DBSIZE"]));
 * ```
 *
 * @module
 */
import { redisImage } from "./container_images.ts";
import type { PodmanTestNode } from "./podman.ts";

/** `redis-cli -p PORT ARGS` (with `stdin` piped in); resolves with its trimmed stdout. */
export async function redisCli(port: number, args: string[], stdin?: string): Promise<string> {
  const child = new Deno.Command("redis-cli", {
    args: ["-p", String(port), ...args],
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  return new TextDecoder().decode((await child.output()).stdout).trim();
}

/**
 * Start redis as container `name` on `node`, port 6379 published on 127.0.0.1:`port`, no
 * persistence; with `waitReady` (default) resolves once it answers PING.
 */
export async function startRedisContainer(
  node: PodmanTestNode,
  name: string,
  port: number,
  options: { waitReady?: boolean } = {},
): Promise<void> {
  const img = await redisImage(node);
  await node.run([
    "run",
    "-d",
    "--name",
    name,
    "--cgroup-parent",
    node.cgroupParent,
    "-p",
    `127.0.0.1:${port}:6379`,
    img.name,
    "redis-server",
    "--save",
    "",
    "--appendonly",
    "no",
    "--protected-mode",
    "no",
  ]);
  if (options.waitReady === false) return;
  for (let i = 0; i < 200 && (await redisCli(port, ["PING"])) !== "PONG"; i++) {
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** SET key:i value-i for i < `keys`, through `redis-cli --pipe`. */
export async function fillRedis(port: number, keys: number): Promise<void> {
  let pipe = "";
  for (let i = 0; i < keys; i++) pipe += `SET key:${i} value-${i}\r\n`;
  await redisCli(port, ["--pipe"], pipe);
}

/** redis-benchmark on `port` (GET and PING, 4 clients) until killed. */
export function redisBenchmark(port: number): Deno.ChildProcess {
  return new Deno.Command("redis-benchmark", {
    args: ["-p", String(port), "-t", "get,ping", "-n", "100000000", "-c", "4", "-q"],
    stdout: "null",
    stderr: "null",
  }).spawn();
}
