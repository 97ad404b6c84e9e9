/**
 * The on-channel format of a file sent by pigeonhole-cp, compatible with the
 * upstream Rust tool (`thin_client: src/bin/pigeonhole_cp.rs`):
 *
 * - The channel's boxes, concatenated from the start index, hold
 *   `header ‖ file bytes`. The header is one CBOR map with text keys,
 *   `{"name": text, "size": uint}`, plus our optional `"sha256": bytes(32)`
 *   (upstream's serde decoder ignores unknown keys). CBOR is
 *   self-delimiting, so the file starts right after it in box 0.
 * - The header is entirely inside box 0. The receiver stops after `size`
 *   file bytes; anything after them in the last box is ignored.
 * - Stream mode: box 0 = header + the first `max − header` file bytes, every
 *   further box `max` file bytes (`max` = the geometry's
 *   MaxPlaintextPayloadLength). Copy mode: the daemon cuts `header ‖ file`
 *   into the destination boxes itself.
 *
 * @module
 */
import { decodeCbor, encodeCbor, scanCbor } from "../lib/cbor.ts";
import { CliError, ExitCode } from "./_errors.ts";

/** Length of a SHA-256 digest. */
export const DIGEST_LENGTH = 32;
/** Longest file name accepted (bytes of UTF-8), as upstream. */
export const MAX_NAME_BYTES = 255;

/** The decoded header of a transferred file. */
export interface FileHeader {
  /** Base name of the file. */
  name: string;
  /** Size in bytes of the file (the header not included). */
  size: number;
  /** SHA-256 of the file; `null` when the sender gave none (upstream). */
  sha256: Uint8Array | null;
}

/**
 * Encodes the header: keys `name`, `size` (as upstream, in that order),
 * then `sha256` when given.
 */
export function encodeHeader(header: FileHeader): Uint8Array {
  const map: Record<string, unknown> = {
    name: header.name,
    size: header.size,
  };
  if (header.sha256 !== null) map["sha256"] = header.sha256;
  return encodeCbor(map);
}

/**
 * The length of the first CBOR data item of `bytes` (structure only; values
 * are not interpreted). Indefinite lengths are accepted, tags are not.
 *
 * @throws {ProtocolError} When the item is truncated, malformed or beyond
 *   the CBOR limits of lib/cbor.ts.
 */
export function cborItemLength(bytes: Uint8Array): number {
  return scanCbor(bytes, { allowIndefinite: true });
}

/**
 * Splits box 0 into the decoded header and the file bytes that follow it.
 *
 * @throws {CliError} Integrity, when the header is malformed.
 */
export function decodeHeader(
  box0: Uint8Array,
): { header: FileHeader; rest: Uint8Array } {
  let end: number;
  let value: unknown;
  try {
    end = cborItemLength(box0);
    value = decodeCbor(box0.subarray(0, end), { allowIndefinite: true });
  } catch (err) {
    throw new CliError(
      ExitCode.Integrity,
      `Cannot read file header in box 0: not a CBOR map (${
        (err as Error).message
      })`,
      { cause: err },
    );
  }
  const bad = (why: string): never => {
    throw new CliError(
      ExitCode.Integrity,
      `Cannot read file header in box 0: ${why}`,
    );
  };
  if (
    typeof value !== "object" || value === null || Array.isArray(value) ||
    value instanceof Uint8Array
  ) {
    return bad("not a map");
  }
  const m = value as Record<string, unknown>;
  const name = m["name"];
  if (typeof name !== "string") {
    return bad("field 'name' is missing or not text");
  }
  let size = m["size"];
  if (typeof size === "bigint") {
    if (size > BigInt(Number.MAX_SAFE_INTEGER)) {
      return bad(`size '${size}' is too large`);
    }
    size = Number(size);
  }
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
    return bad("field 'size' is missing or not an unsigned integer");
  }
  const digest = m["sha256"];
  let sha256: Uint8Array | null = null;
  if (digest !== undefined && digest !== null) {
    if (!(digest instanceof Uint8Array) || digest.length !== DIGEST_LENGTH) {
      return bad(`field 'sha256' is not ${DIGEST_LENGTH} bytes`);
    }
    sha256 = digest;
  }
  return {
    header: { name, size: size as number, sha256 },
    rest: box0.subarray(end),
  };
}

/**
 * Why `name` is not acceptable as a received file name (upstream's rules:
 * non-empty, at most 255 bytes, not `.` or `..`, no `/` or `\`, no control
 * character), or `null` when it is fine.
 */
export function nameProblem(name: string): string | null {
  if (name === "") return "it is empty";
  if (new TextEncoder().encode(name).length > MAX_NAME_BYTES) {
    return `it exceeds ${MAX_NAME_BYTES} bytes`;
  }
  if (name === "." || name === "..") return "it is reserved";
  if (name.includes("/") || name.includes("\\")) {
    return "it contains a path separator";
  }
  if (/\p{Cc}/u.test(name)) return "it contains a control character";
  return null;
}

/** Where each box's file bytes sit in stream mode. */
export interface StreamLayout {
  /** File bytes in box 0 at most (after the header). */
  firstRoom: number;
  /** Bytes per later box. */
  max: number;
  /** Boxes the transfer takes. */
  boxes: number;
  /** File offset of box `k`'s bytes. */
  offset(k: number): number;
  /** File bytes in box `k`. */
  length(k: number): number;
}

/**
 * The stream-mode layout of a file of `size` bytes after a header of
 * `headerLength` bytes, with boxes of `max` bytes.
 *
 * @throws {CliError} When the header leaves no room in box 0.
 */
export function streamLayout(
  size: number,
  headerLength: number,
  max: number,
): StreamLayout {
  const firstRoom = max - headerLength;
  if (firstRoom <= 0) {
    throw new CliError(
      ExitCode.Usage,
      `Cannot send: the file header (${headerLength} bytes) leaves no room in a ${max}-byte box (shorten the name)`,
    );
  }
  const boxes = size <= firstRoom ? 1 : 1 + Math.ceil((size - firstRoom) / max);
  const offset = (k: number): number => k === 0 ? 0 : firstRoom + (k - 1) * max;
  return {
    firstRoom,
    max,
    boxes,
    offset,
    length: (k) =>
      k === 0 ? Math.min(size, firstRoom) : Math.min(max, size - offset(k)),
  };
}
