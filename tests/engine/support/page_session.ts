/**
 * The daemon's side of a local page server session for the server tests: a slot file and its
 * manifest ({@linkcode fixture}), and one session of CRIU's page-server protocol
 * ({@linkcode session}).
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ComposeResult } from "../../../src/engine/lazy_images.ts";
import {
  decodeManifest,
  ManifestBuilder,
  type PageManifest,
} from "../../../src/engine/manifest.ts";
import { pageHashes } from "../../../src/native/page_hash.ts";

/** Bytes per page. */
export const P = 4096;

/** A slot file of `n` pages at 0x10000… (page i filled with i + 1), composed and its manifest. */
export function fixture(n: number) {
  const dir = Deno.makeTempDirSync({ prefix: "u2cm-lps-" });
  const data = new Uint8Array(n * P);
  for (let i = 0; i < n; i++) data.fill(i + 1, i * P, (i + 1) * P);
  const file = `${dir}/pages-1.img`;
  Deno.writeFileSync(file, data);
  const addresses = Array.from({ length: n }, (_, i) => 0x10000 + i * P);
  const hashes = pageHashes(data);
  const composed: ComposeResult = {
    inPlace: n,
    copied: 0,
    processes: new Map([[5, {
      addresses,
      fileCount: n,
      hashes,
      covered: new Set<number>(),
      page: () => Promise.resolve(new Uint8Array(P)),
      pagesFile: file,
    }]]),
  };
  const b = new ManifestBuilder();
  b.add("process", 5, addresses, hashes);
  // The manifest as the destination reads it.
  const manifest: PageManifest = decodeManifest(b.encode());
  return { dir, file, composed, manifest };
}

/**
 * The daemon's side of one session (CRIU 4.1: 24-byte iovs; 4.2: 32): GET each range, then
 * CLOSE (or, with `leave`, close the connection without it).
 */
export async function session(
  port: number,
  gets: [number, number][],
  { iovBytes = 24, leave = false }: { iovBytes?: 24 | 32; leave?: boolean } = {},
) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const answers: { nr: number; vaddr: number; data: Uint8Array }[] = [];
  let status: number | undefined;
  try {
    const read = async (n: number) => {
      const out = new Uint8Array(n);
      let got = 0;
      while (got < n) {
        const r = await conn.read(out.subarray(got));
        if (r === null) return undefined;
        got += r;
      }
      return out;
    };
    const wide = iovBytes === 32;
    for (const [vaddr, nr] of gets) {
      const iov = new Uint8Array(iovBytes);
      const v = new DataView(iov.buffer);
      v.setUint32(0, 7, true);
      if (wide) v.setBigUint64(8, BigInt(nr), true);
      else v.setUint32(4, nr, true);
      v.setBigUint64(wide ? 16 : 8, BigInt(vaddr), true);
      v.setBigUint64(wide ? 24 : 16, 5n, true);
      await conn.write(iov);
      const head = await read(iovBytes);
      if (!head) return { answers, status };
      const h = new DataView(head.buffer);
      assert.equal(h.getUint32(0, true), (4 << 16) | 6, "not PS_IOV_ADD_F | PE_PRESENT");
      const n = wide ? Number(h.getBigUint64(8, true)) : h.getUint32(4, true);
      const data = await read(n * P);
      if (!data) return { answers, status };
      answers.push({ nr: n, vaddr: Number(h.getBigUint64(wide ? 16 : 8, true)), data });
    }
    if (leave) return { answers, status };
    const close = new Uint8Array(iovBytes);
    new DataView(close.buffer).setUint32(0, 0x1023, true);
    await conn.write(close);
    const s = await read(4);
    status = s ? new DataView(s.buffer).getInt32(0, true) : undefined;
  } finally {
    conn.close();
  }
  return { answers, status };
}
