/**
 * The project's own C workloads (build/workloads/*.c), built on demand into the cache and run as
 * real processes for tests and benchmarks.
 *
 * @module
 */
import { cacheDir, compile, hostArch } from "../../src/native/build.ts";
import { crc32 } from "../../src/util/crc32.ts";

/** Build `build/workloads/<name>.c` once per source version; returns the executable's path. */
export function buildWorkload(name: string): string {
  const source = new URL(`../../build/workloads/${name}.c`, import.meta.url).pathname;
  const sum = crc32(Deno.readFileSync(source)).toString(16).padStart(8, "0");
  const out = `${cacheDir()}/workloads/${name}-${hostArch()}-${sum}`;
  try {
    Deno.statSync(out);
    return out;
  } catch {
    // not built yet
  }
  Deno.mkdirSync(`${cacheDir()}/workloads`, { recursive: true });
  const tmp = `${out}.${Deno.pid}.tmp`;
  compile(hostArch(), ["-o", tmp, source]);
  Deno.renameSync(tmp, out);
  return out;
}

/** A region the dirty_pattern workload announced. */
export interface Region {
  /** First byte address. */
  start: number;
  /** Size in pages. */
  pages: number;
}

/** A running dirty_pattern process. */
export interface DirtyPattern {
  /** Its pid. */
  pid: number;
  /** Its regions by name: hot, warm, cold. */
  regions: Record<string, Region>;
  /** Wait for it to exit on its own; returns the exit code. */
  exited(): Promise<number>;
  /** Kill it (and its children) and wait. */
  stop(): Promise<void>;
}

/** Start dirty_pattern with `args` and wait until it has announced its regions. */
export async function startDirtyPattern(args: string[]): Promise<DirtyPattern> {
  const exe = buildWorkload("dirty_pattern");
  const child = new Deno.Command(exe, { args, stdout: "piped", stderr: "inherit" }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const regions: Record<string, Region> = {};
  let text = "";
  while (!text.includes("ready\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`dirty_pattern exited before 'ready': ${text}`);
    text += value;
  }
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  for (const line of text.split("\n")) {
    const m = /^region (\w+) ([0-9a-f]+) (\d+)$/.exec(line);
    if (m) regions[m[1]] = { start: parseInt(m[2], 16), pages: Number(m[3]) };
  }
  let status: Promise<Deno.CommandStatus> | undefined;
  const wait = () => (status ??= child.status);
  return {
    pid: child.pid,
    regions,
    exited: async () => (await wait()).code,
    stop: async () => {
      try {
        new Deno.Command("pkill", { args: ["-KILL", "-P", String(child.pid)] }).outputSync();
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
      await wait();
    },
  };
}

/** Sleep for `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
