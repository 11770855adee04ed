/**
 * The Deno executable tests spawn child processes with: `$U2CM_DENO` when set, else
 * `Deno.execPath()`. The arm64 lane sets it to a wrapper that runs the arm64 Deno under
 * qemu-user, since without binfmt_misc the kernel cannot exec an aarch64 binary directly.
 *
 * @module
 */

/**
 * The Deno to spawn for child processes.
 *
 * @example
 * ```ts
 * import { denoExecutable } from "./deno.ts";
 * new Deno.Command(denoExecutable(), { args: ["--version"] });
 * ```
 */
export function denoExecutable(): string {
  return Deno.env.get("U2CM_DENO") || Deno.execPath();
}
