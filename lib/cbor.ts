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
 * @module
 */
import { decode, encode, Token, Tokenizer } from "cborg";
import { ProtocolError } from "./errors.ts";

/** A decoded CBOR value. */
export type CborValue = unknown;

/**
 * Most array elements plus map pairs one decoded item may hold, in all. The
 * Go decoder of kpclientd (fxamacker/cbor) refuses more than this many in one
 * array or map; no frame of the thin protocol comes near it.
 */
export const CBOR_MAX_ELEMENTS = 131_072;
/** Deepest nesting of arrays and maps accepted, as in the Go decoder. */
export const CBOR_MAX_DEPTH = 32;

/** Options of {@linkcode scanCbor}. */
export interface CborScanOptions {
  /** Offset of the item. @default {0} */
  start?: number;
  /** Accept floats (major type 7, 2/4/8 bytes). @default {true} */
  allowFloats?: boolean;
  /**
   * Accept indefinite-length strings, arrays and maps (kpclientd never sends
   * them; another pigeonhole-cp may).
   * @default {false}
   */
  allowIndefinite?: boolean;
  /** Limit of array elements plus map pairs, in all. @default {CBOR_MAX_ELEMENTS} */
  maxElements?: number;
  /** Limit of nesting. @default {CBOR_MAX_DEPTH} */
  maxDepth?: number;
  /**
   * A budget shared by several items (a document and the items nested in its
   * byte strings): its `elements` is the limit instead of `maxElements`, and
   * the scan takes what the item uses from it.
   */
  budget?: CborBudget;
}

/**
 * What is left of an element limit shared by several decodes.
 */
export interface CborBudget {
  /** Array elements plus map pairs still allowed. */
  elements: number;
}

function scanError(detail: string, at: number): ProtocolError {
  return new ProtocolError(`Cannot decode CBOR: ${detail} at byte ${at}`);
}

/**
 * Checks the structure of one CBOR item without building it: every head is
 * complete, every length fits in the bytes that remain, and the item stays
 * within the limits of the options. Runs in time proportional to the number
 * of heads, not of bytes (strings are skipped), and uses memory proportional
 * to the nesting depth only.
 *
 * @param bytes The encoded bytes.
 * @param options Where the item starts and the limits.
 * @returns The offset just after the item.
 * @throws {ProtocolError} When the item is truncated, malformed, or outside
 *   the limits; the message names the offending byte.
 */
