/**
 * The only file that knows the CBOR codec (npm:cborg, chosen by the benchmark
 * in bench/cbor_bench.ts). Byte strings are `Uint8Array`; integers above 2^53
 * decode as `bigint`.
 *
 * Every decoder here first runs {@linkcode scanCbor}, a structural pass over
 * the raw bytes that allocates nothing. It refuses what kpclientd never sends
 * (more than {@linkcode CBOR_MAX_ELEMENTS} array elements and map pairs in
 * all, nesting deeper than {@linkcode CBOR_MAX_DEPTH}, tags, indefinite
 * lengths unless asked for, simple values other than false, true, null and
 * undefined) before cborg builds a single object, so a hostile frame costs at
 * most a small multiple of its own size.
 *
 * Requests and replies then take a direct path that produces exactly what
 * cborg produces: the encoder writes plain objects, arrays, byte and text
 * strings, safe integers, bigints, booleans, `null` and `undefined` straight
 * into one buffer of the right size, and the decoder (only ever on bytes the
 * scan has passed) reads definite-length items with text map keys, reusing
 * the strings of keys it has seen before. Anything else (floats, other types,
 * malformed input) goes to cborg, so results and errors stay cborg's.
 *
 * The scan lives in lib/_cbor_scan.ts, the in-place readers of scanned bytes
 * in lib/_cbor_read.ts and the direct paths in lib/_cbor_encode.ts and
 * lib/_cbor_decode.ts; this file re-exports what the rest of the client uses
 * and is the only one that imports cborg.
 *
 * @module
 */
import { decode, encode, Token, Tokenizer } from "cborg";
import { type CborBudget, checkCbor } from "./_cbor_scan.ts";
import { encodeCborDirect, encodeCborEnvelopeDirect } from "./_cbor_encode.ts";
import { decodeCborDirect, DIRECT_UNSUPPORTED } from "./_cbor_decode.ts";

export {
  CBOR_MAX_DEPTH,
  CBOR_MAX_ELEMENTS,
  type CborBudget,
  type CborScanOptions,
  checkCbor,
  scanCbor,
} from "./_cbor_scan.ts";
export {
  type CborEntry,
  cborMapEntries,
  cborTypeAt,
  decodeCborBytesList,
  decodeCborScalarAt,
  NOT_SCALAR,
} from "./_cbor_read.ts";

/** A decoded CBOR value. */
export type CborValue = unknown;

const scanWhole = checkCbor;

const KEEP_ORDER = { mapSorter: (): number => 0 };
const DECODE_PLAIN = { useMaps: false, rejectDuplicateMapKeys: false };

/**
 * Encodes a value as CBOR. `Uint8Array` becomes a plain byte string (no tag),
 * `null` becomes `0xf6`, `bigint` an integer; map keys keep insertion order
 * (the Go structs' declaration order, so frames match the Go encoder byte for
 * byte).
 *
 * @param value The value; use `null`, not `undefined`, for absent fields.
 * @param headroom Bytes left free (zero) before the item, for a frame's
 *   length prefix.
 * @returns The CBOR bytes, after `headroom` zero bytes.
 */
export function encodeCbor(value: unknown, headroom: number = 0): Uint8Array {
  return encodeCborDirect(value, headroom) ??
    withHeadroom(encode(value, KEEP_ORDER), headroom);
}

/**
 * Encodes `{ [variant]: { [entries[0]]: entries[1], [entries[2]]: entries[3],
 * … } }`, keys in the order given: the shape of every request, without
 * building the two objects. Bytes equal `encodeCbor()` of those objects.
 *
 * @param variant The single key of the outer map.
 * @param entries Keys and values of the inner map, alternating.
 * @param headroom Bytes left free (zero) before the item.
 * @returns The CBOR bytes, after `headroom` zero bytes.
 */
export function encodeCborEnvelope(
  variant: string,
  entries: readonly unknown[],
  headroom: number = 0,
): Uint8Array {
  return encodeCborEnvelopeDirect(variant, entries, headroom) ??
    encodeCbor(envelopeObject(variant, entries), headroom);
}

