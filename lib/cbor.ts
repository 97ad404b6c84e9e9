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

const NOT_SIMPLE: unique symbol = Symbol("not false, true, null or undefined");

/** The value of a one-byte simple item (false, true, null, undefined). */
function simpleValue(b: number): unknown {
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

const KEEP_ORDER = { mapSorter: (): number => 0 };
const DECODE_PLAIN = { useMaps: false, rejectDuplicateMapKeys: false };

/** Thrown inside the direct paths when cborg has to handle the input. */
const UNSUPPORTED: unique symbol = Symbol("cbor: use cborg");
/** Nesting deeper than this goes to cborg (which also detects cycles). */
const MAX_DEPTH = 64;
const TWO_32 = 4294967296;
const TWO_64 = 1n << 64n;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

// ---------------------------------------------------------------------------
// Encoding

/** Encoded text items (head + UTF-8) of short map keys (field names). */
const keyCache = new Map<string, Uint8Array>();
const KEY_CACHE_MAX_ENTRIES = 1024;
const KEY_CACHE_MAX_LENGTH = 64;

function headLength(n: number | bigint): number {
  return n < 24 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : n < TWO_32 ? 5 : 9;
}

function encodedText(s: string): Uint8Array {
  const utf8 = textEncoder.encode(s);
  const out = new Uint8Array(headLength(utf8.length) + utf8.length);
  writeHead(out, 0, 3, utf8.length);
  out.set(utf8, out.length - utf8.length);
  return out;
}

function encodedKey(s: string): Uint8Array {
  const cached = keyCache.get(s);
  if (cached !== undefined) return cached;
  const out = encodedText(s);
  if (
    s.length <= KEY_CACHE_MAX_LENGTH && keyCache.size < KEY_CACHE_MAX_ENTRIES
  ) keyCache.set(s, out);
  return out;
}

/**
 * Size pass: returns the encoded size of `v` and records, in visit order,
 * what the write pass needs (encoded strings and object key lists).
 */
function sizeOf(v: unknown, plan: unknown[], depth: number): number {
  switch (typeof v) {
    case "number":
      if (!Number.isSafeInteger(v)) throw UNSUPPORTED;
      return headLength(v >= 0 ? v : -1 - v);
    case "bigint": {
      const u = v >= 0n ? v : -1n - v;
      if (u >= TWO_64) throw UNSUPPORTED;
      return headLength(u);
    }
    case "string": {
      const t = encodedText(v);
      plan.push(t);
      return t.length;
    }
    case "boolean":
    case "undefined":
      return 1;
    case "object": {
      if (v === null) return 1;
      if (depth >= MAX_DEPTH) throw UNSUPPORTED;
      if (v instanceof Uint8Array) return headLength(v.length) + v.length;
      if (Array.isArray(v)) {
        let n = headLength(v.length);
        for (let i = 0; i < v.length; i++) {
          n += sizeOf(v[i], plan, depth + 1);
        }
        return n;
      }
      if (v.constructor !== Object) throw UNSUPPORTED;
      const keys = Object.keys(v);
      plan.push(keys);
      let n = headLength(keys.length);
      for (const k of keys) {
        const t = encodedKey(k);
        plan.push(t);
        n += t.length +
          sizeOf((v as Record<string, unknown>)[k], plan, depth + 1);
      }
      return n;
    }
    default:
      throw UNSUPPORTED;
  }
}

/** Writes a head (major type and argument) at `at`; returns the new position. */
function writeHead(
  out: Uint8Array,
  at: number,
  major: number,
  n: number | bigint,
): number {
  const m = major << 5;
  if (n < 24) {
    out[at] = m | Number(n);
    return at + 1;
  }
  if (n < 256) {
    out[at] = m | 24;
    out[at + 1] = Number(n);
    return at + 2;
  }
  if (n < 65536) {
    const x = Number(n);
    out[at] = m | 25;
    out[at + 1] = x >>> 8;
    out[at + 2] = x & 0xff;
    return at + 3;
  }
  if (n < TWO_32) {
    const x = Number(n);
    out[at] = m | 26;
    out[at + 1] = x >>> 24;
    out[at + 2] = (x >>> 16) & 0xff;
    out[at + 3] = (x >>> 8) & 0xff;
    out[at + 4] = x & 0xff;
    return at + 5;
  }
  let hi: number;
  let lo: number;
  if (typeof n === "bigint") {
    hi = Number(n >> 32n);
    lo = Number(n & 0xffff_ffffn);
  } else {
    hi = Math.floor(n / TWO_32);
    lo = n >>> 0;
  }
  out[at] = m | 27;
  out[at + 1] = hi >>> 24;
  out[at + 2] = (hi >>> 16) & 0xff;
  out[at + 3] = (hi >>> 8) & 0xff;
  out[at + 4] = hi & 0xff;
  out[at + 5] = lo >>> 24;
  out[at + 6] = (lo >>> 16) & 0xff;
  out[at + 7] = (lo >>> 8) & 0xff;
  out[at + 8] = lo & 0xff;
  return at + 9;
}

/** The write pass; `plan.i` walks the size pass's records in order. */
function writeValue(
  out: Uint8Array,
  at: number,
  v: unknown,
  plan: { list: unknown[]; i: number },
): number {
  switch (typeof v) {
    case "number":
      return v >= 0 ? writeHead(out, at, 0, v) : writeHead(out, at, 1, -1 - v);
    case "bigint":
      return v >= 0n
        ? writeHead(out, at, 0, v)
        : writeHead(out, at, 1, -1n - v);
    case "string": {
      const t = plan.list[plan.i++] as Uint8Array;
      out.set(t, at);
      return at + t.length;
    }
    case "boolean":
      out[at] = v ? 0xf5 : 0xf4;
      return at + 1;
    case "undefined":
      out[at] = 0xf7;
      return at + 1;
    default: {
      if (v === null) {
        out[at] = 0xf6;
        return at + 1;
      }
      if (v instanceof Uint8Array) {
        const p = writeHead(out, at, 2, v.length);
        out.set(v, p);
        return p + v.length;
      }
      if (Array.isArray(v)) {
        let p = writeHead(out, at, 4, v.length);
        for (let i = 0; i < v.length; i++) p = writeValue(out, p, v[i], plan);
        return p;
      }
      const keys = plan.list[plan.i++] as string[];
      let p = writeHead(out, at, 5, keys.length);
      for (const k of keys) {
        p = writeValue(out, p, k, plan);
        p = writeValue(out, p, (v as Record<string, unknown>)[k], plan);
      }
      return p;
    }
  }
}

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
  const list: unknown[] = [];
  let size: number;
  try {
    size = sizeOf(value, list, 0);
  } catch (err) {
    if (err !== UNSUPPORTED) throw err;
    return withHeadroom(encode(value, KEEP_ORDER), headroom);
  }
  const out = new Uint8Array(headroom + size);
  const end = writeValue(out, headroom, value, { list, i: 0 });
  // A getter that answered differently in the two passes: let cborg decide.
  if (end !== out.length) {
    return withHeadroom(encode(value, KEEP_ORDER), headroom);
  }
  return out;
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
  const list: unknown[] = [];
  const outer = encodedKey(variant);
  let size = 1 + outer.length + headLength(entries.length / 2);
  try {
    for (let i = 0; i < entries.length; i += 2) {
      const key = encodedKey(entries[i] as string);
      list.push(key);
      size += key.length + sizeOf(entries[i + 1], list, 2);
    }
  } catch (err) {
    if (err !== UNSUPPORTED) throw err;
    return encodeCbor(envelopeObject(variant, entries), headroom);
  }
  const out = new Uint8Array(headroom + size);
  out[headroom] = 0xa1;
  out.set(outer, headroom + 1);
  let at = writeHead(out, headroom + 1 + outer.length, 5, entries.length / 2);
  const plan = { list, i: 0 };
  for (let i = 0; i < entries.length; i += 2) {
    const key = list[plan.i++] as Uint8Array;
    out.set(key, at);
    at = writeValue(out, at + key.length, entries[i + 1], plan);
  }
  if (at !== out.length) {
    return encodeCbor(envelopeObject(variant, entries), headroom);
  }
  return out;
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

// ---------------------------------------------------------------------------
// Decoding

/** Strings of map keys seen before, by a hash of their bytes. */
const KEY_SLOTS = 512;
const keySlots: (string | undefined)[] = new Array(KEY_SLOTS).fill(undefined);
const KEY_MAX_LENGTH = 48;

const EMPTY = new Uint8Array(0);
let src: Uint8Array = EMPTY;
let pos = 0;

function need(n: number): void {
  if (pos + n > src.length) throw UNSUPPORTED;
}

function uint32At(at: number): number {
  return src[at]! * 16777216 +
    ((src[at + 1]! << 16) | (src[at + 2]! << 8) | src[at + 3]!);
}

/** Reads the argument of a head whose first byte is `b` (a definite one). */
function readArgument(b: number): number | bigint {
  const minor = b & 31;
  if (minor < 24) return minor;
  switch (minor) {
    case 24:
      need(1);
      return src[pos++]!;
    case 25: {
      need(2);
      const v = (src[pos]! << 8) | src[pos + 1]!;
      pos += 2;
      return v;
    }
    case 26: {
      need(4);
      pos += 4;
      return uint32At(pos - 4);
    }
    case 27: {
      need(8);
      const hi = uint32At(pos);
      const lo = uint32At(pos + 4);
      pos += 8;
      const v = hi * TWO_32 + lo;
      return v <= Number.MAX_SAFE_INTEGER
        ? v
        : (BigInt(hi) << 32n) + BigInt(lo);
    }
    default:
      throw UNSUPPORTED; // indefinite lengths and reserved values
  }
}

/** A length (of a string, array or map) that fits the input. */
function readLength(b: number): number {
  const n = readArgument(b);
  if (typeof n !== "number" || n > src.length - pos) throw UNSUPPORTED;
  return n;
}

function readText(n: number): string {
  const end = pos + n;
  for (let i = pos; i < end; i++) {
    if (src[i]! >= 0x80) {
      const s = textDecoder.decode(src.subarray(pos, end));
      pos = end;
      return s;
    }
  }
  const s = n <= 256
    ? String.fromCharCode.apply(null, src.subarray(pos, end) as never)
    : textDecoder.decode(src.subarray(pos, end));
  pos = end;
  return s;
}

/** A map key: an ASCII key seen before comes back as the same string. */
function readKey(): string {
  need(1);
  const b = src[pos++]!;
  if (b >> 5 !== 3) throw UNSUPPORTED; // cborg rejects non-text keys itself
  const n = readLength(b);
  if (n > KEY_MAX_LENGTH) return readText(n);
  let h = n;
  for (let i = pos; i < pos + n; i++) {
    const c = src[i]!;
    if (c >= 0x80) return readText(n);
    h = (Math.imul(h, 31) + c) | 0;
  }
  const slot = (h >>> 0) % KEY_SLOTS;
  const known = keySlots[slot];
  if (known !== undefined && known.length === n) {
    let same = true;
    for (let i = 0; i < n; i++) {
      if (known.charCodeAt(i) !== src[pos + i]) {
        same = false;
        break;
      }
    }
    if (same) {
      pos += n;
      return known;
    }
  }
  const s = readText(n);
  keySlots[slot] = s;
  return s;
}

function readValue(depth: number): unknown {
  need(1);
  const b = src[pos++]!;
  switch (b >> 5) {
    case 0:
      return readArgument(b);
    case 1: {
      const n = readArgument(b);
      if (typeof n === "bigint") return -1n - n;
      const v = -1 - n;
      return v >= Number.MIN_SAFE_INTEGER ? v : -1n - BigInt(n);
    }
    case 2: {
      const n = readLength(b);
      pos += n;
      return src.slice(pos - n, pos);
    }
    case 3:
      return readText(readLength(b));
    case 4: {
      if (depth >= MAX_DEPTH) throw UNSUPPORTED;
      const n = readLength(b);
      const out = new Array(n);
      for (let i = 0; i < n; i++) out[i] = readValue(depth + 1);
      return out;
    }
    case 5: {
      if (depth >= MAX_DEPTH) throw UNSUPPORTED;
      const n = readLength(b);
      const out: Record<string, unknown> = {};
      for (let i = 0; i < n; i++) {
        const key = readKey();
        if (key === "__proto__") throw UNSUPPORTED;
        out[key] = readValue(depth + 1);
      }
      return out;
    }
    case 7: {
      const simple = simpleValue(b);
      if (simple !== NOT_SIMPLE) return simple;
      throw UNSUPPORTED; // floats and other simple values
    }
    default:
      throw UNSUPPORTED; // tags
  }
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
  if (bytes.length > 0) {
    // A Node Buffer's slice() would alias: read through a plain view.
    src = bytes.constructor === Uint8Array
      ? bytes
      : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    pos = 0;
    try {
      const value = readValue(0);
      if (pos === bytes.length) return value;
    } catch (err) {
      if (err !== UNSUPPORTED) throw err;
    } finally {
      src = EMPTY;
    }
  }
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
