import assert from "node:assert/strict";
import {
  KEEP_RECORDS,
  listMigrations,
  MigrationJournal,
  recordPath,
  writeRecord,
} from "../../src/engine/journal.ts";

Deno.test("the journal keeps the last 50 finished records and every unfinished one", () => {
  const state = Deno.makeTempDirSync({ prefix: "u2cm-state-" });
  try {
    const base = { pid: 1, sourcePids: [1], peer: "b", engine: "delta" as const, policy: "u2c" };
    for (let i = 0; i < 60; i++) {
      const j = new MigrationJournal(state, { ...base, id: `m${i}`, phase: "precopy" });
      // The first five stay unfinished; the rest end.
      if (i >= 5) j.update({ phase: i % 2 ? "done" : "rolled-back", peerCleared: true });
      // Distinct, ordered start times.
      writeRecord(recordPath(state, `m${i}`), {
        ...j.record,
        startedAt: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
      });
    }
    new MigrationJournal(state, { ...base, id: "last", phase: "precopy" });
    const left = listMigrations(state);
    assert.equal(left.length, KEEP_RECORDS);
    for (const id of ["m0", "m1", "m2", "m3", "m4", "last", "m59"]) {
      assert.ok(left.some((r) => r.id === id), `${id} was pruned`);
    }
    assert.ok(!left.some((r) => r.id === "m5"), "the oldest finished record stays");
    // Records are written durably and atomically: no temporary file is left.
    assert.deepEqual(
      [...Deno.readDirSync(`${state}/migrations`)].filter((e) => e.name.endsWith(".tmp")),
      [],
    );
  } finally {
    Deno.removeSync(state, { recursive: true });
  }
});
