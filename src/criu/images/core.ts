/**
 * `core-<tid>.img`: one thread's core state. u2cm reads two facts from it: the task state
 * (`tc.task_state`: a zombie is dumped as TASK_DEAD with no memory images at all) and the
 * thread's restartable-sequences area (`thread_core.rseq_entry`), which the kernel rewrites
 * (cpu id) whenever the thread returns to user space — so a restored thread's rseq area may
 * legitimately differ from the dumped page that holds it.
 *
 * @example
 * ```ts
 * import { decodeCore, TASK_DEAD } from "./core.ts";
 * const core = decodeCore(Deno.readFileSync("dump/core-1.img"));
 * if (core.taskState === TASK_DEAD) console.log("a zombie");
 * ```
 *
 * @module
 */
import { expectMagic, Magic, readImage } from "./image.ts";
import { bytesField, decodeMessage, uintField } from "./protobuf.ts";

/** `tc.task_state` of a running task. */
export const TASK_ALIVE = 1;
/** `tc.task_state` of a zombie (dumped as core-N.img only). */
export const TASK_DEAD = 2;
/** `tc.task_state` of a stopped task. */
export const TASK_STOPPED = 3;

/** The facts u2cm takes from a core image. */
export interface CoreFacts {
  /** `tc.task_state` (TASK_*); undefined for a non-leader thread's core (no `tc`). */
  taskState?: number;
  /** The thread's registered rseq area, when it has one. */
  rseq?: { pointer: number; size: number };
  /** The thread's stack pointer (x86_64 `thread_info.gpregs.sp`), when the image has one. */
  sp?: number;
}

/** Decode the task state and rseq area of `core-<tid>.img` bytes. */
export function decodeCore(bytes: Uint8Array, name = "core.img"): CoreFacts {
  const image = readImage(bytes, name);
  expectMagic(image, Magic.CORE, name);
  if (image.entries.length === 0) throw new Error(`${name}: no CoreEntry`);
  const core = decodeMessage(image.entries[0]);
  const out: CoreFacts = {};
  const tc = bytesField(core, 3);
  if (tc) out.taskState = uintField(decodeMessage(tc), 1);
  const info = bytesField(core, 2);
  const regs = info ? bytesField(decodeMessage(info), 2) : undefined;
  const sp = regs ? uintField(decodeMessage(regs), 20) : undefined;
  if (sp) out.sp = sp;
  const thread = bytesField(core, 5);
  const rseq = thread ? bytesField(decodeMessage(thread), 15) : undefined;
  if (rseq) {
    const f = decodeMessage(rseq);
    const pointer = uintField(f, 1) ?? 0;
    const size = uintField(f, 2) ?? 0;
    if (pointer !== 0 && size > 0) out.rseq = { pointer, size };
  }
  return out;
}