export function scanCbor(
  bytes: Uint8Array,
  options: CborScanOptions = {},
): number {
  const maxElements = options.budget?.elements ?? options.maxElements ??
    CBOR_MAX_ELEMENTS;
  const maxDepth = options.maxDepth ?? CBOR_MAX_DEPTH;
  const allowFloats = options.allowFloats ?? true;
  const allowIndefinite = options.allowIndefinite ?? false;
  const end = bytes.length;
  // Per open array or map: items still to read (a map counts 2 per pair),
  // or -1 for an indefinite one, whose items read so far are in `seen`.
  const left: number[] = [];
  const seen: number[] = [];
  const maps: boolean[] = [];
  let elements = 0;
  let pos = options.start ?? 0;
  // The head at `pos`: sets major, info and arg, and moves pos past it.
  let major = 0;
  let info = 0;
  let arg = 0;
  const head = (): void => {
    if (pos >= end) throw scanError("item is truncated", pos);
    const at = pos;
    const b = bytes[pos++]!;
    major = b >> 5;
    info = b & 0x1f;
    arg = info;
    if (info >= 24 && info <= 27) {
      const n = 1 << (info - 24);
      if (pos + n > end) throw scanError("item head is truncated", at);
      arg = 0;
      // Inexact above 2^53, but every such length is refused anyway.
      for (let i = 0; i < n; i++) arg = arg * 256 + bytes[pos + i]!;
      pos += n;
    } else if (info > 27 && info < 31) {
      throw scanError(`reserved additional information ${info}`, at);
    }
  };
  const count = (n: number, at: number): void => {
    elements += n;
    if (elements > maxElements) {
      throw scanError(
        `more than ${maxElements} array elements and map pairs in all`,
        at,
      );
    }
  };
  for (;;) {
    const top = left.length - 1;
    if (top >= 0 && left[top] === -1 && bytes[pos] === 0xff) {
      if (seen[top]! % 2 === 1) {
        throw scanError("indefinite-length map ends after a key", pos);
      }
      pos++;
      left.pop();
      seen.pop();
      maps.pop();
    } else {
      const at = pos;
      head();
      if (info === 31 && (major === 7 || !allowIndefinite)) {
        throw scanError(
          major === 7 ? "unexpected break" : "indefinite-length item",
          at,
        );
      }
      if (top >= 0 && left[top] === -1) {
        // An element of an indefinite array (counted 2 so the parity stays
        // even), or the key or value of a pair of an indefinite map.
        if (seen[top]! % 2 === 0) count(1, at);
        seen[top]! += maps[top]! ? 1 : 2;
      }
      switch (major) {
        case 2:
        case 3:
          if (info === 31) {
            // Definite chunks of the same type, up to a break.
            while (pos >= end || bytes[pos] !== 0xff) {
              const chunk = pos;
              const outer: number = major;
              head();
              if (major !== outer || info === 31) {
                throw scanError("bad chunk in indefinite-length string", chunk);
              }
              if (arg > end - pos) {
                throw scanError("string chunk runs past the end", chunk);
              }
              pos += arg;
            }
            pos++;
          } else if (arg > end - pos) {
            throw scanError(
              `string of ${arg} bytes runs past the end (${end - pos} left)`,
              at,
            );
          } else pos += arg;
          break;
        case 4:
        case 5: {
          const what = major === 4 ? "array" : "map";
          if (left.length >= maxDepth) {
            throw scanError(`nesting deeper than ${maxDepth}`, at);
          }
          if (info === 31) {
            left.push(-1);
            seen.push(0);
            maps.push(major === 5);
            continue;
          }
          count(arg, at);
          const items = major === 5 ? arg * 2 : arg;
          if (items > end - pos) {
            throw scanError(
              `${what} of ${arg} entries runs past the end (${
                end - pos
              } bytes left)`,
              at,
            );
          }
          if (items > 0) {
            left.push(items);
            seen.push(0);
            maps.push(major === 5);
            continue;
          }
          break;
        }
        case 6:
          throw scanError(`tag ${arg}`, at);
        case 7:
          if (info >= 25) {
            if (!allowFloats) {
              throw scanError("float where none is allowed", at);
            }
          } else if (info < 20 || info > 23) {
            throw scanError(`simple value ${arg}`, at);
          }
          break;
          // 0 and 1: integers, any width.
      }
    }
    // One item is complete: count it in the containers it completes.
    for (;;) {
      const t = left.length - 1;
      if (t < 0) {
        if (options.budget !== undefined) options.budget.elements -= elements;
        return pos;
      }
      if (left[t] === -1) break;
      const rest = left[t]! - 1;
      if (rest > 0) {
        left[t] = rest;
        break;
      }
      left.pop();
      seen.pop();
      maps.pop();
    }
  }
}

/**
 * Runs {@linkcode scanCbor} over `bytes` and checks that they hold exactly
 * one item.
 *
 * @param bytes The encoded item.
 * @param options The limits.
 * @throws {ProtocolError} When the scan refuses the item or bytes follow it.
 */
export function checkCbor(bytes: Uint8Array, options: CborScanOptions): void {
  const end = scanCbor(bytes, options);
  if (end !== bytes.length) {
    throw scanError(`${bytes.length - end} trailing bytes after the item`, end);
  }
}

const scanWhole = checkCbor;

/** Argument of the head read by `readHead`, and the offset after it. */
const head = { arg: 0, next: 0 };

