/**
 * Parsing link speeds such as `100mbit`, `1gbit`, `10GB/s` into bytes per second.
 *
 * @module
 */

const UNITS: Record<string, number> = {
  "bit": 1 / 8,
  "kbit": 1e3 / 8,
  "mbit": 1e6 / 8,
  "gbit": 1e9 / 8,
  "b": 1,
  "kb": 1e3,
  "mb": 1e6,
  "gb": 1e9,
  "kib": 1024,
  "mib": 1024 ** 2,
  "gib": 1024 ** 3,
};

/**
 * Parse a bandwidth (`100mbit`, `1gbit`, `125MB/s`, `1e6` bytes/s) into bytes per second.
 * Throws a RangeError naming the bad value.
 *
 * @param text the bandwidth as typed
 */
export function parseBandwidth(text: string): number {
  const m = /^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)(?:\/s|ps)?\s*$/i.exec(text);
  const unit = m ? (m[2] === "" ? "b" : m[2].toLowerCase()) : "";
  const factor = UNITS[unit];
  const value = m ? Number(m[1]) : NaN;
  if (!m || factor === undefined || !(value > 0)) {
    throw new RangeError(
      `bad bandwidth "${text}": use a positive number with a unit, e.g. 100mbit, 1gbit, 125MB/s`,
    );
  }
  return value * factor;
}
