/**
 * A child process's output collected up to its EXIT, not up to its pipes' end-of-file: processes
 * it forked inherit its pipes and may hold them open long after it exited (a CRIU restore's tasks
 * before they become the workload, the orphans of a killed CRIU).
 *
 * @example
 * ```ts
 * const child = new Deno.Command("criu", { args, stdout: "piped", stderr: "piped" }).spawn();
 * const { code, stderr } = await outputAtExit(child);
 * ```
 *
 * @module
 */

/** How long the output may trail the exit by default (what forks hold open is not waited for). */
export const OUTPUT_GRACE_MS = 200;

/** Bytes kept of each stream (the end: where errors are). */
const KEEP_BYTES = 65_536;

/** What {@linkcode outputAtExit} collected. */
export interface ChildOutput {
  /** The exit code. */
  code: number;
  /** The end of stdout (at most 64 KiB), as text. */
  stdout: string;
  /** The end of stderr (at most 64 KiB), as text. */
  stderr: string;
}

/**
 * Wait for `child` (spawned with piped stdout and stderr) to exit, then for its output at most
 * `graceMs` longer; the streams are cancelled after that.
 */
export async function outputAtExit(
  child: Deno.ChildProcess,
  graceMs = OUTPUT_GRACE_MS,
): Promise<ChildOutput> {
  const out = drain(child.stdout);
  const err = drain(child.stderr);
  try {
    const { code } = await child.status;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all([out.done, err.done]),
      new Promise((r) => timer = setTimeout(r, graceMs)),
    ]);
    clearTimeout(timer);
    return { code, stdout: out.text(), stderr: err.text() };
  } finally {
    out.cancel();
    err.cancel();
  }
}

interface Drained {
  done: Promise<void>;
  text(): string;
  cancel(): void;
}

function drain(stream: ReadableStream<Uint8Array>): Drained {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  const done = (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      chunks.push(value);
      bytes += value.length;
      while (bytes > KEEP_BYTES && chunks.length > 1) bytes -= chunks.shift()!.length;
    }
  })().catch(() => {});
  return {
    done,
    text: () => {
      const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      let o = 0;
      for (const c of chunks) {
        all.set(c, o);
        o += c.length;
      }
      return new TextDecoder().decode(all);
    },
    cancel: () => void reader.cancel().catch(() => {}),
  };
}
