/**
 * The record format of QUIC streams: a 4-byte preamble "U2Q1", then records of u32 length (LE),
 * u8 kind (0 text, 1 binary) and the payload. {@linkcode readRecords} reads them from a byte
 * stream's BYOB reader straight into each record's own buffer (Deno's QUIC streams are byte
 * streams); {@linkcode RecordReader} reassembles them from chunks of any size, copying each byte
 * once (into the record being filled), for streams that only hand out chunks.
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

/**
 * Read records from a BYOB `reader` until the stream ends or `onRecord` refuses one: each body is
 * read straight into a buffer of its own (the one `onRecord` gets), so a byte is copied once, from
 * the transport, and no chunk is allocated on the way (the default reader allocates one per read,
 * which {@linkcode RecordReader} then copies). Resolves with the error that ends the stream, or
 * undefined when it ended (a record cut short by the end is dropped, as the reader drops it).
 *
 * @param reader the stream's BYOB reader
 * @param maxRecordBytes largest record payload accepted
 * @param preamble whether the stream starts with {@linkcode PREAMBLE}
 * @param onRecord gets each whole record; may return a reason to refuse the stream
 */
export async function readRecords(
  reader: ReadableStreamBYOBReader,
  maxRecordBytes: number,
  preamble: boolean,
  onRecord: (kind: number, body: Uint8Array) => string | undefined,
): Promise<RecordError | undefined> {
  // Fill `view` whole; null when the stream ended first. BYOB reads transfer the buffer: the
  // filled bytes live in the buffer the last read gave back.
  const fill = async (view: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer> | null> => {
    let buffer = view.buffer;
    const start = view.byteOffset, end = start + view.byteLength;
    for (let at = start; at < end;) {
      const { value, done } = await reader.read(new Uint8Array(buffer, at, end - at));
      if (value) {
        buffer = value.buffer as ArrayBuffer;
        at += value.byteLength;
      }
      if (done) return null;
    }
    return new Uint8Array(buffer, start, end - start);
  };
  let head: Uint8Array<ArrayBuffer> | null = new Uint8Array(5);
  if (preamble) {
    const got = await fill(head.subarray(0, 4));
    if (!got) return undefined;
    if (!PREAMBLE.every((b, i) => got[i] === b)) return { code: 2, reason: "bad stream preamble" };
    head = new Uint8Array(got.buffer, 0, 5);
  }
  for (let guard = 0; guard < Number.MAX_SAFE_INTEGER; guard++) {
    head = await fill(head);
    if (!head) return undefined;
    const len = new DataView(head.buffer).getUint32(0, true);
    if (len > maxRecordBytes) return { code: 3, reason: `record of ${len} bytes too large` };
    const kind = head[4];
    const body = await fill(new Uint8Array(len));
    if (!body) return undefined;
    const bad = onRecord(kind, body);
    if (bad) return { code: 4, reason: bad };
  }
  return undefined;
}
