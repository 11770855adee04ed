/**
 * File-system predicates that answer false instead of throwing.
 *
 * @module
 */

/**
 * Whether something exists at `path` (following symlinks).
 *
 * @param path the path to look at
 */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether `path` is a regular file (following symlinks).
 *
 * @param path the path to look at
 */
export function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}
