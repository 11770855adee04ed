/**
 * `u2cm init`: create the node's identity (Ed25519 key pair and self-signed TLS certificate) and
 * print what peers need to pin it.
 *
 * @module
 */
import type { Command } from "commander";
import { initIdentity } from "../peer/identity.ts";
import { askFirstPeer, askInit } from "./init_wizard.ts";
import { parseChoice } from "./options.ts";
import { isInteractive } from "./prompts.ts";
import { defaultStateDir, peerCliError } from "./peer_errors.ts";

/** Add `init` to the program. */
export function register(program: Command): void {
  program
    .command("init")
    .description("create this node's identity (Ed25519 key, TLS certificate) in the state dir")
    .option("--state-dir <dir>", "state directory ($U2CM_STATE_DIR)", defaultStateDir())
    .option("--force", "replace an existing identity (peers must re-pin this node)")
    .option("--format <format>", "json|table", "table")
    .action(async (opts: { stateDir: string; force?: boolean; format: string }, cmd: Command) => {
      const format = parseChoice("--format", opts.format, ["json", "table"] as const);
      // On a terminal with no flags at all, `init` is a wizard.
      const wizard = isInteractive() &&
        cmd.options.every((o) => cmd.getOptionValueSource(o.attributeName()) !== "cli");
      if (wizard) Object.assign(opts, await askInit(opts.stateDir));
      let id;
      try {
        id = await initIdentity(opts.stateDir, { force: opts.force === true });
      } catch (e) {
        throw peerCliError(e);
      }
      const out = {
        stateDir: opts.stateDir,
        created: id.created,
        publicKey: id.publicKey,
        certFingerprint: id.certFingerprint,
      };
      if (format === "json") {
        console.log(JSON.stringify(out));
        return;
      }
      console.log(`state dir         ${out.stateDir}${id.created ? "" : " (existing identity)"}`);
      console.log(`public key        ${out.publicKey}`);
      console.log(`cert fingerprint  ${out.certFingerprint}`);
      console.log(
        `\npin this node on a peer with:\n  u2cm peer add --cert-fingerprint ${out.certFingerprint} ` +
          `NAME HOST:PORT -- ${out.publicKey}`,
      );
      if (wizard) {
        let peer;
        try {
          peer = await askFirstPeer(opts.stateDir);
        } catch (e) {
          throw peerCliError(e);
        }
        if (peer) console.log(`pinned peer ${peer}; check it with: u2cm peer check ${peer}`);
      }
    });
}
