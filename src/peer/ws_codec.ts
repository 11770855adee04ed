/**
 * The client's half of RFC 6455 framing: {@linkcode wsFrame} lays a binary or text message out as
 * one masked client frame, masking while it copies (ws_mask.ts) and reusing a buffer it is given;
 * {@linkcode FrameParser} reads the server's unmasked frames incrementally, reassembling
 * fragmented messages, answering pings and refusing anything malformed.
 *
 * @example
 * ```ts
 * const wire = wsFrame(0x2, [new Uint8Array([1, 2, 3])]);
 * ```
 *
 * @module
 */
import type { LinkMessage } from "./link.ts";
import { maskCopy } from "./ws_mask.ts";

/** WebSocket opcodes the client uses. */
export const Opcode = { Text: 0x1, Binary: 0x2, Close: 0x8, Ping: 0x9, Pong: 0xA } as const;

/** Bytes in front of a payload of `n` bytes in a masked client frame (header and key). */
export function wsHeadBytes(n: number): number {
  return (n < 126 ? 2 : n < 65536 ? 4 : 10) + 4;
}

/**
 * One masked client frame (FIN set) carrying the concatenation of `parts`, with a fresh random
 * key. With `reuse` (a buffer of at least 16 + payload bytes that nothing else reads any more) the
 * frame is written into it instead of a new allocation. The payload sits at byte 16 of the buffer,
 * word-aligned for masking.
 *
 * @param opcode {@linkcode Opcode}
 * @param parts the payload, in pieces
 * @param reuse a buffer to write the frame into
 */
export function wsFrame(opcode: number, parts: Uint8Array[], reuse?: ArrayBuffer): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const headLen = wsHeadBytes(n) - 4;
  const buffer = reuse && reuse.byteLength >= 16 + n ? reuse : new ArrayBuffer(16 + n);
  const start = 16 - headLen - 4;
  const frame = new Uint8Array(buffer, start, headLen + 4 + n);
  frame[0] = 0x80 | opcode;
  if (n < 126) frame[1] = 0x80 | n;
  else if (n < 65536) {
    frame[1] = 0x80 | 126;
    frame[2] = n >>> 8;
    frame[3] = n & 0xff;
  } else {
    frame[1] = 0x80 | 127;
    const view = new DataView(buffer, start, 10);
    view.setUint32(2, Math.floor(n / 0x1_0000_0000));
    view.setUint32(6, n >>> 0);
  }
  const mask = frame.subarray(headLen, headLen + 4);
  crypto.getRandomValues(mask);
  maskCopy(parts, mask, frame.subarray(headLen + 4));
  return frame;
}

/** What a {@linkcode FrameParser} reports. */
export interface ParserEvents {
  /** A whole text or binary message. */
  message(m: LinkMessage): void;
  /** A ping (answer with a pong carrying `payload`). */
  ping(payload: Uint8Array): void;
  /** The server sent a close frame. */
  close(): void;
  /** The stream is malformed; nothing more is parsed. */
  error(why: string): void;
}

/** Incremental parser of unmasked server frames, reassembling fragmented messages. */
export class FrameParser {
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #fragments: Uint8Array[] = [];
  #fragmentBytes = 0;
  #fragmentOpcode = 0;
  #failed = false;

  /**
   * @param maxMessageBytes the largest message accepted
   * @param events where messages and errors go
   */
  constructor(readonly maxMessageBytes: number, readonly events: ParserEvents) {}

  /** Feed bytes as they arrive (the parser keeps `chunk`). */
  push(chunk: Uint8Array): void {
    if (this.#failed) return;
    this.#pending.push(chunk); // the parser owns `chunk` from here
    this.#pendingBytes += chunk.length;
    for (let guard = 0; guard < 1_000_000 && !this.#failed; guard++) {
      if (!this.#parseOne()) break;
    }
  }

  #parseOne(): boolean {
    if (this.#pendingBytes < 2) return false;
    const head = this.#peek(Math.min(this.#pendingBytes, 14));
    const fin = (head[0] & 0x80) !== 0;
    const opcode = head[0] & 0x0f;
    if ((head[1] & 0x80) !== 0 || (head[0] & 0x70) !== 0) return this.#error("bad frame bits");
    let len = head[1] & 0x7f;
    let headLen = 2;
    if (len === 126) {
      if (head.length < 4) return false;
      len = (head[2] << 8) | head[3];
      headLen = 4;
    } else if (len === 127) {
      if (head.length < 10) return false;
      const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
      len = view.getUint32(2) * 0x1_0000_0000 + view.getUint32(6);
      headLen = 10;
    }
    if (len > this.maxMessageBytes) return this.#error(`frame of ${len} bytes is too large`);
    if (this.#pendingBytes < headLen + len) return false;
    this.#take(headLen);
    const payload = this.#take(len);
    switch (opcode) {
      case 0x0:
      case 0x1:
      case 0x2: {
        if (opcode !== 0 && this.#fragments.length) return this.#error("interleaved message");
        if (opcode === 0 && !this.#fragments.length) return this.#error("stray continuation");
        if (opcode !== 0) this.#fragmentOpcode = opcode;
        if (fin && !this.#fragments.length) {
          this.#emit(opcode, payload);
          return true;
        }
        this.#fragments.push(payload);
        this.#fragmentBytes += payload.length;
        if (this.#fragmentBytes > this.maxMessageBytes) return this.#error("message too large");
        if (fin) {
          const whole = concat(this.#fragments, this.#fragmentBytes);
          this.#fragments = [];
          this.#fragmentBytes = 0;
          this.#emit(this.#fragmentOpcode, whole);
        }
        return true;
      }
      case 0x8:
        this.events.close();
        return false;
      case 0x9:
        this.events.ping(payload);
        return true;
      case 0xA:
        return true;
      default:
        return this.#error(`unknown opcode ${opcode}`);
    }
  }

  #emit(opcode: number, payload: Uint8Array): void {
    if (opcode === 0x1) {
      let text: string;
      try {
        text = new TextDecoder("utf-8", { fatal: true }).decode(payload);
      } catch {
        this.#error("text message is not UTF-8");
        return;
      }
      this.events.message(text);
    } else this.events.message(payload);
  }

  #error(why: string): false {
    this.#failed = true;
    this.events.error(`malformed WebSocket stream: ${why}`);
    return false;
  }

  #peek(n: number): Uint8Array {
    if (this.#pending[0].length >= n) return this.#pending[0].subarray(0, n);
    const out = new Uint8Array(n);
    let o = 0;
    for (const c of this.#pending) {
      const k = Math.min(c.length, n - o);
      out.set(c.subarray(0, k), o);
      o += k;
      if (o === n) break;
    }
    return out;
  }

  #take(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0);
    this.#pendingBytes -= n;
    const first = this.#pending[0];
    if (first.length > n) {
      this.#pending[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    if (first.length === n) {
      this.#pending.shift();
      return first;
    }
    const out = new Uint8Array(n);
    let o = 0;
    while (o < n) {
      const c = this.#pending[0];
      const k = Math.min(c.length, n - o);
      out.set(c.subarray(0, k), o);
      o += k;
      if (k === c.length) this.#pending.shift();
      else this.#pending[0] = c.subarray(k);
    }
    return out;
  }
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
