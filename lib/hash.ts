/**
 * The library's only door to the hash package (npm:@noble/hashes); the fake
 * daemon in testing/ has its own (testing/_blake2b.ts), so that it stays an
 * independent oracle.
 *
 * @module
 */
import { blake2b } from "@noble/hashes/blake2";

/**
 * Unkeyed BLAKE2b with a 32-byte digest, as katzenpost uses for node identity
 * hashes and for the copy-command cancel key.
 *
 * @param data Bytes to hash.
 * @returns The 32-byte digest.
 *
 * @example Usage
 * ```ts
 * import { blake2b256 } from "@katzenpost/thinclient";
 * console.log(blake2b256(new Uint8Array()).length); // 32
 * ```
 */
export function blake2b256(data: Uint8Array): Uint8Array {
  return blake2b(data, { dkLen: 32 });
}