function envelopeObject(
  variant: string,
  entries: readonly unknown[],
): Record<string, unknown> {
  const inner: Record<string, unknown> = {};
  for (let i = 0; i < entries.length; i += 2) {
    inner[entries[i] as string] = entries[i + 1];
  }
  return { [variant]: inner };
}

function withHeadroom(bytes: Uint8Array, headroom: number): Uint8Array {
  if (headroom === 0) return bytes;
  const out = new Uint8Array(headroom + bytes.length);
  out.set(bytes, headroom);
  return out;
}

/** Options of {@linkcode decodeCbor}. */
export interface DecodeCborOptions {
  /**
   * Accept floats. Frames of the thin protocol never hold one (only the PKI
   * document does, inside a byte string), so the protocol decoder refuses
   * them: a float can then never pass for an integer field.
   * @default {true}
   */
  allowFloats?: boolean;
  /** Accept indefinite-length items. @default {false} */
  allowIndefinite?: boolean;
  /** Limit of array elements plus map pairs, in all. @default {CBOR_MAX_ELEMENTS} */
  maxElements?: number;
}

/**
 * Decodes exactly one CBOR item whose maps all have text keys; maps become
 * plain objects (a `__proto__` key becomes an own property). Throws on
 * trailing bytes, non-text map keys or malformed input, and on anything
 * {@linkcode scanCbor} refuses.
 *
 * @param bytes The encoded item.
 * @param options Whether floats are accepted.
 * @returns The decoded value.
 * @throws {ProtocolError} When the structure is refused by the scan.
 * @throws {Error} When cborg rejects the item (for example a non-text key).
 */
export function decodeCbor(
  bytes: Uint8Array,
  options: DecodeCborOptions = {},
): CborValue {
  scanWhole(bytes, options);
  const decoded = decodeCborDirect(bytes);
  if (decoded !== DIRECT_UNSUPPORTED) return decoded;
  return decode(bytes, DECODE_PLAIN);
}

/**
 * Decodes exactly one CBOR item, turning every map into a `Map` so that
 * integer and byte-string keys survive.
 *
 * @param bytes The encoded item.
 * @returns The decoded value.
 * @throws {ProtocolError} When the structure is refused by the scan.
 * @throws {Error} When cborg rejects the item.
 */
export function decodeCborMaps(bytes: Uint8Array): CborValue {
  scanWhole(bytes, {});
  return decode(bytes, { useMaps: true });
}

/** Hands cborg's tokens through, turning every integer into a `bigint`. */
class ExactIntegers {
  readonly #inner: Tokenizer;
  constructor(bytes: Uint8Array) {
    this.#inner = new Tokenizer(bytes, { allowBigInt: true });
  }
  done(): boolean {
    return this.#inner.done();
  }
  pos(): number {
    return this.#inner.pos();
  }
  next(): Token {
    const token = this.#inner.next();
    if (
      (token.type.major === 0 || token.type.major === 1) &&
      typeof token.value === "number"
    ) {
      // cborg shares the tokens of small integers: never change them.
      return new Token(token.type, BigInt(token.value), token.encodedLength);
    }
    return token;
  }
}

/**
 * Decodes exactly one CBOR item like {@linkcode decodeCborMaps}, except that
 * every integer becomes a `bigint` and every float a `number`: the two stay
 * apart, so a float can be refused where Go expects an integer (the PKI
 * document needs this).
 *
 * @param bytes The encoded item.
 * @param budget An element limit shared with other decodes, if any.
 * @returns The decoded value.
 * @throws {ProtocolError} When the structure is refused by the scan.
 * @throws {Error} When cborg rejects the item.
 */
export function decodeCborExact(
  bytes: Uint8Array,
  budget?: CborBudget,
): CborValue {
  scanWhole(bytes, budget === undefined ? {} : { budget });
  return decode(bytes, { useMaps: true, tokenizer: new ExactIntegers(bytes) });
}
