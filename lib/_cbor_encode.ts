/**
 * The direct CBOR encoder: plain objects, arrays, byte and text strings,
 * safe integers, bigints, booleans, `null` and `undefined` written straight
 * into one buffer of the right size, byte for byte what cborg writes. Any
 * other value makes it answer `undefined`, and lib/cbor.ts hands the value
 * to cborg.
 *
 * @module
 */

/** Thrown inside the size pass when cborg has to handle the value. */
const UNSUPPORTED: unique symbol = Symbol("cbor: use cborg");
/** Nesting deeper than this goes to cborg (which also detects cycles). */
const MAX_DEPTH = 64;
const TWO_32 = 4294967296;
const TWO_64 = 1n << 64n;

const textEncoder = new TextEncoder();

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
 * Encodes a value as CBOR without cborg, when every part of it is of a kind
 * the direct path writes.
 *
 * @param value The value.
 * @param headroom Bytes left free (zero) before the item.
 * @returns The CBOR bytes after `headroom` zero bytes, or `undefined` when
 *   cborg has to encode the value.
 */
export function encodeCborDirect(
  value: unknown,
  headroom: number,
): Uint8Array | undefined {
  const list: unknown[] = [];
  let size: number;
  try {
    size = sizeOf(value, list, 0);
  } catch (err) {
    if (err !== UNSUPPORTED) throw err;
    return undefined;
  }
  const out = new Uint8Array(headroom + size);
  const end = writeValue(out, headroom, value, { list, i: 0 });
  // A getter that answered differently in the two passes: let cborg decide.
  return end === out.length ? out : undefined;
}

/**
 * Encodes `{ [variant]: { [entries[0]]: entries[1], … } }` without building
 * the two objects, when every value is of a kind the direct path writes.
 *
 * @param variant The single key of the outer map.
 * @param entries Keys and values of the inner map, alternating.
 * @param headroom Bytes left free (zero) before the item.
 * @returns The CBOR bytes after `headroom` zero bytes, or `undefined` when
 *   cborg has to encode the envelope.
 */
export function encodeCborEnvelopeDirect(
  variant: string,
  entries: readonly unknown[],
  headroom: number,
): Uint8Array | undefined {
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
    return undefined;
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
  return at === out.length ? out : undefined;
}
