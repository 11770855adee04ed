/**
 * `pstree.img`: the dumped process tree, one `PstreeEntry` per process with its pid, parent,
 * process group, session and threads — all as seen inside the tree's own pid namespace.
 *
 * @module
 */
import { expectMagic, Magic, readImage } from "./image.ts";
import { decodeMessage, repeatedUint, uintField } from "./protobuf.ts";

/** One process of the dumped tree. */
export interface PstreeEntry {
  /** Pid (in the tree's pid namespace); names its `core-`, `mm-`, `pagemap-` images. */
  pid: number;
  /** Parent pid (0 for the root). */
  ppid: number;
  /** Process group id. */
  pgid: number;
  /** Session id. */
  sid: number;
  /** Thread ids. */
  threads: number[];
}

/** Decode `pstree.img` bytes; the root process comes first. */
export function decodePstree(bytes: Uint8Array, name = "pstree.img"): PstreeEntry[] {
  const image = readImage(bytes, name);
  expectMagic(image, Magic.PSTREE, name);
  return image.entries.map((e, i) => {
    const f = decodeMessage(e);
    const pid = uintField(f, 1);
    if (pid === undefined) throw new Error(`${name}: entry ${i} has no pid`);
    return {
      pid,
      ppid: uintField(f, 2) ?? 0,
      pgid: uintField(f, 3) ?? 0,
      sid: uintField(f, 4) ?? 0,
      threads: repeatedUint(f, 5),
    };
  });
}
