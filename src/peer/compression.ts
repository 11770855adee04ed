/**
 * When a migration channel compresses its page batches (LZ4 through the native shim), and the
 * figures behind the choice.
 *
 * Modes: `off` never compresses; `on` compresses every batch; `auto` compresses when the link, not
 * the CPU, is the bottleneck. In every mode a batch goes compressed only when its LZ4 block is
 * smaller than 90 % of the raw pages (random pages go raw).
 *
 * The `auto` rule: compressing pays when LZ4 turns raw pages into blocks faster than the link
 * drains bytes. So `auto`
 * 1. compresses the first {@linkcode PROBE_FRAMES} batches to measure the codec's throughput C
 *    (raw bytes per second of `lz4Compress`) and the compression ratio;
 * 2. measures the link rate L as bytes acknowledged per second over periods (≥ 100 ms) in which
 *    the sender spent at least half the time blocked, on the socket draining or on the window
 *    (so the link or the receiver, not the source, set the pace);
 * 3. compresses while C > {@linkcode AUTO_MARGIN} × L and the recent ratio is below 0.9; until L
 *    is known it sends raw (a source that never fills the window is not link-bound); while raw it
 *    re-probes one batch in {@linkcode REPROBE_EVERY} to follow the data's compressibility.
 *
 * Why the margin: compressing adds 1/C seconds per byte to the source's serial work (reading,
 * hashing, framing, TLS), which otherwise runs at some rate S ≥ L when the link is the
 * bottleneck. With C ≥ 2L and S ≥ 2L the source still keeps up with the link
 * (1/(1/C + 1/S) ≥ L) while the link carries only the compressed bytes. Measured on loopback
 * (L ≈ 450 MB/s, C ≈ 600 MB/s) compressing was slower than raw; at 100 Mbit it halves the time.
 *
 * @example
 * ```ts
 * const c = new BatchCompressor("on");
 * const packed = c.pack(new Uint8Array(256 * 4096)); // a block of the zero pages
 * ```
 *
 * @module
 */
import { lz4Compress } from "../native/codec.ts";

/** Compression modes of a channel (`u2cm migrate --compress`). */
export type CompressMode = "auto" | "on" | "off";

/** The modes, for option parsers. */
export const COMPRESS_MODES = ["auto", "on", "off"] as const;

/** A batch is sent compressed only below this fraction of its raw size. */
export const MAX_PACKED_RATIO = 0.9;

/** Batches `auto` compresses first to measure the codec. */
export const PROBE_FRAMES = 4;

/** While `auto` sends raw, one batch in this many is compressed to follow compressibility. */
export const REPROBE_EVERY = 32;

/** `auto` compresses when LZ4 is at least this many times faster than the link. */
export const AUTO_MARGIN = 2;

/** Link bytes sampled before `auto` trusts its link rate. */
const MIN_LINK_SAMPLE_BYTES = 2 ** 20;

/** What a channel's compression did. */
export interface CompressionStats {
  /** The mode asked for ("off" as well when the peer cannot decompress). */
  mode: CompressMode;
  /** Whether batches are compressed now. */
  active: boolean;
  /** Page bytes offered (uncompressed). */
  rawBytes: number;
  /** Page bytes that went compressed, before compression. */
  packedRawBytes: number;
  /** Bytes of the LZ4 blocks sent. */
  packedBytes: number;
  /** Batches sent compressed. */
  packedFrames: number;
  /** Batches sent raw. */
  rawFrames: number;
  /** Measured LZ4 throughput in raw bytes/s (0 before the first compression). */
  compressBps: number;
  /** Measured link rate in bytes/s while the sender was link-bound (0 until measured). */
  linkBps: number;
}

/** Decides, batch by batch, whether to send a page batch compressed, and measures why. */
export class BatchCompressor {
  readonly #mode: CompressMode;
  #frames = 0;
  #sinceProbe = 0;
  #codecBytes = 0;
  #codecMs = 0;
  #ratio = 1;
  #linkBytes = 0;
  #linkMs = 0;
  #stats: CompressionStats;

