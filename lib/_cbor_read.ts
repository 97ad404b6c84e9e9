/**
 * Reading items in place from bytes the scan of lib/_cbor_scan.ts has
 * passed: heads, scalars, the entries of a map (keys decoded, values only
 * located) and lists of byte strings, without cborg.
 *
 * @module
 */
import { ProtocolError } from "./errors.ts";
import { scanError } from "./_cbor_scan.ts";

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

/** Returned by {@linkcode simpleValue} for any other byte. */
export const NOT_SIMPLE: unique symbol = Symbol(
  "not false, true, null or undefined",
);

/**
 * The value of a one-byte simple item (false, true, null, undefined).
 *
 * @param b The byte.
 * @returns The value, or {@linkcode NOT_SIMPLE}.
 */
export function simpleValue(b: number): unknown {
  switch (b) {
    case 0xf4:
      return false;
    case 0xf5:
      return true;
    case 0xf6:
      return null;
    case 0xf7:
      return undefined;
  }
  return NOT_SIMPLE;
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
  const simple = simpleValue(bytes[pos]!);
  if (simple !== NOT_SIMPLE) return simple;
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
