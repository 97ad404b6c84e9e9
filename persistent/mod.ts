/**
 * Persistent Pigeonhole channels stored in SQLite (work in progress).
 *
 * @example Usage
 * ```ts
 * import * as persistent from "@katzenpost/thinclient/persistent";
 * console.log(typeof persistent); // "object"
 * ```
 *
 * @module
 */
export {};