  /** @param mode the channel's mode */
  constructor(mode: CompressMode) {
    this.#mode = mode;
    this.#stats = {
      mode,
      active: mode === "on",
      rawBytes: 0,
      packedRawBytes: 0,
      packedBytes: 0,
      packedFrames: 0,
      rawFrames: 0,
      compressBps: 0,
      linkBps: 0,
    };
  }

  /** A snapshot of the figures. */
  get stats(): CompressionStats {
    return { ...this.#stats, active: this.#active() };
  }

  /**
   * The LZ4 block to send instead of `data`, or undefined to send `data` raw.
   *
   * @param data whole pages
   */
  pack(data: Uint8Array): Uint8Array | undefined {
    this.#stats.rawBytes += data.length;
    this.#frames++;
    if (!this.#shouldTry()) return this.#raw();
    const t0 = performance.now();
    const packed = lz4Compress(data);
    const ms = performance.now() - t0;
    this.#codecBytes += data.length;
    this.#codecMs += ms;
    if (this.#codecBytes > 256 * 2 ** 20) {
      // Keep the rate, forget half the history (so the estimate follows the data).
      this.#codecBytes /= 2;
      this.#codecMs /= 2;
    }
    this.#stats.compressBps = this.#codecMs > 0 ? this.#codecBytes / (this.#codecMs / 1000) : 0;
    const ratio = packed.length / data.length;
    this.#ratio = this.#stats.packedFrames + this.#stats.rawFrames === 0
      ? ratio
      : 0.7 * this.#ratio + 0.3 * ratio;
    if (packed.length >= MAX_PACKED_RATIO * data.length || packed.length + 8 > data.length) {
      return this.#raw();
    }
    this.#stats.packedFrames++;
    this.#stats.packedRawBytes += data.length;
    this.#stats.packedBytes += packed.length;
    return packed;
  }

  /**
   * A link sample: `bytes` acknowledged over `ms` while the sender was link-bound.
   *
   * @param bytes wire bytes acknowledged
   * @param ms milliseconds since the previous acknowledgement
   */
  observeLink(bytes: number, ms: number): void {
    if (!(bytes > 0) || !(ms > 0)) return;
    this.#linkBytes += bytes;
    this.#linkMs += ms;
    if (this.#linkBytes > 64 * 2 ** 20) {
      this.#linkBytes /= 2;
      this.#linkMs /= 2;
    }
    if (this.#linkBytes >= MIN_LINK_SAMPLE_BYTES) {
      this.#stats.linkBps = this.#linkBytes / (this.#linkMs / 1000);
    }
  }

  #raw(): undefined {
    this.#stats.rawFrames++;
    return undefined;
  }

  #active(): boolean {
    if (this.#mode !== "auto") return this.#mode === "on";
    const { compressBps, linkBps } = this.#stats;
    return linkBps > 0 && compressBps > AUTO_MARGIN * linkBps && this.#ratio < MAX_PACKED_RATIO;
  }

  #shouldTry(): boolean {
    if (this.#mode !== "auto") return this.#mode === "on";
    if (this.#frames <= PROBE_FRAMES || this.#active()) return true;
    if (++this.#sinceProbe >= REPROBE_EVERY) {
      this.#sinceProbe = 0;
      return true;
    }
    return false;
  }
}

/**
 * Feeds a {@linkcode BatchCompressor} the link's rate: every ≥ 250 ms of acknowledgements, when
 * the sender spent at least half of it blocked (on the socket draining or on the window), the link
 * (or the receiver) set the pace, so acknowledged bytes per second measure its rate. A wait still
 * in progress counts towards the period it overlaps; each period reports the median rate of the
 * last few, so acks that arrive bunched (a busy receiver) do not read as a faster link.
 */
export class LinkRateSampler {
  #periodAt = 0;
  #periodAcked = 0;
  #blockedMs = 0;
  #waits = 0;
  #waitFrom = 0;
  #rates: number[] = [];

  /** @param compressor the compressor to tell */
  constructor(readonly compressor: BatchCompressor) {}

  /** The sender starts waiting (for the socket or the window); call {@linkcode waitEnd} after. */
  waitStart(): void {
    if (this.#waits++ === 0) this.#waitFrom = performance.now();
  }

  /** The wait begun by {@linkcode waitStart} is over. */
  waitEnd(): void {
    if (--this.#waits === 0) this.#blockedMs += performance.now() - this.#waitFrom;
  }

  /** `bytes` more were acknowledged. */
  acked(bytes: number): void {
    const now = performance.now();
    if (this.#periodAt === 0) return this.#reset(now);
    this.#periodAcked += bytes;
    const elapsed = now - this.#periodAt;
    if (elapsed < PERIOD_MS) return;
    const blocked = this.#blockedMs + (this.#waits > 0 ? now - this.#waitFrom : 0);
    if (blocked >= elapsed / 2) {
      // The median of the recent periods' rates: one period of acks that arrived bunched (a busy
      // receiver catching up) must not read as a faster link.
      this.#rates.push(this.#periodAcked / elapsed);
      if (this.#rates.length > RATE_SAMPLES) this.#rates.shift();
      const sorted = [...this.#rates].sort((a, b) => a - b);
      this.compressor.observeLink(sorted[sorted.length >> 1] * elapsed, elapsed);
    }
    this.#reset(now);
  }

  #reset(now: number): void {
    [this.#periodAt, this.#periodAcked, this.#blockedMs] = [now, 0, 0];
    if (this.#waits > 0) this.#waitFrom = now;
  }
}

/** Length of a link-rate sampling period. */
const PERIOD_MS = 250;
/** Periods whose median rate is reported. */
const RATE_SAMPLES = 9;
