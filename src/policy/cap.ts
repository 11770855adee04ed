/**
 * A round cap around any policy: after `maxRounds` pre-copy rounds the answer is the final phase
 * the policy would pick (stop-and-copy unless it asks for post-copy). The migration loop itself
 * has no cap; this is where `u2cm migrate --max-rounds` goes.
 *
 * @module
 */
import type { Decision, StopPolicy } from "./types.ts";

/**
 * `policy`, but never more than `maxRounds` pre-copy rounds.
 *
 * @param policy the policy to cap
 * @param maxRounds most pre-copy rounds (0 = none)
 * @example
 * ```ts
 * const capped = withRoundCap(createPolicy("fixed-1000"), 30); // stops after round 30
 * ```
 */
export function withRoundCap(policy: StopPolicy, maxRounds: number): StopPolicy {
  return {
    name: policy.name,
    decide(state): Decision {
      const d = policy.decide(state);
      if (state.rounds.length < maxRounds) return d;
      return d.action === "post-copy" ? d : { action: "stop-and-copy" };
    },
  };
}
