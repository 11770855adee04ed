/**
 * Which container runtimes this node has, for `u2cm doctor`: podman, runc and crun, their
 * versions, whether they reach a working CRIU (the `criu` they would run, with u2cm's own CRIU put
 * first on PATH as {@linkcode withCriuOnPath} does), and what they support for migration:
 * checkpoint, restore under a new name, lazy pages.
 *
 * @example
 * ```ts
 * for (const r of await detectRuntimes()) console.log(r.name, r.version, r.criu.ok);
 * ```
 *
 * @module
 */
import { runRuntime } from "./command.ts";
import { withCriuOnPath } from "./criu_path.ts";
import { defaultPodmanNode } from "./podman.ts";
import { probeCriu } from "../criu/probe.ts";
import type { PodmanNode } from "./types.ts";

/** One runtime as the doctor reports it. */
export interface RuntimeReport {
  /** podman, runc or crun. */
  name: "podman" | "runc" | "crun";
  /** Found on PATH. */
  found: boolean;
  /** Its version, or null. */
  version: string | null;
  /** podman only: the OCI runtime it runs containers with. */
  oci_runtime?: string;
  /** The CRIU it reaches. */
  criu: { path: string | null; version: string | null; ok: boolean };
  /** What it supports for migration. */
  supports: { checkpoint: boolean; restore_new_name: boolean; lazy_pages: boolean };
  /** Whether u2cm migrates its containers (podman, runc; crun only as podman's runtime). */
  migratable: boolean;
  /** One line of explanation. */
  detail: string;
}

/** Options of {@linkcode detectRuntimes}. */
export interface DetectRuntimesOptions {
  /** The podman node. @default defaultPodmanNode() */
  podman?: PodmanNode;
  /** Cancels the probes. */
  signal?: AbortSignal;
}

/** Probe podman, runc and crun. */
export async function detectRuntimes(
  options: DetectRuntimesOptions = {},
): Promise<RuntimeReport[]> {
  const node = options.podman ?? defaultPodmanNode();
  const env = withCriuOnPath(node.env);
  const criu = await reachableCriu(env);
  const out: RuntimeReport[] = [];
  // podman
  const podmanVersion = await firstLine(node.bin, ["--version"], env);
  let ociRuntime: string | undefined;
  let ociPath = "";
  if (podmanVersion) {
    try {
      const info = JSON.parse(
        await runRuntime(node.bin, ["info", "--format", "json"], { env, timeoutMs: 30_000 }),
      );
      ociPath = String(info.host?.ociRuntime?.path ?? "");
      ociRuntime = `${info.host?.ociRuntime?.name ?? "?"} (${ociPath || "?"})`;
    } catch { /* reported below */ }
  }
  const oci = await ociCheckpoints(ociPath, env);
  const podmanHelp = podmanVersion
    ? await text(node.bin, ["container", "restore", "--help"], env)
    : "";
  out.push({
    name: "podman",
    found: podmanVersion !== null,
    version: podmanVersion?.replace(/^podman version /, "") ?? null,
    ...(ociRuntime ? { oci_runtime: ociRuntime } : {}),
    criu,
    supports: {
      checkpoint: podmanVersion !== null && criu.ok && oci.ok,
      restore_new_name: /--name/.test(podmanHelp),
      lazy_pages: false,
    },
    migratable: podmanVersion !== null && criu.ok && oci.ok,
    detail: podmanVersion === null
      ? "not installed (apt-get install podman)"
      : oci.ok
      ? "checkpoint --export / restore --import; no lazy pages above runc (CRIU issue #1933)"
      : `its OCI runtime cannot checkpoint: ${oci.why}`,
  });
  for (const name of ["runc", "crun"] as const) {
    const version = await firstLine(name, ["--version"], env);
    const ckHelp = version ? await text(name, ["checkpoint", "--help"], env) : "";
    const features = version ? await text(name, ["--version"], env) : "";
    const hasCriu = name === "runc" || /\+CRIU/.test(features);
    out.push({
      name,
      found: version !== null,
      version: version?.replace(/^(runc|crun) version /, "") ?? null,
      criu,
      supports: {
        checkpoint: version !== null && hasCriu && criu.ok,
        restore_new_name: version !== null && hasCriu,
        lazy_pages: /lazy-pages/.test(ckHelp) && criu.ok,
      },
      migratable: name === "runc" && version !== null && criu.ok,
      detail: version === null
        ? `not installed (apt-get install ${name})`
        : name === "runc"
        ? "bundles migrated with runc checkpoint/restore (the bundle at its path there, or sent)"
        : hasCriu
        ? 'used through podman (runtime = "crun"); bare crun containers are not a target yet'
        : "built without CRIU (no +CRIU): cannot checkpoint",
    });
  }
  return out;
}

/** Whether the OCI runtime at `path` can checkpoint (runc always; crun only when built +CRIU). */
async function ociCheckpoints(
  path: string,
  env: Record<string, string>,
): Promise<{ ok: boolean; why: string }> {
  if (path === "") return { ok: false, why: "podman info names no OCI runtime" };
  const version = await text(path, ["--version"], env);
  if (/^runc version/m.test(version)) return { ok: true, why: "" };
  if (/^crun version/m.test(version)) {
    return /\+CRIU/.test(version) ? { ok: true, why: "" } : {
      ok: false,
      why: `${path} is crun built without CRIU (no +CRIU); set runtime = "runc" in containers.conf`,
    };
  }
  return { ok: false, why: `${path} is neither runc nor crun` };
}

async function reachableCriu(
  env: Record<string, string>,
): Promise<{ path: string | null; version: string | null; ok: boolean }> {
  const path = (env.PATH ?? Deno.env.get("PATH") ?? "").split(":")
    .map((d) => `${d}/criu`)
    .find((p) => {
      try {
        return Deno.statSync(p).isFile;
      } catch {
        return false;
      }
    });
  if (!path) return { path: null, version: null, ok: false };
  const probe = await probeCriu(path);
  return { path, version: probe.version ?? null, ok: probe.checkOk };
}

async function firstLine(
  cmd: string,
  args: string[],
  env: Record<string, string>,
): Promise<string | null> {
  const t = await text(cmd, args, env);
  return t ? t.trim().split("\n")[0] : null;
}

async function text(cmd: string, args: string[], env: Record<string, string>): Promise<string> {
  try {
    return await runRuntime(cmd, args, { env, timeoutMs: 30_000 });
  } catch {
    return "";
  }
}
