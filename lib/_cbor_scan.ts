/**
 * The structural scan of CBOR bytes and its budgets: every decoder of
 * lib/cbor.ts runs {@linkcode scanCbor} first, so nothing is built from
 * bytes that break the limits kpclientd keeps.
 *
 * @module
 */
import { ProtocolError } from "./errors.ts";

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

/**
 * The error of a refused item.
 *
 * @param detail What is wrong.
 * @param at Offset of the offending byte.
 * @returns A `ProtocolError` naming both.
 */
export function scanError(detail: string, at: number): ProtocolError {
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
