/**
 * The only file that knows the CBOR codec (npm:cborg, chosen by the benchmark
 * in bench/cbor_bench.ts). Byte strings are `Uint8Array`; integers above 2^53
 * decode as `bigint`.
 *
 * Requests and replies take a direct path that produces exactly what cborg
 * produces: the encoder writes plain objects, arrays, byte and text strings,
 * safe integers, bigints, booleans, `null` and `undefined` straight into one
 * buffer of the right size, and the decoder reads definite-length items with
 * text map keys, reusing the strings of keys it has seen before. Anything
 * else (floats, tags, indefinite lengths, other types, malformed input) goes
 * to cborg, so results and errors stay cborg's.
 *
 * @module
 */
import { decode, encode } from "cborg";

/** A decoded CBOR value. */
export type CborValue = unknown;

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
    case 7:
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
      throw UNSUPPORTED; // floats and other simple values
    default:
      throw UNSUPPORTED; // tags
  }
}

/**
 * Decodes exactly one CBOR item whose maps all have text keys; maps become
 * plain objects. Throws on trailing bytes, non-text map keys or malformed input.
 *
 * @param bytes The encoded item.
 * @returns The decoded value.
 */
export function decodeCbor(bytes: Uint8Array): CborValue {
  if (bytes instanceof Uint8Array && bytes.length > 0) {
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
 * Decodes a map of which at most one value is set (not `null` or
 * `undefined`), as Go encodes a union: the set entry's key and its decoded
 * value. Unset entries are skipped without decoding their keys.
 *
 * @param bytes The encoded item.
 * @returns The set entry, or `undefined` when the item is anything else
 *   (not a map, no entry or several set, a repeated key, malformed): decode
 *   it with {@linkcode decodeCbor} then.
 */
export function decodeCborVariant(
  bytes: Uint8Array,
): { key: string; value: unknown } | undefined {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) return undefined;
  src = bytes.constructor === Uint8Array
    ? bytes
    : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  pos = 0;
  try {
    const b = src[pos++]!;
    if (b >> 5 !== 5) return undefined;
    const n = readLength(b);
    let keyAt = -1;
    let keyLength = 0;
    let found: { key: string; value: unknown } | undefined;
    for (let i = 0; i < n; i++) {
      need(1);
      const head = src[pos++]!;
      if (head >> 5 !== 3) return undefined;
      const length = readLength(head);
      const at = pos;
      pos += length;
      need(1);
      const v = src[pos]!;
      if (v === 0xf6 || v === 0xf7) {
        pos++;
        if (keyAt >= 0 && sameBytes(at, keyAt, length, keyLength)) {
          return undefined; // the set entry is overwritten later
        }
        continue;
      }
      if (found !== undefined) return undefined;
      keyAt = at;
      keyLength = length;
      pos = at;
      const key = readText(length);
      if (key === "__proto__") return undefined;
      found = { key, value: readValue(1) };
    }
    return pos === src.length ? found : undefined;
  } catch (err) {
    if (err !== UNSUPPORTED) throw err;
    return undefined;
  } finally {
    src = EMPTY;
  }
}

function sameBytes(a: number, b: number, aLength: number, bLength: number) {
  if (aLength !== bLength) return false;
  for (let i = 0; i < aLength; i++) if (src[a + i] !== src[b + i]) return false;
  return true;
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
