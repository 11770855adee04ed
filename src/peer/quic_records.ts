/**
 * The record format of QUIC streams: a 4-byte preamble "U2Q1", then records of u32 length (LE),
 * u8 kind (0 text, 1 binary) and the payload. {@linkcode RecordReader} reassembles records from
 * stream chunks of any size, copying each byte once (into the record being filled), so a large
 * record arriving in small chunks costs no more than its size.
 *
 * @example
 * ```ts
 * const reader = new RecordReader(1 << 20, false);
 * reader.push(quicRecord(1, [new Uint8Array([7])]), (kind, body) => undefined);
 * ```
 *
 * @module
 */

/** The preamble every stream starts with. */
export const PREAMBLE = new Uint8Array([0x55, 0x32, 0x51, 0x31]); // "U2Q1"

/**
 * One record of `kind` holding the concatenation of `parts`, written into `reuse` when it is
 * large enough.
 */
export function quicRecord(kind: number, parts: Uint8Array[], reuse?: ArrayBuffer): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const buffer = reuse && reuse.byteLength >= 5 + n ? reuse : new ArrayBuffer(5 + n);
  const record = new Uint8Array(buffer, 0, 5 + n);
  new DataView(buffer).setUint32(0, n, true);
  record[4] = kind;
  let o = 5;
  for (const p of parts) {
    record.set(p, o);
    o += p.length;
  }
  return record;
}

/** Why a stream is refused: a close code and reason. */
export interface RecordError {
  /** QUIC application close code. */
  code: number;
  /** Reason. */
  reason: string;
}

/** Incremental record parser of one stream. */
export class RecordReader {
  #needPreamble: boolean;
  #head = new Uint8Array(5);
  #headFill = 0;
  #body: Uint8Array | undefined;
  #bodyFill = 0;
  #kind = 0;

  /**
   * @param maxRecordBytes largest record payload accepted
   * @param preamble whether the stream starts with {@linkcode PREAMBLE}
   */
  constructor(readonly maxRecordBytes: number, preamble: boolean) {
    this.#needPreamble = preamble;
  }

  /**
   * Feed a chunk; `onRecord` gets each whole record (its body is the reader's own copy) and may
   * return a reason to refuse the stream. Returns the error that ends the stream, if any.
   */
  push(
    chunk: Uint8Array,
    onRecord: (kind: number, body: Uint8Array) => string | undefined,
  ): RecordError | undefined {
    let at = 0;
    while (at < chunk.length) {
      if (this.#needPreamble || this.#body === undefined) {
        const want = this.#needPreamble ? 4 : 5;
        const k = Math.min(want - this.#headFill, chunk.length - at);
        this.#head.set(chunk.subarray(at, at + k), this.#headFill);
        this.#headFill += k;
        at += k;
        if (this.#headFill < want) break;
        this.#headFill = 0;
        if (this.#needPreamble) {
          if (!PREAMBLE.every((b, i) => this.#head[i] === b)) {
            return { code: 2, reason: "bad stream preamble" };
          }
          this.#needPreamble = false;
          continue;
        }
        const len = new DataView(this.#head.buffer).getUint32(0, true);
        if (len > this.maxRecordBytes) {
          return { code: 3, reason: `record of ${len} bytes too large` };
        }
        this.#kind = this.#head[4];
        this.#body = new Uint8Array(len);
        this.#bodyFill = 0;
      }
      const body = this.#body;
      const k = Math.min(body.length - this.#bodyFill, chunk.length - at);
      body.set(chunk.subarray(at, at + k), this.#bodyFill);
      this.#bodyFill += k;
      at += k;
      if (this.#bodyFill === body.length) {
        this.#body = undefined;
        const bad = onRecord(this.#kind, body);
        if (bad) return { code: 4, reason: bad };
      }
    }
    return undefined;
  }
}
