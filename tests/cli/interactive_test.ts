import assert from "node:assert/strict";
import { hasIdentity, initIdentity } from "../../src/peer/identity.ts";
import { requireCommand } from "../support/env.ts";
import { makePodmanNode } from "../support/podman.ts";
import { memcheckImage } from "../support/container_images.ts";
import { inspectPodmanContainer } from "../../src/container/podman.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** A tmux server of our own (private socket) running one command in a 160×40 pane. */
class Tmux {
  readonly socket = `u2cm-test-${Deno.pid}-${Math.random().toString(36).slice(2, 8)}`;
  constructor(command: string) {
    this.#run(["new-session", "-d", "-x", "160", "-y", "40", "-s", "t", command]);
  }
  #run(args: string[]): string {
    const out = new Deno.Command("tmux", {
      args: ["-L", this.socket, ...args],
      stdout: "piped",
      stderr: "piped",
    })
      .outputSync();
    if (!out.success) throw new Error(`tmux ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
    return new TextDecoder().decode(out.stdout);
  }
  screen(): string {
    return this.#run(["capture-pane", "-p", "-t", "t"]);
  }
  keys(...keys: string[]): void {
    // "--": a key may begin with "-" (a base64url public key), which tmux would read as a flag.
    this.#run(["send-keys", "-t", "t", "--", ...keys]);
  }
  /** Wait (≤ 60 s) until the screen matches; returns the screen. */
  async waitFor(pattern: RegExp): Promise<string> {
    const deadline = Date.now() + 60_000;
    let screen = "";
    while (Date.now() < deadline) {
      screen = this.screen();
      if (pattern.test(screen)) return screen;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`timed out waiting for ${pattern}; screen:\n${screen}`);
  }
  kill(): void {
    try {
      this.#run(["kill-server"]);
    } catch { /* already gone */ }
  }
}

interface Fixture {
  dir: string;
  config: string;
  workload: Deno.ChildProcess;
  workloadPid: number;
  command: string;
}

/** A config with two peers, a uniquely named workload, and the `u2cm pick` (or `sub`) command line. */
function fixture(extraArgs = "", sub = "pick"): Fixture {
  const dir = Deno.makeTempDirSync({ prefix: "u2cm-interactive-" });
  const config = `${dir}/config.json`;
  Deno.writeTextFileSync(
    config,
    JSON.stringify({
      version: 1,
      stateDir: `${dir}/state`,
      peers: [
        { name: "edge-b", address: "127.0.0.1:7171" },
        { name: "edge-c", address: "127.0.0.1:7272" },
      ],
    }),
  );
  // A session leader named u2cmpickme, so it is listed as a tree and found by typing its name.
  Deno.symlinkSync(requireCommand("sleep", "coreutils"), `${dir}/u2cmpickme`);
  const workload = new Deno.Command(requireCommand("setsid", "util-linux"), {
    args: [`${dir}/u2cmpickme`, "300"],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const q = (s: string) => `'${s}'`;
  const command =
    `cd ${q(ROOT)} && NO_COLOR=1 ${q(Deno.execPath())} run -A main.ts ${sub} --config ` +
    `${q(config)} ${extraArgs}; echo "EXIT=$?"; sleep 120`;
  return { dir, config, workload, workloadPid: workload.pid, command };
}

async function cleanup(f: Fixture, tmux: Tmux): Promise<void> {
  tmux.kill();
  try {
    f.workload.kill("SIGKILL");
  } catch { /* gone */ }
  await f.workload.status;
  Deno.removeSync(f.dir, { recursive: true });
}

function waitForComm(pid: number, name: string): void {
  for (let i = 0; i < 50; i++) {
    try {
      if (Deno.readTextFileSync(`/proc/${pid}/comm`).trim() === name) return;
    } catch { /* not yet */ }
    const until = Date.now() + 20;
    while (Date.now() < until) { /* spin briefly */ }
  }
  throw new Error(`pid ${pid} never became ${name}`);
}

Deno.test("on a terminal, pick prompts for workload, peer, engine and policy, then confirms", async () => {
  requireCommand("tmux");
  const f = fixture();
  waitForComm(f.workloadPid, "u2cmpickme");
  const tmux = new Tmux(f.command);
  try {
    const list = await tmux.waitFor(/Workload to migrate/);
    assert.match(list, /pid \d+\s+[\d.]+ MiB/, "trees show pid and RSS");
    tmux.keys("u2cmpickme");
    await tmux.waitFor(new RegExp(`u2cmpickme\\s+pid ${f.workloadPid}`));
    tmux.keys("Enter");
    const peers = await tmux.waitFor(/Destination peer/);
    assert.match(peers, /edge-b\s+127\.0\.0\.1:7171/);
    assert.match(peers, /edge-c\s+127\.0\.0\.1:7272/);
    tmux.keys("Down", "Enter");
    const engines = await tmux.waitFor(/Migration engine/);
    assert.match(engines, /auto\s+\(recommended: config default\)/);
    tmux.keys("Enter");
    await tmux.waitFor(/Stop policy/);
    tmux.keys("phaul");
    await tmux.waitFor(/❯ phaul|> phaul/);
    tmux.keys("Enter");
    await tmux.waitFor(new RegExp(`Migrate pid ${f.workloadPid} to edge-c with auto/phaul\\?`));
    tmux.keys("y", "Enter");
    const done = await tmux.waitFor(/EXIT=\d+/);
    assert.match(done, /EXIT=0/);
    const json = done.split("\n").find((l) => l.startsWith('{"pid"'));
    assert.ok(json, done);
    assert.deepEqual(JSON.parse(json), {
      pid: f.workloadPid,
      to: "edge-c",
      engine: "auto",
      policy: "phaul",
    });
  } finally {
    await cleanup(f, tmux);
  }
});

Deno.test("Ctrl-C at a prompt exits 130 and starts nothing", async () => {
  requireCommand("tmux");
  const f = fixture("--pid 1");
  const tmux = new Tmux(f.command);
  try {
    await tmux.waitFor(/Destination peer/);
    tmux.keys("C-c");
    const done = await tmux.waitFor(/EXIT=\d+/);
    assert.match(done, /EXIT=130/);
    assert.match(done, /interrupted: nothing was started/);
    assert.doesNotMatch(done, /\{"pid"/);
  } finally {
    await cleanup(f, tmux);
  }
});

Deno.test("declining the confirmation exits 130", async () => {
  requireCommand("tmux");
  const f = fixture(`--pid ${Deno.pid} --engine delta --policy u2c`);
  const tmux = new Tmux(f.command);
  try {
    await tmux.waitFor(/Destination peer/);
    tmux.keys("Enter");
    await tmux.waitFor(/Migrate pid \d+ to edge-b with delta\/u2c\?/);
    tmux.keys("n", "Enter");
    const done = await tmux.waitFor(/EXIT=\d+/);
    assert.match(done, /EXIT=130/);
    assert.match(done, /not confirmed: nothing was started/);
  } finally {
    await cleanup(f, tmux);
  }
});

Deno.test("without a terminal nothing prompts: missing flags are named, exit 2", () => {
  const run = (args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "main.ts", "pick", ...args],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).outputSync();
  const none = run([]);
  assert.equal(none.code, 2);
  assert.match(
    new TextDecoder().decode(none.stderr),
    /missing --pid <pid>, --to <peer> \(no terminal/,
  );
  const one = run(["--to", "edge-b"]);
  assert.equal(one.code, 2);
  assert.match(
    new TextDecoder().decode(one.stderr),
    /missing --pid <pid> \(no terminal to ask on: pass it as a flag\)/,
  );
  const all = run(["--pid", String(Deno.pid), "--to", "edge-b"]);
  assert.equal(all.code, 0, new TextDecoder().decode(all.stderr));
  assert.deepEqual(JSON.parse(new TextDecoder().decode(all.stdout)), {
    pid: Deno.pid,
    to: "edge-b",
    engine: "auto",
    policy: "u2c",
  });
});

Deno.test("u2cm migrate on a terminal prompts for what is missing; declining starts nothing", async () => {
  requireCommand("tmux");
  const f = fixture("", "migrate");
  const state = `${f.dir}/state`;
  const tmux = new Tmux(f.command.replace(" migrate ", ` migrate --state-dir '${state}' `));
  waitForComm(f.workloadPid, "u2cmpickme");
  try {
    await tmux.waitFor(/Workload to migrate/);
    tmux.keys("u2cmpickme");
    await tmux.waitFor(new RegExp(`u2cmpickme\\s+pid ${f.workloadPid}`));
    tmux.keys("Enter");
    await tmux.waitFor(/Destination peer/);
    tmux.keys("Enter");
    await tmux.waitFor(/Migration engine/);
    tmux.keys("Enter");
    await tmux.waitFor(/Stop policy/);
    tmux.keys("Enter");
    await tmux.waitFor(new RegExp(`Migrate pid ${f.workloadPid} to edge-b with auto/u2c\\?`));
    tmux.keys("n", "Enter");
    const done = await tmux.waitFor(/EXIT=\d+/);
    assert.match(done, /EXIT=130/);
    assert.match(done, /not confirmed: nothing was started/);
    let records: string[] = [];
    try {
      records = [...Deno.readDirSync(`${state}/migrations`)].map((e) => e.name);
    } catch { /* no migrations dir: nothing recorded */ }
    assert.deepEqual(records, []);
  } finally {
    await cleanup(f, tmux);
  }
});

Deno.test("u2cm init on a terminal is a wizard: state dir, identity, first pinned peer", async () => {
  requireCommand("tmux");
  const dir = Deno.makeTempDirSync({ prefix: "u2cm-init-wizard-" });
  const other = await initIdentity(`${dir}/other`);
  const q = (s: string) => `'${s}'`;
  const tmux = new Tmux(
    `cd ${q(ROOT)} && NO_COLOR=1 U2CM_STATE_DIR=${q(`${dir}/node`)} ${q(Deno.execPath())} ` +
      `run -A main.ts init; echo "EXIT=$?"; sleep 120`,
  );
  try {
    await tmux.waitFor(/State directory for this node/);
    tmux.keys("Enter");
    await tmux.waitFor(/Pin a peer now/);
    tmux.keys("y", "Enter");
    await tmux.waitFor(/Peer name/);
    tmux.keys("edge-b", "Enter");
    await tmux.waitFor(/agent address HOST:PORT/);
    tmux.keys("127.0.0.1:7171", "Enter");
    await tmux.waitFor(/Its public key/);
    tmux.keys(other.publicKey, "Enter");
    await tmux.waitFor(/certificate fingerprint/);
    tmux.keys("Enter");
    const done = await tmux.waitFor(/EXIT=\d+/);
    assert.match(done, /EXIT=0/);
    assert.match(done, /pinned peer edge-b/);
    assert.ok(hasIdentity(`${dir}/node`), "identity written");
    const peers = JSON.parse(Deno.readTextFileSync(`${dir}/node/peers.json`));
    assert.equal(JSON.stringify(peers).includes(other.publicKey), true);
  } finally {
    tmux.kill();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("on a terminal without --pid or --container, the workload prompt lists running containers too, and picking one migrates the container", async () => {
  requireCommand("tmux");
  const node = makePodmanNode({ tag: "pick" });
  const img = await memcheckImage(node);
  await node.run([
    "run",
    "-d",
    "--name",
    "u2cmct",
    "--network",
    "none",
    "--cgroup-parent",
    node.cgroupParent,
    img.name,
    "/bin/memcheck",
    "--mib",
    "4",
  ]);
  const info = (await inspectPodmanContainer(node, "u2cmct"))!;
  const env = Object.entries(node.env).map(([k, v]) => `${k}='${v}'`).join(" ");
  const f = fixture();
  const tmux = new Tmux(`export ${env}; ${f.command}`);
  try {
    const list = await tmux.waitFor(/Workload to migrate/);
    assert.match(
      list,
      new RegExp(`u2cmct\\s+podman container ${info.id.slice(0, 12)}\\s+pid ${info.initPid}`),
    );
    assert.match(list, /pid \d+\s+[\d.]+ MiB/, "process trees are still listed");
    tmux.keys("Enter"); // containers come first
    await tmux.waitFor(/Destination peer/);
    tmux.keys("Enter");
    await tmux.waitFor(/Migration engine/);
    tmux.keys("Enter");
    await tmux.waitFor(/Stop policy/);
    tmux.keys("Enter");
    await tmux.waitFor(/Migrate container u2cmct \(podman\) to edge-b/);
    tmux.keys("y", "Enter");
    const done = await tmux.waitFor(/EXIT=\d+/);
    assert.match(done, /EXIT=0/);
    // the JSON line is wider than the pane: join the wrapped lines
    const json = /\{"pid".*?\}\}/.exec(done.split("\n").map((l) => l.trimEnd()).join(""))?.[0];
    assert.ok(json, done);
    const picked = JSON.parse(json);
    assert.equal(picked.pid, info.initPid);
    assert.deepEqual(picked.container, { id: info.id, name: "u2cmct", runtime: "podman" });
  } finally {
    await cleanup(f, tmux);
    await node.cleanup();
  }
});
