import assert from "node:assert/strict";
import { command, dumpArgs, restoreArgs } from "../../src/criu/run.ts";
import { PE_LAZY, PE_PARENT, PE_PRESENT } from "../../src/criu/images/mod.ts";
import { addToPageSet, chainLink, flattenParents } from "../../src/engine/rounds_predump.ts";
import { engineNameOf, EngineUnavailableError, finalOf, planOf } from "../../src/engine/select.ts";
import { createPolicy, withRoundCap } from "../../src/policy/mod.ts";
import { subtractPages, unionPages } from "../../src/engine/pageset.ts";
import { EngineRestoreRequestSchema } from "../../src/engine/restore.ts";
import { freezePathOf } from "../../src/engine/freeze_path.ts";
import { postCopyReport } from "../../src/engine/final_post_copy.ts";

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
  const stopped = restoreArgs({ dir: "/d", leaveStopped: true });
  assert.ok(stopped.includes("--leave-stopped"), "the destination restores stopped until commit");
  assert.deepEqual(command({ dir: "/d", criu: "/c", dieWithParent: true }, ["restore"]), [
    "setpriv",
    ["--pdeathsig", "KILL", "/c", "restore"],
  ]);
  const [guard, guarded] = command({ dir: "/d", criu: "/c", guardTree: true }, ["restore"]);
  assert.match(guard, /u2cm-tree-guard/, "a restore runs under the tree guard");
  assert.deepEqual(guarded, [String(Deno.pid), "/c", "restore"]);
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

Deno.test("engine names are part combinations; the policy's final phase is obeyed where allowed", () => {
  const hashHost = { softDirty: false, lazy: true };
  const auto = planOf("auto", hashHost);
  assert.equal(auto.rounds, "hash");
  assert.equal(finalOf(auto, "post-copy"), "post-copy");
  assert.equal(engineNameOf(auto, "post-copy"), "hybrid");
  assert.equal(engineNameOf(auto, "stop-and-copy"), "delta");
  // A soft-dirty host runs the pre-dump chain under every policy (same predictor and deferral).
  const sd = planOf("auto", { softDirty: true, lazy: false });
  assert.equal(sd.rounds, "predump");
  assert.equal(finalOf(sd, "post-copy"), "stop-and-copy", "no lazy restore: stop-and-copy");
  assert.equal(engineNameOf(sd, "stop-and-copy"), "predump");
  const hybrid = planOf("hybrid", hashHost);
  assert.equal(finalOf(hybrid, "stop-and-copy"), "stop-and-copy");
  assert.equal(finalOf(hybrid, "post-copy"), "post-copy");
  assert.equal(finalOf(planOf("delta", hashHost), "post-copy"), "stop-and-copy");
  assert.equal(planOf("lazy", hashHost).rounds, "none");
  assert.throws(() => planOf("predump", { softDirty: false, lazy: true }), EngineUnavailableError);
  assert.throws(() => planOf("lazy", { softDirty: true, lazy: false }), /doctor --fix/);
});

Deno.test("scan-and-copy is the default freeze after hash rounds where a lazy dump works; U2CM_FREEZE=dump falls back", () => {
  const lazyHost = { softDirty: false, lazy: true };
  assert.equal(planOf("delta", lazyHost).freeze, "scan");
  assert.equal(planOf("auto", lazyHost).freeze, "scan");
  assert.equal(planOf("hybrid", lazyHost).freeze, "scan");
  assert.equal(planOf("delta", { softDirty: false, lazy: false }).freeze, undefined);
  assert.equal(planOf("auto", { softDirty: true, lazy: true }).freeze, undefined, "pre-dump chain");
  const before = Deno.env.get("U2CM_FREEZE");
  try {
    Deno.env.delete("U2CM_FREEZE");
    assert.equal(freezePathOf(planOf("delta", lazyHost)), "scan");
    assert.equal(freezePathOf(planOf("delta", { softDirty: false, lazy: false })), "dump");
    Deno.env.set("U2CM_FREEZE", "dump");
    assert.equal(freezePathOf(planOf("delta", lazyHost)), "dump");
  } finally {
    if (before === undefined) Deno.env.delete("U2CM_FREEZE");
    else Deno.env.set("U2CM_FREEZE", before);
  }
});

Deno.test("post-copy is ok only when the destination checked every lazy page and none differed", () => {
  const report = { requests: 10, checkedPages: 100, expectedPages: 100, closed: true, faults: 4 };
  const ok = postCopyReport(report, 100);
  assert.deepEqual(
    { ...ok, linkRisk: undefined },
    { lazyPages: 100, checkedPages: 100, requests: 10, remoteFaults: 4, linkRisk: undefined },
  );
  assert.match(ok.linkRisk, /link/);
  assert.throws(() => postCopyReport(undefined, 100), /not verified: the destination reported no/);
  assert.throws(() => postCopyReport({ ...report, checkedPages: 99 }, 100), /99 of 100/);
  assert.throws(() => postCopyReport({ ...report, closed: false }, 100), /did not end cleanly/);
  assert.throws(
    () => postCopyReport({ ...report, mismatch: "pid 1: page 0x1000 differs" }, 100),
    /verification failed at the destination: pid 1: page 0x1000 differs/,
  );
});

Deno.test("a round cap lives in the policy: after N rounds the answer is the final phase", () => {
  const state = (n: number) => ({
    rounds: Array.from({ length: n }, (_, index) => ({
      index,
      pagesSent: 1,
      pagesDeferred: 0,
      pagesSkipped: 0,
      pagesDirtied: 1,
      durationMs: 1,
      bytesSent: 1,
    })),
    pendingPages: 100,
    pending: new Map(),
    link: { bandwidthBps: 1e9, rttMs: 1 },
    pageSize: 4096,
    wireBytesPerPage: 4120,
    totalPages: 1000,
    throttlePercent: 0,
    downtimeSlack: 0.1,
  });
  const capped = withRoundCap(createPolicy("fixed-1000"), 3);
  assert.equal(capped.name, "fixed-1000");
  assert.equal(capped.decide(state(2)).action, "continue");
  assert.equal(capped.decide(state(3)).action, "stop-and-copy");
  assert.equal(withRoundCap(createPolicy("post-copy"), 0).decide(state(0)).action, "post-copy");
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

Deno.test("pre-dump pages map to the tracker's page names, so the predictor and deferral see them", () => {
  const m = (id: number, start: number, pages: number) => ({
    id,
    pid: 7,
    start,
    end: start + pages * 4096,
    perms: "rw-p",
    offset: 0,
    path: "",
    kind: "anon" as const,
  });
  const lists = new Map<number, number[]>();
  const maps = [m(1, 0x10000, 4), m(2, 0x40000, 2)];
  // 0x30000 lies in no tracked mapping (e.g. the vdso): it is sent, but has no page name.
  addToPageSet(lists, maps, [0x10000, 0x13000, 0x30000, 0x41000, 0x90000]);
  assert.deepEqual([...lists], [[1, [0, 3]], [2, [1]]]);
});
