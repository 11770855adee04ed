import assert from "node:assert/strict";
import { ResendBuffer, sparePool } from "../../src/peer/resend_buffer.ts";

const MiB = 2 ** 20;

Deno.test("acknowledged buffers are reused by the next window; unacknowledged ones never", () => {
  sparePool.clear();
  const first = new ResendBuffer();
  const wires = [1, 2, 3].map((seq) => {
    const wire = new Uint8Array(new ArrayBuffer(MiB + 16), 0, MiB).fill(seq);
    first.push(seq, wire);
    return wire;
  });
  assert.equal(first.inflight, 3 * MiB);
  assert.equal(first.spare(MiB), undefined, "nothing acknowledged yet");
  assert.equal(first.ack(2), 2 * MiB);
  assert.equal(first.inflight, MiB);
  assert.equal(sparePool.size, 2);
  // A channel that failed drops its unacknowledged chunk: a link may still be writing it.
  first.clear();
  assert.equal(sparePool.size, 2);
  // The next migration's window starts on the buffers the first one's acknowledgements freed.
  const second = new ResendBuffer();
  const reused = [second.spare(MiB), second.spare(MiB)];
  assert.deepEqual(
    new Set(reused),
    new Set([wires[0].buffer, wires[1].buffer]),
  );
  assert.equal(second.spare(MiB), undefined);
  assert.ok(!reused.includes(wires[2].buffer as ArrayBuffer));
  // Small chunks and buffers too small for the size asked are not taken.
  second.push(1, new Uint8Array(1024));
  second.ack(1);
  assert.equal(sparePool.size, 0);
  assert.equal(second.spare(1024), undefined);
  sparePool.put(new ArrayBuffer(MiB));
  assert.equal(second.spare(MiB), undefined, "needs 16 bytes of room beyond the chunk");
  sparePool.clear();
});

Deno.test("a window resends, in order, what the current link has not taken", () => {
  const w = new ResendBuffer();
  for (let seq = 1; seq <= 4; seq++) w.push(seq, new Uint8Array([seq]));
  w.markSent(4);
  assert.equal(w.nextUnsent(), undefined);
  w.ack(1);
  w.resetSent(2); // a new link; the agent holds up to 2
  assert.equal(w.nextUnsent()?.seq, 3);
  w.markSent(3);
  assert.equal(w.nextUnsent()?.seq, 4);
});