/** Reads the definite head at `pos` of an item already checked by the scan. */
function readHead(bytes: Uint8Array, pos: number): number {
  const b = bytes[pos]!;
  const info = b & 0x1f;
  let arg = info;
  let next = pos + 1;
  if (info >= 24 && info <= 27) {
    const n = 1 << (info - 24);
    arg = 0;
    for (let i = 0; i < n; i++) arg = arg * 256 + bytes[next + i]!;
    next += n;
  }
  head.arg = arg;
  head.next = next;
  return b >> 5;
}

/** The end of the definite item at `pos` of bytes already checked by the scan. */
function skipCbor(bytes: Uint8Array, pos: number): number {
  let items = 1;
  while (items > 0) {
    const major = readHead(bytes, pos);
    pos = head.next;
    items--;
    if (major === 2 || major === 3) pos += head.arg;
    else if (major === 4) items += head.arg;
    else if (major === 5) items += 2 * head.arg;
  }
  return pos;
}

/** Returned by {@linkcode decodeCborScalarAt} for an array or a map. */
export const NOT_SCALAR: unique symbol = Symbol("not a scalar");

/**
 * Decodes the item at `pos` when it is not an array or a map, without cborg:
 * an integer (a `number`, or a `bigint` beyond 2^53), a byte string (a
 * copy), a text string (valid UTF-8 only, as Go demands), a boolean, `null`
 * or `undefined`.
 *
 * @param bytes Bytes already checked by {@linkcode scanCbor} (definite
 *   lengths, no tags).
 * @param pos Offset of the item.
 * @returns The value, or {@linkcode NOT_SCALAR} for an array or a map.
 * @throws {ProtocolError} When a text string is not valid UTF-8, or the
 *   item is a float.
 */
export function decodeCborScalarAt(
  bytes: Uint8Array,
  pos: number,
): unknown {
  const major = readHead(bytes, pos);
  const info = bytes[pos]! & 0x1f;
  const { arg, next } = head;
  switch (major) {
    case 0:
    case 1: {
      let n: number | bigint = arg;
      if (info === 27 && arg > Number.MAX_SAFE_INTEGER) {
        n = new DataView(bytes.buffer, bytes.byteOffset + pos + 1, 8)
          .getBigUint64(0, false);
      }
      if (major === 0) return n;
      return typeof n === "bigint" ? -1n - n : -1 - n;
    }
    case 2:
      return bytes.slice(next, next + arg);
    case 3: {
      // The lenient decoder is much cheaper for long strings (the strict one
      // takes three times the memory); only a string holding U+FFFD, which
      // is where invalid bytes would show, is checked strictly.
      const text = lenient.decode(bytes.subarray(next, next + arg));
      if (!text.includes("\ufffd")) return text;
      try {
        return utf8.decode(bytes.subarray(next, next + arg));
      } catch (err) {
        throw new ProtocolError(
          `Cannot decode CBOR: text string is not valid UTF-8 at byte ${pos}`,
          { cause: err },
        );
      }
    }
    case 4:
    case 5:
      return NOT_SCALAR;
  }
  switch (bytes[pos]) {
    case 0xf4:
      return false;
    case 0xf5:
      return true;
    case 0xf6:
      return null;
    case 0xf7:
      return undefined;
  }
  throw scanError(`unexpected ${cborTypeAt(bytes, pos)}`, pos);
}

/**
 * What kind of item starts at `pos`, in the words of error messages.
 *
 * @param bytes Bytes already checked by {@linkcode scanCbor}.
 * @param pos Offset of the item.
 * @returns `map`, `array`, `byte string`, `text string`, `integer`,
 *   `boolean`, `null`, `undefined`, `float` or `tag`.
 */
export function cborTypeAt(bytes: Uint8Array, pos: number): string {
  const b = bytes[pos]!;
  switch (b >> 5) {
    case 0:
    case 1:
      return "integer";
    case 2:
      return "byte string";
    case 3:
      return "text string";
    case 4:
      return "array";
    case 5:
      return "map";
    case 6:
      return "tag";
  }
  if (b === 0xf4 || b === 0xf5) return "boolean";
  if (b === 0xf6) return "null";
  if (b === 0xf7) return "undefined";
  return "float";
}

