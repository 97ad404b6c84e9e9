/**
 * The only file that knows the CBOR codec (npm:cborg, chosen by the benchmark
 * in bench/cbor_bench.ts). Byte strings are `Uint8Array`; integers above 2^53
 * decode as `bigint`.
 *
 * @module
 */
import { decode, encode } from "cborg";

/** A decoded CBOR value. */
export type CborValue = unknown;

const KEEP_ORDER = { mapSorter: (): number => 0 };

/**
 * Encodes a value as CBOR. `Uint8Array` becomes a plain byte string (no tag),
 * `null` becomes `0xf6`, `bigint` an integer; map keys keep insertion order
 * (the Go structs' declaration order, so frames match the Go encoder byte for
 * byte).
 *
 * @param value The value; use `null`, not `undefined`, for absent fields.
 * @returns The CBOR bytes.
 */
export function encodeCbor(value: unknown): Uint8Array {
  return encode(value, KEEP_ORDER);
}

/**
 * Decodes exactly one CBOR item whose maps all have text keys; maps become
 * plain objects. Throws on trailing bytes, non-text map keys or malformed input.
 *
 * @param bytes The encoded item.
 * @returns The decoded value.
 */
export function decodeCbor(bytes: Uint8Array): CborValue {
  return decode(bytes, { useMaps: false, rejectDuplicateMapKeys: false });
}

/**
 * Decodes exactly one CBOR item, turning every map into a `Map` so that
 * integer and byte-string keys survive (the PKI document needs this).
 *
 * @param bytes The encoded item.
 * @returns The decoded value.
 */
export function decodeCborMaps(bytes: Uint8Array): CborValue {
  return decode(bytes, { useMaps: true });
}
