/**
 * CRIU image files: the container format, a minimal protobuf codec, and the images u2cm reads
 * or rewrites (inventory, pstree, core, mm, pagemap, pages).
 *
 * @module
 */
export * from "./core.ts";
export * from "./dump_dir.ts";
export * from "./image.ts";
export * from "./inventory.ts";
export * from "./mm.ts";
export * from "./pagemap.ts";
export * from "./pages.ts";
export * from "./protobuf.ts";
export * from "./pstree.ts";
export * from "./stats.ts";
