/**
 * Engine names as combinations of parts: which {@linkcode RoundSource} runs the pre-copy rounds
 * and which final phases the policy's decision may pick. `auto` takes what the host offers: the
 * pre-dump chain where soft-dirty works, else content hashing, and post-copy when lazy restore
 * works and the policy asks for it.
 *
 * | engine    | rounds    | final phases                         |
 * | --------- | --------- | ------------------------------------ |
 * | `delta`   | hash      | stop-and-copy                        |
 * | `predump` | pre-dump  | stop-and-copy                        |
 * | `lazy`    | none      | post-copy                            |
 * | `hybrid`  | hash      | the policy's: stop-and-copy or post-copy |
 * | `auto`    | pre-dump or hash | the policy's, where the host allows |
 *
 * @module
 */
import type { EngineName } from "./types.ts";

/** Engine names accepted on the command line. */
export const ENGINE_CHOICES = ["auto", "delta", "predump", "lazy", "hybrid"] as const;

/** An engine as chosen on the command line. */
export type EngineChoice = typeof ENGINE_CHOICES[number];

/** What the host offers, as far as engine choice is concerned. */
export interface EngineCapabilities {
  /** Soft-dirty works (CRIU pre-dump can track memory). */
  softDirty: boolean;
  /** userfaultfd and `fs.pipe-max-size` allow lazy restore. */
  lazy: boolean;
}

/** The final phases a policy may ask for. */
export type FinalName = "stop-and-copy" | "post-copy";

/** Which parts make up an engine. */
export interface EnginePlan {
  /** The round source: content hashing, CRIU's pre-dump chain, or no rounds at all. */
  rounds: "hash" | "predump" | "none";
  /** The final phases allowed; the first one stands in for a decision that is not allowed. */
  finals: readonly FinalName[];
  /** The engine's name when forced; `auto` reports what actually ran. */
  name?: EngineName;
  /**
   * How a stop-and-copy after content-hash rounds freezes: `scan` (a lazy dump that writes no
   * memory, the shim's final scan, a restore from the destination's own images in place) where
   * a lazy dump works — {@linkcode planOf} sets it so — else `dump` (a full dump, re-read and
   * compared). @default "dump"
   */
  freeze?: "scan" | "dump";
}

/** Raised when an engine cannot run here; the message says why and what to use. */
export class EngineUnavailableError extends Error {
  /** @param message why, and the alternative */
  constructor(message: string) {
    super(message);
    this.name = "EngineUnavailableError";
  }
}

/**
 * The parts of engine `requested` on a host with `caps`; throws
 * {@linkcode EngineUnavailableError} when a forced engine cannot run here.
 *
 * @example
 * ```ts
 * planOf("auto", { softDirty: false, lazy: true }); // hash rounds, either final phase
 * ```
 */
export function planOf(requested: EngineChoice, caps: EngineCapabilities): EnginePlan {
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
  const plan = partsOf(requested, caps);
  // After content-hash rounds the freeze is scan-and-copy where a lazy dump works (it needs
  // userfaultfd on this host); else, and with `U2CM_FREEZE=dump`, the full dump.
  if (plan.rounds === "hash" && caps.lazy) plan.freeze = "scan";
  return plan;
}

function partsOf(requested: EngineChoice, caps: EngineCapabilities): EnginePlan {
  switch (requested) {
    case "delta":
      return { rounds: "hash", finals: ["stop-and-copy"], name: "delta" };
    case "predump":
      return { rounds: "predump", finals: ["stop-and-copy"], name: "predump" };
    case "lazy":
      return { rounds: "none", finals: ["post-copy"], name: "lazy" };
    case "hybrid":
      return { rounds: "hash", finals: ["stop-and-copy", "post-copy"], name: "hybrid" };
    case "auto":
      return {
        rounds: caps.softDirty ? "predump" : "hash",
        finals: caps.lazy ? ["stop-and-copy", "post-copy"] : ["stop-and-copy"],
      };
  }
}

/** The final phase to run: the decision's when the plan allows it, else the plan's first. */
export function finalOf(plan: EnginePlan, decision: FinalName): FinalName {
  return plan.finals.includes(decision) ? decision : plan.finals[0];
}

/** The name of what ran: the forced engine, or for `auto` the parts' combination. */
export function engineNameOf(plan: EnginePlan, final: FinalName): EngineName {
  if (plan.name) return plan.name;
  if (final === "post-copy") return plan.rounds === "none" ? "lazy" : "hybrid";
  return plan.rounds === "predump" ? "predump" : "delta";
}
