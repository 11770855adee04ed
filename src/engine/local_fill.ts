/**
 * The source's wait for a verified lazy local restore (local_page_server.ts) to finish filling
 * the resumed tree's memory: it asks the destination for its drain report until the daemon's
 * session ended, and accepts the migration as verified only when every lazy page was placed and
 * matched the manifest. Until then the stopped source copy is kept (one copy runs: the
 * destination's), so that a refused page leaves the workload to the source, not lost.
 *
 * @module
 */
import type { MigrationChannel } from "./channel.ts";
import type { LazyCheckReport } from "./contract.ts";

/** Milliseconds without progress of the fill before the wait gives up. */
const FILL_IDLE_MS = 60_000;

/** What the fill after the resume did (the `local_lazy` object of the JSON result). */
export interface LocalLazyReport {
  /** Pages the restore left to the destination's lazy-pages daemon. */
  lazyPages: number;
  /** Of them, pages placed after matching the source's manifest (all, when verified). */
  checkedPages: number;
  /** Page requests of the daemon (faults and background fetches). */
  requests: number;
  /**
   * Faults of the running tree the daemon served, when the destination counted them (its
   * daemon logs warnings only: not counted, undefined).
   */
  faults?: number;
  /** Milliseconds from the resume until the destination reported the fill complete. */
  fillMs: number;
}

/** The destination refused a page of the fill: its copy is gone, the source must run again. */
export class FillRefused extends Error {
  /** @param message why (the destination's mismatch) */
  constructor(message: string) {
    super(message);
    this.name = "FillRefused";
  }
}

/**
 * Wait until the destination reports the fill of `lazyPages` pages complete and verified.
 * Throws {@linkcode FillRefused} when it refused a page (it ended its copy before saying so), an
 * Error when the report is missing, incomplete, or the fill stalls.
 *
 * @example
 * ```ts
 * const fill = await awaitLocalFill(channel, verified.lazyPages!, resumedAt);
 * ```
 */
export async function awaitLocalFill(
  channel: MigrationChannel,
  lazyPages: number,
  resumedAt: number,
  idleMs = FILL_IDLE_MS,
): Promise<LocalLazyReport> {
  if (!channel.postCopyReport) throw new Error("the channel cannot ask for the fill's report");
  let last = -1, lastAt = performance.now();
  for (;;) {
    const report: LazyCheckReport | undefined = await channel.postCopyReport();
    if (!report) throw new Error("the destination reported no check of the lazy pages");
    if (report.mismatch) throw new FillRefused(report.mismatch);
    // `faults` is there once the daemon exited (the session's end alone is not enough).
    if (report.faults !== undefined) {
      if (!report.closed || report.checkedPages !== lazyPages) {
        throw new Error(
          `lazy restore not verified: ${report.checkedPages} of ${lazyPages} lazy pages were ` +
            `placed and matched the manifest${report.closed ? "" : " (the session did not end)"}`,
        );
      }
      return {
        lazyPages,
        checkedPages: report.checkedPages,
        requests: report.requests,
        fillMs: performance.now() - resumedAt,
      };
    }
    const now = performance.now();
    if (report.checkedPages !== last) [last, lastAt] = [report.checkedPages, now];
    else if (now - lastAt > idleMs) {
      throw new Error(
        `the lazy fill stalled: ${report.checkedPages} of ${lazyPages} pages after ` +
          `${Math.round(idleMs / 1000)} s without progress`,
      );
    }
    // The destination's report waits for the session's end itself (up to 5 s a question).
    await new Promise((r) => setTimeout(r, 20));
  }
}
