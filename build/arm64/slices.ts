/**
 * Write the arm64 lane's trace inputs: the first rounds of shipped corpus traces, re-encoded
 * (`tests/fixtures/arch/<name>-<rounds>.u2ct`). Decoding a whole corpus trace takes about a
 * minute under qemu-user; a slice takes a second. tests/arch/slices_test.ts checks that the
 * committed slices are still exactly these.
 *
 * Usage: `deno run -A build/arm64/slices.ts`
 *
 * @module
 */
import { LANE_TRACES, sliceCorpusTrace } from "../../tests/arch/slices.ts";

for (const t of LANE_TRACES) {
  const bytes = await sliceCorpusTrace(t);
  Deno.writeFileSync(new URL(`../../${t.slice}`, import.meta.url), bytes);
  console.log(`${t.slice}: ${bytes.length} bytes (${t.rounds} rounds of ${t.corpus})`);
}
