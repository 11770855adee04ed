/**
 * Engines by name, and `auto`: the engine this host can run for the chosen policy.
 *
 * @module
 */
import { deltaEngine } from "./delta.ts";
import type { EngineName, MigrationEngine } from "./types.ts";

/** Engine names accepted on the command line. */
export const ENGINE_CHOICES = ["auto", "delta", "predump", "lazy", "hybrid"] as const;

/** What the host offers, as far as engine choice is concerned. */
export interface EngineCapabilities {
  /** Soft-dirty works (CRIU pre-dump can track memory). */
  softDirty: boolean;
  /** userfaultfd and `fs.pipe-max-size` allow lazy restore. */
  lazy: boolean;
}

/** Raised when an engine cannot run here; the message says why and what to use. */
export class EngineUnavailableError extends Error {
  /** @param message why, and the alternative */
  constructor(message: string) {
    super(message);
    this.name = "EngineUnavailableError";
  }
}

const ENGINES = new Map<EngineName, () => Promise<MigrationEngine>>([
  ["delta", () => Promise.resolve(deltaEngine)],
  ["predump", async () => (await import("./predump.ts")).predumpEngine],
  ["lazy", async () => (await import("./lazy.ts")).lazyEngine],
  ["hybrid", async () => (await import("./hybrid.ts")).hybridEngine],
]);

/**
 * Resolve `auto` (and check a forced engine) against the host and policy: `auto` is `hybrid`
 * for the post-copy-capable policies (`hybrid`, `post-copy`) when lazy restore works, else
 * `predump` where soft-dirty works, else `delta`.
 */
export function chooseEngine(
  requested: typeof ENGINE_CHOICES[number],
  policy: string,
  caps: EngineCapabilities,
): EngineName {
  if (requested === "auto") {
    if ((policy === "hybrid" || policy === "post-copy") && caps.lazy) return "hybrid";
    return caps.softDirty ? "predump" : "delta";
  }
  if (requested === "predump" && !caps.softDirty) {
    throw new EngineUnavailableError(
      "the predump engine needs soft-dirty tracking, which this kernel lacks (see 'u2cm doctor'); " +
        "use --engine delta (content hashing works everywhere)",
    );
  }
  if ((requested === "lazy" || requested === "hybrid") && !caps.lazy) {
    throw new EngineUnavailableError(
      `the ${requested} engine needs userfaultfd and fs.pipe-max-size ≥ 4 MiB: run ` +
        "'u2cm doctor --fix' as root, or use --engine delta",
    );
  }
  return requested;
}

/** Load an engine by name. */
export async function loadEngine(name: EngineName): Promise<MigrationEngine> {
  return await ENGINES.get(name)!();
}
