/**
 * Containers as migration targets: resolving a container, its image, its checkpoint on the
 * source and its restore on the destination, for podman and runc.
 *
 * @module
 */
export * from "./types.ts";
export * from "./command.ts";
export * from "./podman.ts";
export * from "./image.ts";
export * from "./checkpoint.ts";
export * from "./import.ts";
export * from "./runc.ts";
export * from "./resolve.ts";
export * from "./mounts.ts";
export * from "./criu_path.ts";
export * from "./runtimes.ts";
export * from "./node.ts";
export * from "./transfer.ts";
export * from "./destination.ts";
export * from "./source.ts";
export * from "./runc_checkpoint.ts";
export * from "./final_phase.ts";
export * from "./agent_hooks.ts";
export * from "./runc_final_phase.ts";
export * from "./runc_destination.ts";
export * from "./recover_container.ts";
export * from "./lazy_final_phase.ts";
