/**
 * Which freeze a stop-and-copy runs ({@linkcode freezePathOf}), and the downtime's breakdown
 * ({@linkcode accountDowntime}): every millisecond from the freeze to the resumed tree is in a
 * named phase, the remainder in `other_ms`.
 *
 * @module
 */
import type { EnginePlan } from "./select.ts";
import type { PhaseTimes } from "./types.ts";

/**
 * The plan's freeze path; `$U2CM_FREEZE` (`scan` or `dump`) overrides it (benchmarks compare
 * both on one host).
 *
 * @example
 * ```ts
 * freezePathOf({ rounds: "hash", finals: ["stop-and-copy"], freeze: "scan" }); // "scan"
 * ```
 */
export function freezePathOf(plan: EnginePlan): "scan" | "dump" {
  const forced = Deno.env.get("U2CM_FREEZE");
  if (plan.rounds !== "hash") return "dump";
  if (forced === "scan" || forced === "dump") return forced;
  return plan.freeze ?? "dump";
}

/**
 * Complete `phases` once the tree runs at the destination: `resume_ms` (the commit record and
 * the resume) and `other_ms`, the downtime no phase claims (freeze_ms lies inside dump_ms).
 *
 * @example
 * ```ts
 * const phases = { freeze_ms: 5, dump_ms: 40, transfer_ms: 100, restore_ms: 60 };
 * accountDowntime(phases, 230, 20); // phases.other_ms === 10
 * ```
 */
export function accountDowntime(phases: PhaseTimes, downtimeMs: number, resumeMs: number): void {
  phases.resume_ms = resumeMs;
  const named = phases.dump_ms + (phases.scan_ms ?? 0) + (phases.manifest_ms ?? 0) +
    phases.transfer_ms +
    (phases.release_ms ?? 0) + phases.restore_ms + resumeMs;
  phases.other_ms = Math.max(0, downtimeMs - named);
}
