import assert from "node:assert/strict";
import { hashFrozenRuns, UnreadablePageError } from "../../src/engine/live_hashes.ts";
import { PageReader } from "../../src/engine/page_reader.ts";
import { pageHashes } from "../../src/native/page_hash.ts";
import { startMemcheck } from "../criu/support.ts";

/** The largest private writable mapping of `pid`, as a run of pages. */
function largestRun(pid: number): { vaddr: number; nrPages: number } {
  let best = { vaddr: 0, nrPages: 0 };
  for (const line of Deno.readTextFileSync(`/proc/${pid}/maps`).split("\n")) {
    if (!line.includes(" rw-p ")) continue;
    const [a, b] = line.split(" ")[0].split("-").map((x) => parseInt(x, 16));
    if ((b - a) / 4096 > best.nrPages) best = { vaddr: a, nrPages: (b - a) / 4096 };
  }
  return best;
}

Deno.test("hashFrozenRuns: the hashes of a stopped process's pages, on every core, equal reading and hashing them one batch at a time", async () => {
  const w = await startMemcheck(["--mib", "48"]);
  try {
    await w.waitFor(/^tick 3 /);
    Deno.kill(w.pid, "SIGSTOP");
    const run = largestRun(w.pid);
    assert.ok(run.nrPages >= 48 * 256, `a 48 MiB mapping (got ${run.nrPages} pages)`);
    // Two runs, cut unevenly (more than one 32 MiB chunk in all, a run split across workers).
    const runs = [
      { vaddr: run.vaddr, nrPages: 1000 },
      { vaddr: run.vaddr + 5000 * 4096, nrPages: run.nrPages - 5000 },
    ];
    const got = await hashFrozenRuns(w.pid, runs, { workers: 3 });
    const reader = new PageReader(w.pid);
    try {
      let at = 0;
      for (const r of runs) {
        const addresses = Array.from({ length: r.nrPages }, (_, i) => r.vaddr + i * 4096);
        const data = new Uint8Array(r.nrPages * 4096);
        assert.ok(reader.read(addresses, data).every((x) => x));
        assert.deepEqual(got.subarray(at, at + r.nrPages * 16), pageHashes(data));
        at += r.nrPages * 16;
      }
      assert.equal(at, got.length);
    } finally {
      reader.close();
    }
    // A page that cannot be read (below the mapping nothing is mapped at 0x1000) is an error
    // that names it, never a hash.
    await assert.rejects(
      hashFrozenRuns(w.pid, [{ vaddr: run.vaddr, nrPages: 4 }, { vaddr: 0x1000, nrPages: 2 }]),
      (e) => e instanceof UnreadablePageError && e.address === 0x1000 && e.pid === w.pid,
    );
  } finally {
    Deno.kill(w.pid, "SIGCONT");
    await w.stop();
    Deno.removeSync(w.dir, { recursive: true });
  }
});
