import assert from "node:assert/strict";
import {
  decodeCore,
  processPagesFiles,
  readDumpDir,
  shmemMappings,
  TASK_DEAD,
} from "../../src/criu/images/mod.ts";
import { criuDump } from "../../src/criu/run.ts";
import { requireCriuBinary, startWorkload } from "./support.ts";

Deno.test("a dump with a zombie, shared anonymous memory, SysV shm and a memfd is read whole", async () => {
  requireCriuBinary();
  const w = await startWorkload(
    "shapes",
    ["--shared", "--sysv", "--memfd", "--zombie", "--threads", "2", "--mib", "1"],
    ["unshare", "--ipc", "--"],
  );
  const dir = Deno.makeTempDirSync({ prefix: "u2cm-dump-" });
  try {
    await w.waitFor(/^tick 2 /);
    await criuDump({ pid: w.pid, dir, leave: "killed" });
    const dump = await readDumpDir(dir);
    // root, the child sharing memory, and the zombie (a core image only)
    assert.equal(dump.pstree.length, 3);
    assert.equal(dump.memory.length, 2);
    assert.equal(dump.zombies.length, 1);
    assert.equal(
      decodeCore(Deno.readFileSync(`${dir}/core-${dump.zombies[0]}.img`)).taskState,
      TASK_DEAD,
    );
    // the shared region (256 pages) and its control page, the SysV segment, the memfd
    const sizes = dump.shmem.map((s) => s.offsets.length).sort((a, b) => a - b);
    assert.deepEqual(sizes, [1, 256, 256, 256]);
    // every shared object is found mapped in a process (memfd through files.img + memfd.img)
    const mapped = new Set((await shmemMappings(dump)).map((m) => m.shmemId));
    for (const s of dump.shmem) assert.ok(mapped.has(s.id), `shared object ${s.id} unmapped`);
    // the destination rebuilds only the processes' pages files; the shared ones travel
    const rebuilt = await processPagesFiles(dir);
    assert.deepEqual([...rebuilt].sort(), dump.memory.map((m) => m.pagesFile).sort());
    for (const s of dump.shmem) assert.ok(!rebuilt.has(s.pagesFile));
    // threads register rseq areas; the read-back masks them
    const root = dump.pstree[0];
    assert.equal(root.threads.length, 3);
    const rseq = root.threads.map((t) =>
      decodeCore(Deno.readFileSync(`${dir}/core-${t}.img`)).rseq
    );
    assert.ok(rseq.every((r) => r !== undefined && r.size >= 32), JSON.stringify(rseq));
  } finally {
    await w.stop();
    Deno.removeSync(dir, { recursive: true });
    Deno.removeSync(w.dir, { recursive: true });
  }
});
