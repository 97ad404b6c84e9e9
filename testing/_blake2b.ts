/**
 * BLAKE2b for the fake daemon: its only import of the hash package, apart
 * from lib/hash.ts, so the oracle does not share the client's hashing code.
 *
 * @module
 */
import { blake2b } from "@noble/hashes/blake2";
import { concatBytes } from "../lib/_bytes.ts";

/**
 * Unkeyed BLAKE2b with a 32-byte digest (BLAKE2b-256), as used for
 * `write_cap_hash`, `destination_id_hash` and envelope hashes.
 *
 * @param parts Byte strings hashed as their concatenation.
 * @returns The 32-byte digest.
 */
export function blake2b256(...parts: Uint8Array[]): Uint8Array {
  return blake2b(parts.length === 1 ? parts[0]! : concatBytes(parts), {
    dkLen: 32,
  });
}

/**
 * Unkeyed BLAKE2b with a 64-byte digest.
 *
 * @param parts Byte strings hashed as their concatenation.
 * @returns The 64-byte digest.
 */
export function blake2b512(...parts: Uint8Array[]): Uint8Array {
  return blake2b(parts.length === 1 ? parts[0]! : concatBytes(parts), {
    dkLen: 64,
  });
}
