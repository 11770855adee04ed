/**
 * Comparing one architecture's results ({@linkcode ./results.ts}) with another's, and the files
 * the arm64 lane passes them in: `$U2CM_ARCH_OUT` (this run writes its sections there) and
 * `$U2CM_ARCH_REFERENCE` (the x86_64 run's file this run must match).
 *
 * @module
 */

/** The largest difference allowed between two phase-2 probabilities. */
export const PROBABILITY_TOLERANCE = 1e-6;

/**
 * Every difference between `reference` and `actual`, as `path: reference vs actual` lines.
 * Numbers under a `probs` key may differ by {@linkcode PROBABILITY_TOLERANCE}, expected dirty
 * counts (sums of such probabilities) by that much per page relatively; everything else must be
 * equal.
 *
 * @example
 * ```ts
 * import { differences } from "./compare.ts";
 * differences({ a: 1, probs: [0.5] }, { a: 1, probs: [0.5000001] }); // []
 * ```
 */
export function differences(
  reference: unknown,
  actual: unknown,
  path = "",
  tolerance = 0,
): string[] {
  if (typeof reference === "number" && typeof actual === "number") {
    if (reference === actual || (Number.isNaN(reference) && Number.isNaN(actual))) return [];
    const allowed = tolerance < 0 ? -tolerance * Math.max(1, Math.abs(reference)) : tolerance;
    return Math.abs(reference - actual) <= allowed ? [] : [`${path}: ${reference} vs ${actual}`];
  }
  if (Array.isArray(reference) && Array.isArray(actual)) {
    if (reference.length !== actual.length) {
      return [`${path}: ${reference.length} entries vs ${actual.length}`];
    }
    return reference.flatMap((r, i) => differences(r, actual[i], `${path}[${i}]`, tolerance));
  }
  if (isObject(reference) && isObject(actual)) {
    const keys = [...new Set([...Object.keys(reference), ...Object.keys(actual)])].sort();
    return keys.flatMap((k) => {
      const t = k === "probs"
        ? PROBABILITY_TOLERANCE
        : k.endsWith("expected_dirty")
        ? -PROBABILITY_TOLERANCE
        : tolerance;
      return differences(reference[k], actual[k], path ? `${path}.${k}` : k, t);
    });
  }
  return JSON.stringify(reference) === JSON.stringify(actual)
    ? []
    : [`${path}: ${short(reference)} vs ${short(actual)}`];
}

/**
 * Record `value` as section `name` of this architecture's results (in `$U2CM_ARCH_OUT` when set)
 * and, when `$U2CM_ARCH_REFERENCE` is set, throw unless the reference has the same section with
 * the same value ({@linkcode compareWithReference}).
 */
export function recordAndCompare(name: string, value: unknown): void {
  const out = Deno.env.get("U2CM_ARCH_OUT");
  if (out) {
    const all = readJson(out) ?? { arch: Deno.build.arch, sections: {} };
    all.sections[name] = value;
    Deno.writeTextFileSync(out, JSON.stringify(all));
  }
  const refFile = Deno.env.get("U2CM_ARCH_REFERENCE");
  if (refFile) compareWithReference(name, value, refFile);
}

/**
 * Throw unless the results file `refFile` (`{ arch, sections }`, as `$U2CM_ARCH_OUT` holds it)
 * has section `name` equal to `value` by {@linkcode differences}; the error lists the first
 * differences.
 *
 * @example
 * ```ts
 * import { compareWithReference } from "./compare.ts";
 * const ref = Deno.makeTempFileSync();
 * Deno.writeTextFileSync(ref, JSON.stringify({ arch: "x86_64", sections: { a: [1] } }));
 * compareWithReference("a", [1], ref); // returns; [2] would throw
 * ```
 */
export function compareWithReference(name: string, value: unknown, refFile: string): void {
  const ref = readJson(refFile);
  if (!ref) throw new Error(`the reference results ${refFile} are missing or unreadable`);
  if (!(name in ref.sections)) {
    throw new Error(`the reference results ${refFile} lack section '${name}'`);
  }
  const diffs = differences(
    JSON.parse(JSON.stringify(ref.sections[name])),
    JSON.parse(JSON.stringify(value)),
    name,
  );
  if (diffs.length > 0) {
    throw new Error(
      `${Deno.build.arch} differs from ${ref.arch} in ${diffs.length} place(s):\n  ` +
        diffs.slice(0, 20).join("\n  ") + (diffs.length > 20 ? "\n  …" : ""),
    );
  }
}

interface ResultsFile {
  arch: string;
  sections: Record<string, unknown>;
}

function readJson(path: string): ResultsFile | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function short(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}…` : s;
}
