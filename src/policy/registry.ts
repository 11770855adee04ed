/**
 * Policies by name, as users pick them on the command line.
 *
 * @module
 */
import {
  fixedPolicy,
  type LxdOptions,
  lxdPolicy,
  type PhaulOptions,
  phaulPolicy,
  postCopyPolicy,
  type QemuOptions,
  qemuPolicy,
  stopAndCopyPolicy,
} from "./baselines.ts";
import type { StopPolicy } from "./types.ts";
import { hybridPolicy, type OraclePlan, oraclePolicy, type U2cOptions, u2cPolicy } from "./u2c.ts";

/** Every registered policy name (`fixed-K` stands for fixed-0, fixed-1, …). */
export const POLICY_NAMES = [
  "u2c",
  "phaul",
  "lxd",
  "qemu",
  "fixed-K",
  "stop-and-copy",
  "post-copy",
  "hybrid",
  "oracle",
] as const;

/** Thrown for a policy name the registry does not know. */
export class UnknownPolicyError extends Error {
  /** @param policy the name asked for */
  constructor(readonly policy: string) {
    super(`unknown policy "${policy}" (known: ${POLICY_NAMES.join(", ")})`);
    this.name = "UnknownPolicyError";
  }
}

/** Options passed through to a policy's constructor. */
export type PolicyOptions = U2cOptions & OraclePlan & PhaulOptions & LxdOptions & QemuOptions;

/**
 * Create a policy by name.
 *
 * @param name `u2c`, `phaul`, `lxd`, `qemu`, `fixed-K`, `stop-and-copy`, `post-copy`, `hybrid` or `oracle`
 * @param options passed to the policy (u2c/hybrid knobs, the oracle plan, baseline thresholds)
 */
export function createPolicy(name: string, options: PolicyOptions = {}): StopPolicy {
  const fixed = /^fixed-(\d+)$/.exec(name);
  if (fixed) return fixedPolicy(Number(fixed[1]));
  switch (name) {
    case "u2c":
      return u2cPolicy(options);
    case "phaul":
      return phaulPolicy(options);
    case "lxd":
      return lxdPolicy(options);
    case "qemu":
      return qemuPolicy(options);
    case "stop-and-copy":
      return stopAndCopyPolicy();
    case "post-copy":
      return postCopyPolicy();
    case "hybrid":
      return hybridPolicy(options);
    case "oracle":
      return oraclePolicy(options);
  }
  throw new UnknownPolicyError(name);
}
