/**
 * `u2cm recover [--state-dir DIR]`: end every interrupted migration of this node in one
 * consistent state by asking its destination (see src/engine/recover.ts). `u2cm agent` and
 * `u2cm migrate` run the same recovery when they start. Exit 0 when nothing is left pending, 7
 * when a peer could not be reached (its workloads stay frozen or its copies undiscarded until it
 * can).
 *
 * @module
 */
import type { Command } from "commander";
import {
  type PeerResolver,
  type RecoveredMigration,
  recoverMigrations,
} from "../engine/recover.ts";
import type { PeerClient } from "../peer/mod.ts";
import { connectWithRetry } from "./connect.ts";
import { CliError, ExitCode } from "./errors.ts";
import { parseChoice } from "./options.ts";
import { defaultStateDir } from "./peer_errors.ts";

const FORMATS = ["table", "json"] as const;

/** Add `recover` to the program. */
export function register(program: Command): void {
  program
    .command("recover")
    .description("finish interrupted migrations: ask each destination, end in one running copy")
    .option("--state-dir <dir>", "state directory ($U2CM_STATE_DIR)", defaultStateDir())
    .option("--format <format>", `result format: ${FORMATS.join("|")}`, "table")
    .action(async (opts: { stateDir: string; format: string }) => {
      const format = parseChoice("--format", opts.format, FORMATS);
      const recovered = await recoverNode(opts.stateDir);
      const pending = recovered.filter((m) => m.pending).length;
      if (format === "json") {
        console.log(JSON.stringify({ migrations: recovered, pending }, null, 2));
      } else if (recovered.length === 0) console.log("nothing to recover");
      else {
        for (const m of recovered) {
          console.log(`${m.id}  ${m.from} → ${m.phase}  workload: ${m.workload}  ${m.detail}`);
        }
      }
      if (pending > 0) {
        throw new CliError(
          `${pending} migration(s) wait for an unreachable peer; run 'u2cm recover' again`,
          ExitCode.Peer,
        );
      }
    });
}

/**
 * Recover the interrupted migrations of the node at `stateDir`, reaching each destination over
 * the authenticated channel.
 *
 * @example
 * ```ts
 * for (const m of await recoverNode("/var/lib/u2cm")) console.log(m.id, m.workload);
 * ```
 */
export async function recoverNode(
  stateDir: string,
  timeoutMs = 10_000,
): Promise<RecoveredMigration[]> {
  const clients = new Map<string, Promise<PeerClient>>();
  const resolve: PeerResolver = async (peer, id, action) => {
    let client = clients.get(peer);
    if (!client) {
      client = connectWithRetry({ stateDir, peer, timeoutMs, resumeTimeoutMs: timeoutMs });
      client.catch(() => clients.delete(peer));
      clients.set(peer, client);
    }
    return await (await client).resolve(id, action);
  };
  try {
    return await recoverMigrations({ stateDir, resolve });
  } finally {
    for (const c of clients.values()) await c.then((x) => x.close(), () => {});
  }
}
