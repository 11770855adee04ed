/**
 * `mm-<pid>.img`: the VMAs of a dumped process (only what u2cm needs of them).
 *
 * @module
 */
import { expectMagic, Magic, readImage } from "./image.ts";
import { decodeMessage, uintField } from "./protobuf.ts";

/** VMA status bit: a private file mapping (criu/include/image.h). */
export const VMA_FILE_PRIVATE = 1 << 6;
/** VMA status bit: a private anonymous mapping. */
export const VMA_ANON_PRIVATE = 1 << 9;

/** One VMA of a dumped process. */
export interface VmaEntry {
  /** First byte address. */
  start: number;
  /** One past the last byte. */
  end: number;
  /** mmap flags. */
  flags: number;
  /** CRIU's VMA_* status bits. */
  status: number;
}

/**
 * Decode the VMAs of `mm-<pid>.img` bytes, ascending.
 *
 * @example
 * ```ts
 * const vmas = decodeMmVmas(await Deno.readFile(`${dir}/mm-1.img`));
 * ```
 */
export function decodeMmVmas(bytes: Uint8Array, name = "mm.img"): VmaEntry[] {
  const image = readImage(bytes, name);
  expectMagic(image, Magic.MM, name);
  if (image.entries.length === 0) throw new Error(`${name}: no MmEntry`);
  const out: VmaEntry[] = [];
  for (const f of decodeMessage(image.entries[0])) {
    if (f.field !== 14 || f.wire !== 2) continue;
    const v = decodeMessage(f.value);
    const start = uintField(v, 1), end = uintField(v, 2);
    if (start === undefined || end === undefined) throw new Error(`${name}: VMA without bounds`);
    out.push({ start, end, flags: uintField(v, 6) ?? 0, status: uintField(v, 7) ?? 0 });
  }
  return out.sort((a, b) => a.start - b.start);
}
