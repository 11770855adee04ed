/**
 * Test helpers: pairs of initialised state directories that pin each other, and deterministic
 * page sets.
 *
 * @module
 */
import { initIdentity } from "../../../src/peer/identity.ts";
import { addPeer } from "../../../src/peer/peers.ts";

/** Two nodes' state dirs: `a` (source) pins `b` as "b" at `address`; `b` pins `a` as "a". */
export interface NodePair {
  root: string;
  a: string;
  b: string;
  aKey: string;
  bKey: string;
  bFingerprint: string;
  /** Point a's pin of b at a new address. */
  pinB(address: string): void;
  cleanup(): void;
}

/** Make two initialised nodes that pin each other (b's address is set with `pinB`). */
export async function makeNodePair(): Promise<NodePair> {
  const root = Deno.makeTempDirSync({ prefix: "u2cm-peer-" });
  const a = `${root}/a`, b = `${root}/b`;
  const ia = await initIdentity(a);
  const ib = await initIdentity(b);
  addPeer(b, { name: "a", address: "127.0.0.1:1", publicKey: ia.publicKey });
  return {
    root,
    a,
    b,
    aKey: ia.publicKey,
    bKey: ib.publicKey,
    bFingerprint: ib.certFingerprint,
    pinB(address: string) {
      addPeer(a, {
        name: "b",
        address,
        publicKey: ib.publicKey,
        certFingerprint: ib.certFingerprint,
      }, true);
    },
    cleanup() {
      Deno.removeSync(root, { recursive: true });
    },
  };
}

/** Fill `out` with the deterministic content of page (`pid`, `addr`) in `round`. */
export function fillPage(out: Uint8Array, pid: number, addr: number, round: number): void {
  const words = new Uint32Array(out.buffer, out.byteOffset, out.length >>> 2);
  let x = (pid * 2654435761 + addr / 4096 * 40503 + round * 97 + 1) >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
}

/** Pages `[first, first + n)` of a process, as a batch. */
export function makeBatch(pid: number, firstAddr: number, n: number, round: number) {
  const addresses = Array.from({ length: n }, (_, i) => firstAddr + i * 4096);
  const data = new Uint8Array(n * 4096);
  for (let i = 0; i < n; i++) {
    fillPage(data.subarray(i * 4096, (i + 1) * 4096), pid, addresses[i], round);
  }
  return { pid, addresses, data };
}
