/**
 * The native local page server of the shim (page_serve.c) through FFI: one session of CRIU's
 * page-server protocol served from slot files on a thread of the FFI pool, every page checked
 * against the manifest in C. Loads the same library as {@linkcode shim} (from `$U2CM_SHIM`, the
 * compiled binary, or the cache). The engine's side is src/engine/native_page_server.ts.
 *
 * @example
 * ```ts
 * const ps = pageServe();
 * const h = ps.u2cm_ps_open(24); // a session on a free loopback port: ps.u2cm_ps_port(h)
 * ```
 *
 * @module
 */
import { ensureShim, hostArch } from "./build.ts";
import { embeddedShim } from "./embedded.ts";

/** u2cm_ps_serve's result: the daemon's CLOSE was answered. */
export const PS_CLOSED = 0;
/** u2cm_ps_serve's result: a request was refused (u2cm_ps_why); the connection is still open. */
export const PS_REFUSED = 1;
/** u2cm_ps_serve's result: u2cm_ps_stop ended it before the daemon came. */
export const PS_STOPPED = 2;

const SYMBOLS = {
  u2cm_ps_open: { parameters: ["u32"], result: "pointer" },
  u2cm_ps_port: { parameters: ["pointer"], result: "i32" },
  u2cm_ps_add_proc: {
    parameters: ["pointer", "i64", "buffer", "buffer", "u32", "buffer", "u32"],
    result: "i32",
  },
  u2cm_ps_set_manifest: {
    parameters: ["pointer", "i64", "i32", "buffer", "buffer", "u32"],
    result: "i32",
  },
  /** The session, on a thread of the FFI pool (it blocks until the session ends). */
  u2cm_ps_serve: { parameters: ["pointer"], result: "i32", nonblocking: true },
  u2cm_ps_stats: { parameters: ["pointer", "buffer"], result: "void" },
  u2cm_ps_why: { parameters: ["pointer", "buffer", "u32"], result: "i32" },
  u2cm_ps_hold: { parameters: ["pointer", "i32"], result: "void" },
  u2cm_ps_stop: { parameters: ["pointer"], result: "void" },
  u2cm_ps_free: { parameters: ["pointer"], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The page server's raw symbols. */
export type PageServeSymbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let lib: PageServeSymbols | undefined;

/** Load the page server's symbols once (throws when the shim cannot be built or loaded). */
export function pageServe(): PageServeSymbols {
  lib ??= Deno.dlopen(
    Deno.env.get("U2CM_SHIM") ?? embeddedShim() ?? ensureShim(hostArch()),
    SYMBOLS,
  ).symbols;
  return lib;
}
