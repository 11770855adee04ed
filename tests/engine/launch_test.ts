import assert from "node:assert/strict";
import { nsPids } from "../../src/tracker/proc.ts";
import { startMemcheck } from "../criu/support.ts";

Deno.test("an isolated workload is PID 1 and session leader of its namespace, with only stdio open", async () => {
  const w = await startMemcheck(["--mib", "1"]);
  try {
    assert.deepEqual(nsPids(w.pid).slice(1), [1]);
    const stat = Deno.readTextFileSync(`/proc/${w.pid}/stat`).split(") ")[1].split(" ");
    assert.equal(Number(stat[3]), w.pid, "session id is its own pid");
    // Descriptors inherited without close-on-exec (e.g. from the shell running the tests) are
    // closed: CRIU would otherwise have to dump and restore them.
    const fds = [...Deno.readDirSync(`/proc/${w.pid}/fd`)].map((e) => e.name).sort();
    assert.deepEqual(fds, ["0", "1", "2"]);
    assert.equal(Deno.readLinkSync(`/proc/${w.pid}/fd/1`), w.out);
  } finally {
    await w.stop();
    Deno.removeSync(w.dir, { recursive: true });
  }
});