/** A map entry with a text key: the key, and where its value lies. */
export interface CborEntry {
  /** The key. */
  key: string;
  /** Offset of the value. */
  start: number;
  /** Offset just after the value. */
  end: number;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const lenient = new TextDecoder("utf-8");

/** A short ASCII string without TextDecoder (map keys), else `null`. */
function shortAscii(
  bytes: Uint8Array,
  start: number,
  length: number,
): string | null {
  if (length > 48) return null;
  let out = "";
  for (let i = start; i < start + length; i++) {
    const c = bytes[i]!;
    if (c >= 0x80) return null;
    out += String.fromCharCode(c);
  }
  return out;
}

/**
 * The entries of the definite map at `pos`, with keys decoded and values
 * only located, so that a caller decodes the values it knows and never
 * builds the others.
 *
 * @param bytes Bytes already checked by {@linkcode scanCbor} (definite lengths).
 * @param pos Offset of the map.
 * @param skipNil Leave out entries whose value is null or undefined (their
 *   keys are not even decoded: 24 of the 25 keys of a Go envelope).
 * @returns The entries in order (duplicates kept).
 * @throws {ProtocolError} When a key is not a UTF-8 text string.
 */
export function cborMapEntries(
  bytes: Uint8Array,
  pos: number,
  skipNil = false,
): CborEntry[] {
  if (readHead(bytes, pos) !== 5) {
    throw scanError("expected a map", pos);
  }
  const n = head.arg;
  let at = head.next;
  const out: CborEntry[] = [];
  for (let i = 0; i < n; i++) {
    if (readHead(bytes, at) !== 3) {
      throw scanError(`map key of type ${cborTypeAt(bytes, at)}`, at);
    }
    if (skipNil) {
      const value = head.next + head.arg;
      if (bytes[value] === 0xf6 || bytes[value] === 0xf7) {
        at = value + 1;
        continue;
      }
    }
    let key = "";
    try {
      key = shortAscii(bytes, head.next, head.arg) ??
        utf8.decode(bytes.subarray(head.next, head.next + head.arg));
    } catch (err) {
      throw new ProtocolError(
        `Cannot decode CBOR: map key is not valid UTF-8 at byte ${at}`,
        { cause: err },
      );
    }
    const start = head.next + head.arg;
    const end = skipCbor(bytes, start);
    out.push({ key, start, end });
    at = end;
  }
  return out;
}

/**
 * Decodes the definite array of byte strings at `pos` without a buffer per
 * string (a list of many short strings would otherwise cost one each): the
 * strings are views of `bytes` itself when the caller owns it, or of one copy
 * of the list's bytes.
 *
 * @param bytes Bytes already checked by {@linkcode scanCbor} (definite lengths).
 * @param pos Offset of the array.
 * @param owned Whether `bytes` belongs to the caller, who will never change
 *   or reuse it: the strings are then views of it, with no copy at all.
 * @returns The byte strings, or the index and type of the first element
 *   that is not one.
 */
export function decodeCborBytesList(
  bytes: Uint8Array,
  pos: number,
  owned = false,
): Uint8Array[] | { index: number; type: string } {
  if (readHead(bytes, pos) !== 4) return { index: -1, type: "not an array" };
  const n = head.arg;
  const starts: number[] = new Array(n);
  const ends: number[] = new Array(n);
  let at = head.next;
  for (let i = 0; i < n; i++) {
    if (readHead(bytes, at) !== 2) {
      return { index: i, type: cborTypeAt(bytes, at) };
    }
    starts[i] = head.next;
    ends[i] = at = head.next + head.arg;
  }
  if (n === 0) return [];
  const from = owned ? 0 : starts[0]!;
  const region = owned ? bytes : bytes.slice(from, ends[n - 1]);
  const out: Uint8Array[] = new Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = region.subarray(starts[i]! - from, ends[i]! - from);
  }
  return out;
}

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
  return decode(bytes, { useMaps: false, rejectDuplicateMapKeys: false });
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
