/**
 * build/debian-packages.txt names every Debian package the tasks need: the commands the code runs
 * are read out of the sources (the `demo` task's from the modules it loads and the u2cm commands
 * it runs, the `test` task's from everything), each is found on this machine, and the package that
 * provides it must be listed for that task, or be Essential / Priority required (on every Debian).
 *
 * @module
 */
import assert from "node:assert/strict";
import { listedPackages } from "../../build/setup.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/**
 * Words that are no Debian command: CRIU comes from `u2cm doctor --fix`, deno from npm, and u2cm's
 * own sub-commands stand first in the argument arrays of `u2cm` runs.
 */
const NOT_DEBIAN = new Set([
  "criu",
  "deno",
  ...["agent", "doctor", "init", "install", "migrate", "peer", "pick", "recover", "report"],
  ...["simulate", "trace", "uninstall", "run", "test"],
]);

/**
 * Modules the demo loads (through `u2cm migrate`'s imports) whose commands it never runs, and why.
 */
const DEMO_NEVER_RUNS: Record<string, string> = {
  "src/predict/baselines.ts": "python baselines: only `u2cm predict-eval` runs them",
  "src/container/runtimes.ts": "doctor only probes for podman/runc/crun; a missing one is reported",
  "src/peer/container_check.ts": "message schemas: 'podman' there names a runtime, runs nothing",
  "src/container/resolve.ts":
    "only `u2cm migrate --container` runs podman/runc; the demo uses --pid",
};

/** Where Debian puts commands (PATH may put pyenv and the like first). */
const SYSTEM_DIRS = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/** The u2cm sub-commands the demo runs, by the module that implements each. */
const DEMO_ENTRIES = [
  "build/demo.ts",
  "src/cli/doctor.ts",
  "src/cli/init.ts",
  "src/cli/peer.ts",
  "src/cli/agent.ts",
  "src/cli/migrate.ts",
  "src/cli/report.ts",
];

Deno.test("every line of build/debian-packages.txt names its tasks and a reason", () => {
  for (const p of listedPackages()) {
    assert.ok(p.tasks.length > 0, p.name);
    assert.ok(p.why.length > 0, `${p.name} has no '# why' comment`);
    assert.ok(p.tasks.includes("test"), `${p.name}: the test task installs every listed package`);
  }
  assert.throws(() => listedPackages("gcc # no task\n"), /needs the tasks that use it/);
  assert.throws(() => listedPackages("gcc bench # x\n"), /not 'bench'/);
});

Deno.test("the scan finds commands in the shapes the code spawns them", () => {
  const found = commandsIn(
    'new Deno.Command("redis-cli", {}); sh(["ip", "netns"]); requireCommand("setsid", "util-linux");' +
      ' const py = "/usr/bin/python3"; ["json", "table"];',
  );
  assert.deepEqual([...found.spawned].sort(), ["/usr/bin/python3", "redis-cli", "setsid"]);
  assert.ok(found.maybe.has("ip") && found.maybe.has("json"));
});

for (const task of ["demo", "test"] as const) {
  Deno.test(`every command the ${task} task runs comes from a package listed for it`, async () => {
    const files = task === "test"
      ? sourceFiles()
      : (await moduleGraph(DEMO_ENTRIES)).filter((f) => !(rel(f) in DEMO_NEVER_RUNS));
    const listed = new Set(
      listedPackages().filter((p) => p.tasks.includes(task)).map((p) => p.name),
    );
    const problems: string[] = [];
    const checked = new Map<string, string>();
    for (const file of files) {
      const { spawned, maybe } = commandsIn(Deno.readTextFileSync(file));
      for (const cmd of [...spawned, ...maybe]) {
        if (NOT_DEBIAN.has(cmd) || checked.has(cmd)) continue;
        const path = which(cmd);
        if (!path) {
          // An array's first word may be any string; a spawned literal must exist.
          if (spawned.has(cmd)) problems.push(`${cmd} (${rel(file)}): not installed here`);
          continue;
        }
        const pkg = owner(path);
        checked.set(cmd, pkg ?? "?");
        if (!pkg) problems.push(`${cmd} (${rel(file)}): ${path} belongs to no Debian package`);
        else if (!listed.has(pkg) && !everywhere(pkg)) {
          problems.push(`${cmd} (${rel(file)}): from package ${pkg}, not listed for '${task}'`);
        }
      }
    }
    assert.ok(
      checked.size >= (task === "test" ? 15 : 4),
      `too few commands found: ${[...checked]}`,
    );
    assert.deepEqual(problems, [], `build/debian-packages.txt lacks:\n${problems.join("\n")}`);
  });
}

