/**
 * The stop rules of existing tools (P.Haul, LXD/Incus, QEMU) and the trivial policies.
 *
 * @module
 */
import type { Decision, PolicyState, StopPolicy } from "./types.ts";

const CONTINUE: Decision = { action: "continue" };
const STOP: Decision = { action: "stop-and-copy" };

/** Options of the P.Haul rule. */
export interface PhaulOptions {
  /** Stop when a round wrote at most this many pages. @default 64 */
  minPages?: number;
  /** Stop when a round grew by more than this fraction over the previous. @default 0.1 */
  maxGrowth?: number;
  /** Stop after the round with this index (0-based). @default 8 */
  maxIndex?: number;
}

/**
 * P.Haul: stop if the last pre-dump wrote ≤ 64 pages, or grew > 10 % over the one before, or was
 * the round with index 8 (so at most 9 pre-dumps).
 *
 * @param options thresholds, P.Haul's by default
 */
export function phaulPolicy(options: PhaulOptions = {}): StopPolicy {
  const { minPages = 64, maxGrowth = 0.1, maxIndex = 8 } = options;
  return {
    name: "phaul",
    decide({ rounds }: PolicyState): Decision {
      const last = rounds.at(-1);
      if (!last) return CONTINUE;
      if (last.pagesSent <= minPages) return STOP;
      const prev = rounds.at(-2);
      if (prev && last.pagesSent > prev.pagesSent * (1 + maxGrowth)) return STOP;
      if (last.index >= maxIndex) return STOP;
      return CONTINUE;
    },
  };
}

/** Options of the LXD/Incus rule. */
export interface LxdOptions {
  /** Stop when skipped/(written+skipped) exceeds this. @default 0.7 */
  goal?: number;
  /** Most pre-dumps (iterations = 10, the counter steps twice per loop). @default 6 */
  maxPreDumps?: number;
}

/**
 * LXD/Incus: stop when the last pre-dump skipped more than 70 % of the pages it looked at
 * (skipped/(written+skipped)), or after 6 pre-dumps.
 *
 * @param options thresholds, LXD's by default
 */
export function lxdPolicy(options: LxdOptions = {}): StopPolicy {
  const { goal = 0.7, maxPreDumps = 6 } = options;
  return {
    name: "lxd",
    decide({ rounds }: PolicyState): Decision {
      const last = rounds.at(-1);
      if (!last) return CONTINUE;
      const seen = last.pagesSent + last.pagesSkipped;
      if (seen > 0 && last.pagesSkipped / seen > goal) return STOP;
      if (rounds.length >= maxPreDumps) return STOP;
      return CONTINUE;
    },
  };
}

/** Options of the QEMU rule. */
export interface QemuOptions {
  /** Switch over when the pending bytes can be sent within this many ms. @default 300 */
  downtimeLimitMs?: number;
  /** First auto-converge throttle in percent. @default 20 */
  throttleInitial?: number;
  /** Throttle increment in percent. @default 10 */
  throttleStep?: number;
  /** Highest throttle in percent. @default 99 */
  throttleMax?: number;
  /** Most pre-copy rounds before forcing the switch-over. @default 30 */
  maxRounds?: number;
  /** Whether auto-converge throttling is on. @default true */
  autoConverge?: boolean;
}

/**
 * QEMU: switch over when remaining dirty bytes ≤ bandwidth × 300 ms; auto-converge throttles
 * (20 %, +10 %, ≤ 99 %) each second time a round dirtied more than half the bytes it sent;
 * at most 30 rounds.
 *
 * @param options thresholds, QEMU's defaults by default
 */
export function qemuPolicy(options: QemuOptions = {}): StopPolicy {
  const {
    downtimeLimitMs = 300,
    throttleInitial = 20,
    throttleStep = 10,
    throttleMax = 99,
    maxRounds = 30,
    autoConverge = true,
  } = options;
  return {
    name: "qemu",
    decide(state: PolicyState): Decision {
      const { rounds, link } = state;
      const pendingBytes = state.pendingPages * state.wireBytesPerPage;
      if (pendingBytes <= link.bandwidthBps * downtimeLimitMs / 1000) return STOP;
      if (rounds.length >= maxRounds) return STOP;
      if (!autoConverge || rounds.length === 0) return CONTINUE;
      let high = 0;
      let triggers = 0;
      let triggeredNow = false;
      for (const r of rounds) {
        triggeredNow = false;
        if (r.pagesDirtied * state.pageSize > r.bytesSent / 2 && ++high >= 2) {
          high = 0;
          triggers++;
          triggeredNow = true;
        }
      }
      if (!triggeredNow) return CONTINUE;
      const percent = Math.min(throttleMax, throttleInitial + throttleStep * (triggers - 1));
      return { action: "throttle", percent };
    },
  };
}

/**
 * Pre-copy exactly `k` rounds, then stop-and-copy.
 *
 * @param k number of pre-copy rounds (0 = plain stop-and-copy)
 */
export function fixedPolicy(k: number): StopPolicy {
  return {
    name: `fixed-${k}`,
    decide: ({ rounds }) => rounds.length >= k ? STOP : CONTINUE,
  };
}

/** No pre-copy: freeze and copy everything at once. */
export function stopAndCopyPolicy(): StopPolicy {
  return { name: "stop-and-copy", decide: () => STOP };
}

/** No pre-copy: switch to post-copy (lazy pages) at once. */
export function postCopyPolicy(): StopPolicy {
  return { name: "post-copy", decide: () => ({ action: "post-copy" }) };
}
