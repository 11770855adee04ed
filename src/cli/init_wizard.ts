/**
 * The `u2cm init` wizard, run on a terminal when `init` is given no flags: where the state lives,
 * whether to replace an existing identity, and optionally the first peer to pin.
 *
 * @module
 */
import { confirm as confirmPrompt, input } from "@inquirer/prompts";
import { hasIdentity } from "../peer/identity.ts";
import { addPeer } from "../peer/peers.ts";
import { ask } from "./prompts.ts";

/** What the wizard decided before the identity is created. */
export interface InitAnswers {
  /** State directory. */
  stateDir: string;
  /** Replace an existing identity. */
  force: boolean;
}

/**
 * Ask where the node's state lives and, when an identity is already there, whether to replace it.
 *
 * @param defaultStateDir the state directory offered
 */
export async function askInit(defaultStateDir: string): Promise<InitAnswers> {
  const stateDir = await ask(() =>
    input({ message: "State directory for this node", default: defaultStateDir })
  );
  let force = false;
  if (hasIdentity(stateDir)) {
    force = await ask(() =>
      confirmPrompt({
        message: "This node already has an identity. Replace it (peers must pin it again)?",
        default: false,
      })
    );
  }
  return { stateDir, force };
}

/**
 * Offer to pin a first peer (name, address, public key, certificate fingerprint); returns its
 * name, or undefined when the user declined.
 *
 * @param stateDir the node's state directory
 */
export async function askFirstPeer(stateDir: string): Promise<string | undefined> {
  const wanted = await ask(() =>
    confirmPrompt({ message: "Pin a peer now (its 'u2cm init' output at hand)?", default: false })
  );
  if (!wanted) return undefined;
  const name = await ask(() => input({ message: "Peer name", required: true }));
  const address = await ask(() =>
    input({ message: "Its agent address HOST:PORT", required: true })
  );
  const publicKey = await ask(() => input({ message: "Its public key", required: true }));
  const fingerprint = await ask(() =>
    input({ message: "Its certificate fingerprint (empty to learn it on first contact)" })
  );
  addPeer(stateDir, {
    name,
    address,
    publicKey,
    ...(fingerprint.trim() ? { certFingerprint: fingerprint.trim() } : {}),
  });
  return name;
}
