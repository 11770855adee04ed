/**
 * Test helper: deterministic, compressible pages that look like a key-value store's memory
 * (redis-like entries: a key, a short header, a value of words and digits).
 *
 * @module
 */

const WORDS = ["user", "session", "cart", "item", "price", "token", "last_seen", "region", "edge"];

/** `n` pages of redis-like text for `pid`, starting at entry `first` (deterministic). */
export function textPages(n: number, first = 0): Uint8Array {
  const out = new Uint8Array(n * 4096);
  const enc = new TextEncoder();
  let x = (first * 2654435761 + 12345) >>> 0 || 1;
  const rnd = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  let at = 0;
  for (let k = first; at < out.length; k++) {
    const value = Array.from(
      { length: 3 + (rnd() % 5) },
      () => `${WORDS[rnd() % WORDS.length]}=${rnd() % 100000}`,
    ).join(";");
    const entry = enc.encode(`\u0000\u0003key:${String(k).padStart(8, "0")}\u0000${value}\u0000`);
    out.set(entry.subarray(0, Math.min(entry.length, out.length - at)), at);
    at += entry.length;
  }
  return out;
}
