/**
 * `u2cm peer add|list|remove|check`: pin the peers this node trusts, and test a pinned one.
 *
 * @module
 */
import type { Command } from "commander";
import { connectPeer } from "../peer/client.ts";
import { isPublicKeyText } from "../peer/keys.ts";
import { addPeer, listPeers, removePeer } from "../peer/peers.ts";
import { CliError, ExitCode } from "./errors.ts";
import { parseChoice, parseNumberInRange } from "./options.ts";
import { defaultStateDir, peerCliError } from "./peer_errors.ts";

const STATE_DIR_HELP = "state directory ($U2CM_STATE_DIR)";

/** Add `peer` and its sub-commands to the program. */
export function register(program: Command): void {
  const peer = program.command("peer").description("pin, list, remove and check trusted peers");
  const add = peer.command("add <name> <address> <pubkey>");
  acceptDashedKeys(add);
  add
    .description(
      "pin a peer: its agent address HOST:PORT and the public key its 'u2cm init' printed",
    )
    .option("--cert-fingerprint <sha256>", "also pin its TLS certificate (SHA-256, hex)")
    .option("--replace", "replace a peer with the same name")
    .option("--state-dir <dir>", STATE_DIR_HELP, defaultStateDir())
    .action((name: string, address: string, publicKey: string, opts: AddOptions) => {
      try {
        const entry = addPeer(opts.stateDir, {
          name,
          address,
          publicKey,
          certFingerprint: opts.certFingerprint,
        }, opts.replace === true);
        console.log(`pinned peer '${entry.name}' at ${entry.address}`);
      } catch (e) {
        throw peerCliError(e);
      }
    });
  peer
    .command("list")
    .description("list pinned peers")
    .option("--format <format>", "json|table", "table")
    .option("--state-dir <dir>", STATE_DIR_HELP, defaultStateDir())
    .action((opts: { format: string; stateDir: string }) => {
      const format = parseChoice("--format", opts.format, ["json", "table"] as const);
      let peers;
      try {
        peers = listPeers(opts.stateDir);
      } catch (e) {
        throw peerCliError(e);
      }
      if (format === "json") {
        console.log(JSON.stringify(peers));
        return;
      }
      if (peers.length === 0) {
        console.log("no peers pinned (add one with 'u2cm peer add NAME HOST:PORT PUBKEY')");
        return;
      }
      const nameWidth = Math.max(4, ...peers.map((p) => p.name.length));
      const addrWidth = Math.max(7, ...peers.map((p) => p.address.length));
      console.log(
        `${"NAME".padEnd(nameWidth)}  ${"ADDRESS".padEnd(addrWidth)}  PUBLIC KEY` +
          " ".repeat(34) + "CERT FINGERPRINT",
      );
      for (const p of peers) {
        console.log(
          `${p.name.padEnd(nameWidth)}  ${p.address.padEnd(addrWidth)}  ${p.publicKey}  ` +
            (p.certFingerprint ? p.certFingerprint.slice(0, 16) + "…" : "(not pinned)"),
        );
      }
    });
  peer
    .command("remove <name>")
    .description("unpin a peer")
    .option("--state-dir <dir>", STATE_DIR_HELP, defaultStateDir())
    .action((name: string, opts: { stateDir: string }) => {
      let removed;
      try {
        removed = removePeer(opts.stateDir, name);
      } catch (e) {
        throw peerCliError(e);
      }
      if (!removed) throw new CliError(`no peer named '${name}' is pinned`, ExitCode.BadInput);
      console.log(`removed peer '${name}'`);
    });
  peer
    .command("check <name>")
    .description("connect to a pinned peer, authenticate both ways and print its capabilities")
    .option("--transport <t>", "ws|quic", "ws")
    .option("--timeout <s>", "seconds to wait for the peer", "10")
    .option("--format <format>", "json|table", "table")
    .option("--state-dir <dir>", STATE_DIR_HELP, defaultStateDir())
    .action(async (name: string, opts: CheckOptions) => {
      const format = parseChoice("--format", opts.format, ["json", "table"] as const);
      const transport = parseChoice("--transport", opts.transport, ["ws", "quic"] as const);
      const timeoutMs = parseNumberInRange("--timeout", opts.timeout, 0.1, 600) * 1000;
      const started = performance.now();
      let client;
      try {
        client = await connectPeer({ stateDir: opts.stateDir, peer: name, transport, timeoutMs });
      } catch (e) {
        throw peerCliError(e);
      }
      const connectMs = Math.round((performance.now() - started) * 10) / 10;
      const remote = client.remote;
      // Whether page and file frames would take the sealed bulk stream (WebSocket transport).
      const sealedBulk = client.sealedBulk;
      await client.close();
      if (format === "json") {
        console.log(JSON.stringify({
          peer: name,
          transport,
          connectMs,
          capabilities: remote,
          sealed_bulk: sealedBulk,
        }));
        return;
      }
      console.log(`peer '${name}' authenticated over ${transport} in ${connectMs} ms`);
      console.log(`  ${"sealed bulk".padEnd(16)} ${sealedBulk ? "yes" : "no"}`);
      for (const [k, v] of Object.entries(remote)) {
        console.log(`  ${k.padEnd(16)} ${typeof v === "object" ? JSON.stringify(v) : v}`);
      }
    });
}

interface AddOptions {
  certFingerprint?: string;
  replace?: boolean;
  stateDir: string;
}

interface CheckOptions {
  transport: string;
  timeout: string;
  format: string;
  stateDir: string;
}

/**
 * Let `command` take an Ed25519 public key that begins with `-` (one in 64 base64url keys) as an
 * argument: such a token is a key, never an option, so it is hidden from commander's option
 * parser and handed back as an operand. `u2cm peer add NAME ADDR -- KEY` works as well.
 */
function acceptDashedKeys(command: Command): void {
  const parse = command.parseOptions.bind(command);
  command.parseOptions = (argv: string[]) => {
    const keys: string[] = [];
    const masked = argv.map((arg) => {
      if (!arg.startsWith("-") || !isPublicKeyText(arg)) return arg;
      keys.push(arg);
      return `${KEY_MARK}${keys.length - 1}`;
    });
    const unmask = (arg: string) =>
      arg.startsWith(KEY_MARK) ? keys[Number(arg.slice(KEY_MARK.length))] ?? arg : arg;
    const parsed = parse(masked);
    return { operands: parsed.operands.map(unmask), unknown: parsed.unknown.map(unmask) };
  };
}

const KEY_MARK = "\u0001u2cm-key:";
