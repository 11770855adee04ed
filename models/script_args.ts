/**
 * What the training-data exporters (`dataset.ts`, `export_eval.ts`, `export_windows.ts`) share:
 * a seeded random generator, so every export samples the same page-rounds on every run, and
 * the `--name VALUE` option parsing of their command lines.
 *
 * @example
 * ```ts
 * const rand = mulberry32(4242);
 * const { options, rest } = takeOptions(Deno.args, { "--out": ".cache/x", "--cap": "40000" });
 * console.log(rand() < 1, options["--out"], rest); // true ".cache/x" [...trace files]
 * ```
 *
 * @module
 */

/** mulberry32: a small seeded generator of floats in [0, 1), the same sequence on every run. */
export function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Take each `--name VALUE` in `defaults` out of `argv`; the values (or the defaults) and the
 * remaining arguments (the trace files).
 */
export function takeOptions<K extends string>(
  argv: readonly string[],
  defaults: Record<K, string>,
): { options: Record<K, string>; rest: string[] } {
  const rest = [...argv];
  const options = { ...defaults };
  for (const name of Object.keys(defaults) as K[]) {
    const i = rest.indexOf(name);
    if (i < 0) continue;
    if (i + 1 >= rest.length) throw new Error(`${name} needs a value`);
    options[name] = rest[i + 1];
    rest.splice(i, 2);
  }
  return { options, rest };
}
