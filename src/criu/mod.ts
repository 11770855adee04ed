/**
 * CRIU at u2cm's boundary: finding and provisioning the binary, probing it and the host.
 *
 * @module
 */
export * from "./apt_sources.ts";
export * from "./host.ts";
export * from "./kerndat.ts";
export * from "./locate.ts";
export * from "./probe.ts";
export * from "./provision.ts";
export * from "./run.ts";
