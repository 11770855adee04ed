/**
 * The fault-injection point of the driver, for the fault-matrix tests: with
 * `U2CM_FAULT_PAUSE=<point>` in its environment, a `u2cm migrate` stops itself (SIGSTOP) right
 * after its journal recorded that phase (`frozen`, `restoring`, `committed`, …) or at `dumped`
 * (the tree frozen and its state at the destination), so a test can kill, cut or crash something at exactly
 * that point and then continue or kill it. Unset, it does nothing.
 *
 * @module
 */

/**
 * Stop this process if `U2CM_FAULT_PAUSE` names `phase`.
 *
 * @example
 * ```ts
 * pauseAt("committed"); // a test's SIGCONT lets it go on
 * ```
 */
export function pauseAt(phase: string): void {
  let want: string | undefined;
  try {
    want = Deno.env.get("U2CM_FAULT_PAUSE");
  } catch {
    return; // no env permission: no fault injection
  }
  if (want === phase) Deno.kill(Deno.pid, "SIGSTOP");
}
