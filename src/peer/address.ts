/**
 * Parsing of `HOST:PORT` addresses (`[v6]:PORT` for IPv6 literals).
 *
 * @module
 */

/** A parsed network address. */
export interface HostPort {
  /** Host name or IP literal (IPv6 without brackets). */
  hostname: string;
  /** TCP/UDP port, 0 for "any" where listening allows it. */
  port: number;
}

/**
 * Parse `HOST:PORT`; undefined when malformed.
 *
 * @param text the address text
 * @param allowZeroPort accept port 0 (listen on any free port) @default false
 */
export function parseHostPort(text: string, allowZeroPort = false): HostPort | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]{1,253})):(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535 || (port === 0 && !allowZeroPort)) return undefined;
  return { hostname: m[1] ?? m[2], port };
}

/** Format a host and port back to `HOST:PORT`. */
export function formatHostPort({ hostname, port }: HostPort): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}
