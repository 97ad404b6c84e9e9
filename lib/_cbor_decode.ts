/**
 * The direct CBOR decoder, for bytes the scan of lib/_cbor_scan.ts has
 * passed: definite-length items with text map keys become what cborg would
 * build, reusing the strings of keys seen before. Anything else (floats,
 * tags, other keys, a `__proto__` key) makes it answer
 * {@linkcode DIRECT_UNSUPPORTED}, and lib/cbor.ts hands the bytes to cborg.
 *
 * @module
 */
import { NOT_SIMPLE, simpleValue } from "./_cbor_read.ts";

/** Returned by {@linkcode decodeCborDirect} when cborg has to decode. */
export const DIRECT_UNSUPPORTED: unique symbol = Symbol("cbor: use cborg");
const UNSUPPORTED = DIRECT_UNSUPPORTED;
/** Nesting deeper than this goes to cborg. */
const MAX_DEPTH = 64;
const TWO_32 = 4294967296;

const textDecoder = new TextDecoder();

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

/**
 * Decodes exactly one item without cborg, when it is of a kind the direct
 * path reads.
 *
 * @param bytes The encoded item, already checked by the scan.
 * @returns The value, or {@linkcode DIRECT_UNSUPPORTED}.
 */
export function decodeCborDirect(bytes: Uint8Array): unknown {
  if (bytes.length === 0) return UNSUPPORTED;
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
  return UNSUPPORTED;
}
