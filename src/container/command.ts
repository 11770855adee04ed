/**
 * Running a container runtime's command line (podman, runc) as a thin typed wrapper: arguments
 * in, stdout out, or a {@linkcode RuntimeCommandError} with the command's own error text. The
 * environment is the one u2cm was started with (plus `env`), so two podman "nodes" can share one
 * machine, each with its own `CONTAINERS_STORAGE_CONF` and `CONTAINERS_CONF`.
 *
 * @example
 * ```ts
 * const out = await runRuntime("podman", ["version", "--format", "json"]);
 * console.log(JSON.parse(out).Client.Version);
 * ```
 *
 * @module
 */

/** Raised when a runtime command fails or cannot be started. */
export class RuntimeCommandError extends Error {
  /**
   * @param command the program (podman, runc)
   * @param args its arguments
   * @param exitCode its exit status (-1: could not start or was killed)
   * @param stderr the tail of what it wrote to stderr
   */
  constructor(
    readonly command: string,
    readonly args: string[],
    readonly exitCode: number,
    readonly stderr: string,
  ) {
    super(`${command} ${args.slice(0, 3).join(" ")} failed (exit ${exitCode}): ${stderr}`);
    this.name = "RuntimeCommandError";
  }
}

/** Options of {@linkcode runRuntime}. */
export interface RunRuntimeOptions {
  /** Extra environment variables (added to u2cm's own). @default {} */
  env?: Record<string, string>;
  /** Give up (SIGKILL) after this many milliseconds. @default 120000 */
  timeoutMs?: number;
  /** Cancels the command (it is killed). */
  signal?: AbortSignal;
  /** Bytes written to the command's stdin. */
  stdin?: Uint8Array;
}

/**
 * Run `command args…`; resolves with its stdout (text) or throws {@linkcode RuntimeCommandError}.
 *
 * @example
 * ```ts
 * const id = (await runRuntime("podman", ["inspect", "--format", "{{.Id}}", "web"])).trim();
 * ```
 */
export async function runRuntime(
  command: string,
  args: string[],
  options: RunRuntimeOptions = {},
): Promise<string> {
  const { env = {}, timeoutMs = 120_000, signal, stdin } = options;
  signal?.throwIfAborted();
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(command, {
      args,
      env,
      stdin: stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    throw new RuntimeCommandError(command, args, -1, e instanceof Error ? e.message : String(e));
  }
  const kill = () => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  };
  const timer = setTimeout(kill, timeoutMs);
  signal?.addEventListener("abort", kill, { once: true });
  try {
    if (stdin) {
      const w = child.stdin.getWriter();
      await w.write(stdin);
      await w.close();
    }
    const out = await child.output();
    const text = new TextDecoder().decode(out.stdout);
    if (!out.success) {
      const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-6).join("\n");
      throw new RuntimeCommandError(command, args, out.code, err || text.trim().slice(-500));
    }
    return text;
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", kill);
  }
}
