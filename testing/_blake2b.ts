/**
 * BLAKE2b for the fake daemon, the only file that imports the hash package.
 *
 * @module
 */
import { blake2b } from "@noble/hashes/blake2";

/**
 * Unkeyed BLAKE2b with a 32-byte digest (BLAKE2b-256), as used for
 * `write_cap_hash`, `destination_id_hash` and envelope hashes.
 *
 * @param parts Byte strings hashed as their concatenation.
 * @returns The 32-byte digest.
 */
export function blake2b256(...parts: Uint8Array[]): Uint8Array {
  return blake2b(concatBytes(parts), { dkLen: 32 });
}

/**
 * Unkeyed BLAKE2b with a 64-byte digest.
 *
 * @param parts Byte strings hashed as their concatenation.
 * @returns The 64-byte digest.
 */
export function blake2b512(...parts: Uint8Array[]): Uint8Array {
  return blake2b(concatBytes(parts), { dkLen: 64 });
}

function concatBytes(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1 && parts[0] !== undefined) return parts[0];
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}
