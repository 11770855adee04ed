import assert from "node:assert/strict";
import { dumpArgs, restoreArgs } from "../../src/criu/run.ts";
import { PE_LAZY, PE_PARENT, PE_PRESENT } from "../../src/criu/images/mod.ts";
import { MigrationJournal, recoverMigrations } from "../../src/engine/journal.ts";
import { chainLink, flattenParents } from "../../src/engine/predump.ts";
import { processState } from "../../src/tracker/proc.ts";
import { chooseEngine, EngineUnavailableError } from "../../src/engine/select.ts";
import { subtractPages, unionPages } from "../../src/engine/pageset.ts";
import { EngineRestoreRequestSchema } from "../../src/engine/restore.ts";
import { requireCriuBinary, startMemcheck } from "../criu/support.ts";

Deno.test("pre-dump chain: each round's parent is the previous round's directory", () => {
  assert.deepEqual(chainLink("/w", 0), { dir: "/w/pre-0", prevImagesDir: undefined });
  assert.deepEqual(chainLink("/w", 3), { dir: "/w/pre-3", prevImagesDir: "../pre-2" });
  const args = dumpArgs({ pid: 7, ...chainLink("/w", 1), trackMem: true }, "pre-dump");
  assert.deepEqual(args.slice(0, 5), ["pre-dump", "-t", "7", "-D", "/w/pre-1"]);
  assert.ok(args.includes("--track-mem"));
  assert.equal(args[args.indexOf("--prev-images-dir") + 1], "../pre-0");
  assert.ok(!args.includes("--leave-stopped"), "pre-dump leaves the tree running by itself");
});

Deno.test("dump and restore arguments: leave stopped, lazy page server, pidfile", () => {
  const lazy = dumpArgs({
    pid: 9,
    dir: "/d",
    lazyPages: true,
    listen: { address: "10.0.0.1", port: 4000 },
  });
  assert.ok(lazy.includes("--leave-stopped") && lazy.includes("--lazy-pages"));
  assert.equal(lazy[lazy.indexOf("--address") + 1], "10.0.0.1");
  assert.ok(!lazy.includes("--page-server"), "a lazy dump serves pages itself");
  const r = restoreArgs({ dir: "/d", lazyPages: true });
  assert.deepEqual(r.slice(0, 4), ["restore", "-d", "-D", "/d"]);
  assert.equal(r[r.indexOf("--pidfile") + 1], "/d/restored.pid");
  assert.ok(r.includes("--lazy-pages"));
});

Deno.test("flattening a final dump's pagemap turns parent runs into present runs", () => {
  const pm = {
    pagesId: 2,
    entries: [
      { vaddr: 0x1000, nrPages: 2, flags: PE_PARENT },
      { vaddr: 0x3000, nrPages: 1, flags: PE_PRESENT },
      { vaddr: 0x9000, nrPages: 4, flags: PE_PARENT | PE_LAZY },
    ],
  };
  assert.deepEqual(flattenParents(pm).entries.map((e) => e.flags), [
    PE_PRESENT,
    PE_PRESENT,
    PE_PRESENT | PE_LAZY,
  ]);
});

Deno.test("engine choice: auto follows the host; forcing an impossible engine says why", () => {
  assert.equal(chooseEngine("auto", "u2c", { softDirty: false, lazy: true }), "delta");
  assert.equal(chooseEngine("auto", "u2c", { softDirty: true, lazy: true }), "predump");
  assert.equal(chooseEngine("auto", "hybrid", { softDirty: false, lazy: true }), "hybrid");
  assert.equal(chooseEngine("auto", "hybrid", { softDirty: false, lazy: false }), "delta");
  assert.throws(
    () => chooseEngine("predump", "u2c", { softDirty: false, lazy: true }),
    EngineUnavailableError,
  );
  assert.throws(
    () => chooseEngine("lazy", "u2c", { softDirty: true, lazy: false }),
    /doctor --fix/,
  );
});

Deno.test("page sets: union and difference keep indices sorted and distinct", () => {
  const a = new Map([[1, Uint32Array.from([1, 3, 5])], [2, Uint32Array.from([0])]]);
  const b = new Map([[1, Uint32Array.from([2, 3, 9])]]);
  assert.deepEqual([...unionPages(a, b).get(1)!], [1, 2, 3, 5, 9]);
  assert.deepEqual([...subtractPages(a, b).get(1)!], [1, 5]);
  assert.deepEqual([...subtractPages(a, b).get(2)!], [0]);
});

Deno.test("restore requests are validated: unknown keys and bad addresses are refused", () => {
  assert.ok(EngineRestoreRequestSchema.safeParse({ engine: "delta", rebuildPages: true }).success);
  assert.ok(
    !EngineRestoreRequestSchema.safeParse({ engine: "delta", rebuildPages: true, x: 1 }).success,
  );
  assert.ok(
    !EngineRestoreRequestSchema.safeParse({
      engine: "lazy",
      rebuildPages: false,
      lazy: { address: "host; rm -rf /", port: 1 },
    }).success,
  );
});

Deno.test("recovery resumes a source left stopped by a migration that died while frozen", async () => {
  requireCriuBinary();
  const w = await startMemcheck(["--mib", "2"]);
  const state = Deno.makeTempDirSync({ prefix: "u2cm-state-" });
  try {
    const j = new MigrationJournal(state, {
      id: "dead1",
      pid: w.pid,
      sourcePids: [w.pid],
      peer: "b",
      engine: "delta",
      policy: "u2c",
      phase: "precopy",
    });
    Deno.kill(w.pid, "SIGSTOP"); // what a dump with --leave-stopped leaves behind
    j.update({ phase: "frozen" });
    for (let i = 0; i < 100 && processState(w.pid) !== "T"; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    // While its u2cm process runs, the migration is in progress: recovery must not touch it.
    assert.deepEqual(recoverMigrations(state).resumed, []);
    assert.equal(processState(w.pid), "T");
    // The u2cm process died: point the record at a process that has exited.
    const gone = new Deno.Command("true").spawn();
    await gone.status;
    const file = `${state}/migrations/dead1.json`;
    const rec = JSON.parse(Deno.readTextFileSync(file));
    Deno.writeTextFileSync(file, JSON.stringify({ ...rec, owner: { pid: gone.pid, start: 1 } }));
    const { resumed } = recoverMigrations(state);
    assert.deepEqual(resumed.map((r) => r.id), ["dead1"]);
    assert.equal(resumed[0].phase, "rolled-back");
    const mark = w.lines();
    await w.waitFor(/^tick /, 5000, mark);
    assert.equal(recoverMigrations(state).resumed.length, 0, "recovery is idempotent");
  } finally {
    await w.stop();
    Deno.removeSync(state, { recursive: true });
    Deno.removeSync(w.dir, { recursive: true });
  }
});