/** Command names in `text`: spawned for sure, and first words of string arrays (maybe argv). */
function commandsIn(text: string): { spawned: Set<string>; maybe: Set<string> } {
  const spawned = new Set<string>();
  const maybe = new Set<string>();
  for (const m of text.matchAll(/new Deno\.Command\(\s*"([^"]+)"/g)) spawned.add(m[1]);
  for (const m of text.matchAll(/requireCommand\(\s*"([^"]+)"/g)) spawned.add(m[1]);
  for (const m of text.matchAll(/"(\/usr\/s?bin\/[A-Za-z0-9._+-]+)"/g)) spawned.add(m[1]);
  for (const m of text.matchAll(/\[\s*"([a-z][a-z0-9+._-]*)"\s*,/g)) maybe.add(m[1]);
  return { spawned, maybe };
}

/** Every TypeScript file under src/, build/ and tests/. */
function sourceFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of Deno.readDirSync(dir)) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) walk(path);
      else if (e.name.endsWith(".ts")) out.push(path);
    }
  };
  for (const top of ["src", "build", "tests"]) walk(`${ROOT}${top}`);
  return out;
}

/** The local modules `entries` load (static and dynamic imports), from `deno info --json`. */
async function moduleGraph(entries: string[]): Promise<string[]> {
  const files = new Set<string>();
  for (const entry of entries) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", `${ROOT}${entry}`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
      modules: { specifier: string }[];
    };
    for (const m of info.modules) {
      if (m.specifier.startsWith("file://")) files.add(new URL(m.specifier).pathname);
    }
  }
  return [...files];
}

function which(cmd: string): string | undefined {
  if (cmd.startsWith("/")) return exists(cmd) ? cmd : undefined;
  for (const dir of SYSTEM_DIRS) if (exists(`${dir}/${cmd}`)) return `${dir}/${cmd}`;
  return undefined;
}

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** The Debian package that owns `path` (its merged-/usr twin or its link target too). */
function owner(path: string): string | undefined {
  const twins = [path, path.replace(/^\/usr\//, "/"), `/usr${path}`];
  try {
    twins.push(Deno.realPathSync(path));
  } catch { /* dangling */ }
  for (const p of twins) {
    const out = new Deno.Command("dpkg-query", { args: ["-S", p], stdout: "piped", stderr: "null" })
      .outputSync();
    const line = new TextDecoder().decode(out.stdout).split("\n")
      .find((l) => l.includes(": ") && !l.startsWith("diversion by"));
    if (out.success && line) return line.split(":")[0].split(",")[0].trim();
  }
  return undefined;
}

/** Packages every Debian system has: Essential, or Priority required. */
function everywhere(pkg: string): boolean {
  const out = new Deno.Command("dpkg-query", {
    args: ["-W", "-f=${Essential} ${Priority}", pkg],
    stdout: "piped",
    stderr: "null",
  }).outputSync();
  const [essential, priority] = new TextDecoder().decode(out.stdout).split(" ");
  return essential === "yes" || priority === "required";
}

function rel(file: string): string {
  return file.startsWith(ROOT) ? file.slice(ROOT.length) : file;
}
