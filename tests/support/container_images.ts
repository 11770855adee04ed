/**
 * Container images for tests, built locally (no registry is reachable) and cached between runs
 * under the u2cm cache (`images/`):
 * - `memcheck`: a one-file rootfs with the project's memcheck workload linked statically;
 * - `redis`: a Debian 12 rootfs with redis-server and redis-tools, made by mmdebstrap from the
 *   system's Debian mirror (about a minute the first time; the tarball is cached).
 * Each is `podman import`ed into a node on demand.
 *
 * @module
 */
import { cacheDir } from "../../src/native/build.ts";
import { crc32 } from "../../src/util/crc32.ts";
import { requireCommand } from "./env.ts";
import { imageInfo } from "../../src/container/image.ts";
import type { PodmanTestNode } from "./podman.ts";

/** An image in a node. */
export interface TestImage {
  /** Its name (repo:tag). */
  name: string;
  /** Its ID. */
  id: string;
}

/** The memcheck rootfs tarball (built once per memcheck.c version). */
export function memcheckRootfs(): string {
  const source = new URL("../../build/workloads/memcheck.c", import.meta.url).pathname;
  const sum = crc32(Deno.readFileSync(source)).toString(16).padStart(8, "0");
  const out = `${cacheDir()}/images/memcheck-rootfs-${sum}.tar`;
  if (exists(out)) return out;
  requireCommand("gcc");
  const work = Deno.makeTempDirSync({ prefix: "u2cm-rootfs-" });
  try {
    Deno.mkdirSync(`${work}/root/bin`, { recursive: true });
    Deno.mkdirSync(`${work}/root/tmp`);
    run("gcc", ["-O2", "-static", "-o", `${work}/root/bin/memcheck`, source]);
    Deno.mkdirSync(`${cacheDir()}/images`, { recursive: true });
    run("tar", [
      "-C",
      `${work}/root`,
      "--owner=0",
      "--group=0",
      "--mtime=@0",
      "--sort=name",
      "-cf",
      `${out}.tmp`,
      ".",
    ]);
    Deno.renameSync(`${out}.tmp`, out);
  } finally {
    Deno.removeSync(work, { recursive: true });
  }
  return out;
}

/** The redis rootfs tarball (Debian bookworm, redis-server + redis-tools), cached. */
export function redisRootfs(): string {
  const out = `${cacheDir()}/images/redis-bookworm-rootfs.tar`;
  if (exists(out)) return out;
  requireCommand("mmdebstrap");
  Deno.mkdirSync(`${cacheDir()}/images`, { recursive: true });
  // A mirror hiccup fails mmdebstrap's `apt-get update --error-on=any`: try up to three times.
  for (let attempt = 1;; attempt++) {
    try {
      run("mmdebstrap", [
        "--quiet",
        "--variant=apt",
        "--include=redis-server,redis-tools",
        "--format=tar",
        "bookworm",
        `${out}.tmp`,
        mirror(),
      ]);
      break;
    } catch (e) {
      if (attempt >= 3) throw e;
      console.error(`mmdebstrap attempt ${attempt} failed, retrying: ${(e as Error).message}`);
    }
  }
  Deno.renameSync(`${out}.tmp`, out);
  return out;
}

/** Import the memcheck image into `node` (unless it has it); name `localhost/u2cm-memcheck:t`. */
export function memcheckImage(node: PodmanTestNode): Promise<TestImage> {
  return importImage(node, memcheckRootfs(), "localhost/u2cm-memcheck:t", '["/bin/memcheck"]');
}

/** Import the redis image into `node` (unless it has it); name `localhost/u2cm-redis:t`. */
export function redisImage(node: PodmanTestNode): Promise<TestImage> {
  return importImage(node, redisRootfs(), "localhost/u2cm-redis:t", '["redis-server"]');
}

async function importImage(
  node: PodmanTestNode,
  tarball: string,
  name: string,
  cmd: string,
): Promise<TestImage> {
  const have = await imageInfo(node, name);
  if (have) return { name, id: have.id };
  const out = await node.run(["import", "--quiet", "--change", `CMD ${cmd}`, tarball, name]);
  const id = /([0-9a-f]{64})/.exec(out)?.[1];
  if (!id) throw new Error(`podman import printed no image ID: ${out}`);
  return { name, id };
}

function mirror(): string {
  for (const f of ["/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"]) {
    try {
      // Comment lines name snapshot.debian.org, which is not reachable: read only live lines.
      const live = Deno.readTextFileSync(f).split("\n").filter((l) => !/^\s*#/.test(l)).join("\n");
      const m = /(https?:\/\/[^\s]+\/debian)(?![\w-])/.exec(live);
      if (m) return m[1];
    } catch { /* absent */ }
  }
  return "http://deb.debian.org/debian";
}

function run(cmd: string, args: string[]): void {
  const out = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).outputSync();
  if (!out.success) {
    throw new Error(`${cmd} failed: ${new TextDecoder().decode(out.stderr).slice(-2000)}`);
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
