/**
 * Reading the system's own apt sources to find the Debian mirror this machine is allowed to use,
 * so the private CRIU prefix is fetched from the same place as everything else.
 *
 * @module
 */

/** One `deb` source from the system's apt configuration. */
export interface AptSource {
  /** Mirror base URI, e.g. `http://deb.debian.org/debian`. */
  uri: string;
  /** Suites, e.g. `["bookworm", "bookworm-updates"]`. */
  suites: string[];
  /** Keyring given by `Signed-By` / `[signed-by=…]`, when any. */
  signedBy?: string;
}

/** Parse deb822 `.sources` text into its `deb` sources (disabled stanzas skipped). */
export function parseDeb822Sources(text: string): AptSource[] {
  const out: AptSource[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last = "";
    for (const line of stanza.split("\n")) {
      if (line.startsWith("#") || line.trim() === "") continue;
      if (/^\s/.test(line) && last) {
        fields.set(last, `${fields.get(last)} ${line.trim()}`);
        continue;
      }
      const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
      if (m) fields.set(last = m[1].toLowerCase(), m[2].trim());
    }
    const types = (fields.get("types") ?? "").split(/\s+/);
    if (!types.includes("deb") || fields.get("enabled")?.toLowerCase() === "no") continue;
    const suites = (fields.get("suites") ?? "").split(/\s+/).filter((s) => s !== "");
    const signedBy = fields.get("signed-by");
    for (const uri of (fields.get("uris") ?? "").split(/\s+/).filter((s) => s !== "")) {
      out.push({ uri, suites, signedBy: signedBy?.startsWith("/") ? signedBy : undefined });
    }
  }
  return out;
}

/** Parse one-line-style `sources.list` text into its `deb` sources. */
export function parseSourcesList(text: string): AptSource[] {
  const out: AptSource[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*/, "").trim();
    const m = /^deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)/.exec(line);
    if (!m) continue;
    const signedBy = /signed-by=(\S+)/.exec(m[1] ?? "")?.[1];
    out.push({ uri: m[2], suites: [m[3]], signedBy });
  }
  return out;
}

/**
 * The system's `deb` sources from `/etc/apt/sources.list` and `/etc/apt/sources.list.d/`.
 *
 * @param etcApt the apt configuration directory @default "/etc/apt"
 */
export function systemAptSources(etcApt = "/etc/apt"): AptSource[] {
  const sources: AptSource[] = [];
  const read = (path: string) => {
    try {
      return Deno.readTextFileSync(path);
    } catch {
      return undefined;
    }
  };
  const main = read(`${etcApt}/sources.list`);
  if (main) sources.push(...parseSourcesList(main));
  let names: string[] = [];
  try {
    names = [...Deno.readDirSync(`${etcApt}/sources.list.d`)].map((e) => e.name).sort();
  } catch {
    // no directory
  }
  for (const name of names) {
    const text = read(`${etcApt}/sources.list.d/${name}`);
    if (text === undefined) continue;
    if (name.endsWith(".sources")) sources.push(...parseDeb822Sources(text));
    else if (name.endsWith(".list")) sources.push(...parseSourcesList(text));
  }
  return sources;
}

/**
 * Pick the Debian main-archive mirror among `sources`: the first whose suites are not security
 * suites and whose URI is not a security archive.
 */
export function debianMirror(sources: AptSource[]): AptSource | undefined {
  return sources.find((s) =>
    !/security/.test(s.uri) && s.suites.some((suite) => !/-security$/.test(suite))
  );
}
