/**
 * The fake daemon's stand-in for BACAP, courier envelopes, copy streams,
 * vouchers and the replicas' box store. Nothing here is cryptography: every
 * blob is self-describing so the fake can check what clients hand back.
 *
 * Layouts (sizes match kpclientd, docs/protocol.md#capabilities-and-box-indices):
 * - index (104): counter u64 little-endian (8) ‖ stream tail (96)
 * - write cap (168): secret (32) ‖ public (32) ‖ first index (104)
 * - read cap (136): public (32) ‖ first index (104)
 *
 * A stream is identified by the public part; a box by (public part, index).
 *
 * @module
 */
import { decodeCborMaps, encodeCbor } from "../lib/cbor.ts";
import { blake2b256, blake2b512 } from "./_blake2b.ts";
import {
  bytesEqual,
  concatBytes,
  readU32Be,
  readU64Le,
  toHex,
  u32Be,
  utf8,
  writeU64Le,
} from "../lib/_bytes.ts";

/** Length of a message box index. */
export const INDEX_LENGTH = 104;
/** Length of a write capability. */
export const WRITE_CAP_LENGTH = 168;
/** Length of a read capability. */
export const READ_CAP_LENGTH = 136;
/** Largest counter value. */
export const MAX_COUNTER = 0xffff_ffff_ffff_ffffn;

/**
 * The caps and first index the fake daemon derives from a `new_keypair` seed.
 *
 * @example Usage
 * ```ts
 * import { fakeKeypair } from "@katzenpost/thinclient/testing";
 * const pair = fakeKeypair(new Uint8Array(32));
 * console.log(pair.writeCap.length, pair.readCap.length, pair.firstMessageIndex.length); // 168 136 104
 * ```
 */
export interface FakeKeypair {
  /** 168-byte write capability. */
  readonly writeCap: Uint8Array;
  /** 136-byte read capability. */
  readonly readCap: Uint8Array;
  /** 104-byte first message box index (also the tail of both caps). */
  readonly firstMessageIndex: Uint8Array;
}

function label(text: string): Uint8Array {
  return utf8(`fake-bacap/${text}/`);
}

/**
 * Derives the fake daemon's keypair for a seed, exactly as its `new_keypair`
 * handler does: deterministic in the seed, the caps' last 104 bytes equal the
 * first index, and the index counter (little-endian in its first 8 bytes) is
 * at least 2^53 so that clients must handle it as a bigint.
 *
 * @param seed At least 32 bytes; only the first 32 are used.
 * @returns The write cap, read cap and first index.
 * @throws {RangeError} When the seed is shorter than 32 bytes.
 *
 * @example Usage
 * ```ts
 * import { fakeIndexCounter, fakeKeypair } from "@katzenpost/thinclient/testing";
 * const { firstMessageIndex } = fakeKeypair(new Uint8Array(32).fill(7));
 * console.log(fakeIndexCounter(firstMessageIndex) >= 2n ** 53n); // true
 * ```
 */
export function fakeKeypair(seed: Uint8Array): FakeKeypair {
  if (seed.length < 32) {
    throw new RangeError(
      `Cannot derive keypair: seed length ${seed.length} is below 32`,
    );
  }
  const s = seed.subarray(0, 32);
  const secret = blake2b256(label("secret"), s);
  const pub = blake2b256(label("public"), secret);
  const counterBytes = blake2b256(label("counter"), s);
  const counter = (1n << 53n) + (readU64Le(counterBytes) & ((1n << 56n) - 1n));
  const index = new Uint8Array(INDEX_LENGTH);
  writeU64Le(index, counter);
  index.set(blake2b512(label("index-a"), s), 8);
  index.set(blake2b256(label("index-b"), s), 72);
  return {
    writeCap: concatBytes([secret, pub, index]),
    readCap: concatBytes([pub, index]),
    firstMessageIndex: index,
  };
}

/**
 * The counter (`Idx64`) of a fake message box index.
 *
 * @param index A 104-byte index.
 * @returns The little-endian uint64 of its first 8 bytes.
 *
 * @example Usage
 * ```ts
 * import { fakeIndexCounter } from "@katzenpost/thinclient/testing";
 * console.log(fakeIndexCounter(new Uint8Array(104))); // 0n
 * ```
 */
export function fakeIndexCounter(index: Uint8Array): bigint {
  return readU64Le(index);
}

/**
 * The index after `index`, as the fake daemon computes it (counter + 1,
 * other bytes kept). Real daemons derive it with HKDF: clients must never
 * compute it themselves.
 *
 * @param index A 104-byte index.
 * @param steps How many boxes to advance (default 1).
 * @returns The new index, or `null` when the counter would overflow.
 *
 * @example Usage
 * ```ts
 * import { fakeIndexCounter, fakeNextIndex } from "@katzenpost/thinclient/testing";
 * console.log(fakeIndexCounter(fakeNextIndex(new Uint8Array(104))!)); // 1n
 * ```
 */
export function fakeNextIndex(
  index: Uint8Array,
  steps = 1,
): Uint8Array | null {
  const counter = readU64Le(index) + BigInt(steps);
  if (counter > MAX_COUNTER) return null;
  const out = index.slice();
  writeU64Le(out, counter);
  return out;
}

/** The stream identity (public part) of a write cap. */
export function streamOfWriteCap(writeCap: Uint8Array): Uint8Array {
  return writeCap.subarray(32, 64);
}

/** The stream identity (public part) of a read cap. */
export function streamOfReadCap(readCap: Uint8Array): Uint8Array {
  return readCap.subarray(0, 32);
}

/** The first index embedded in a write cap. */
export function firstIndexOfWriteCap(writeCap: Uint8Array): Uint8Array {
  return writeCap.subarray(64, 168);
}

/** The box key of (stream, index). */
export function boxKey(stream: Uint8Array, index: Uint8Array): string {
  return `${toHex(stream)}/${toHex(index)}`;
}

/**
 * The box key of a box addressed by a write or read cap and an index.
 *
 * @throws {RangeError} When the cap or index has the wrong length.
 */
export function boxKeyOfCap(cap: Uint8Array, index: Uint8Array): string {
  let stream: Uint8Array;
  if (cap.length === WRITE_CAP_LENGTH) stream = streamOfWriteCap(cap);
  else if (cap.length === READ_CAP_LENGTH) stream = streamOfReadCap(cap);
  else {
    throw new RangeError(
      `Cannot address box: cap length ${cap.length} is neither ${WRITE_CAP_LENGTH} nor ${READ_CAP_LENGTH}`,
    );
  }
  if (index.length !== 104) {
    throw new RangeError(
      `Cannot address box: index length ${index.length} is not 104`,
    );
  }
  return boxKey(stream, index);
}

// ---------------------------------------------------------------------------
// Box store

/**
 * The content of one box in the fake daemon's replicas.
 *
 * @example Usage
 * ```ts
 * import type { FakeBox } from "@katzenpost/thinclient/testing";
 * const box: FakeBox = { tombstone: false, plaintext: new Uint8Array([1]) };
 * ```
 */
export type FakeBox =
  | { readonly tombstone: false; readonly plaintext: Uint8Array }
  | { readonly tombstone: true };

/** Result of a box write. */
export type WriteOutcome = "stored" | "identical" | "exists" | "tombstoned";

/** Write-once boxes with waiters (the replicas of the fake daemon). */
export class BoxStore {
  readonly #boxes = new Map<string, FakeBox>();
  readonly #waiters = new Map<string, Set<() => void>>();

  /** The box, if written or tombstoned. */
  get(key: string): FakeBox | undefined {
    return this.#boxes.get(key);
  }

  /**
   * Writes a box. Boxes are write-once: identical content is an idempotent
   * success, other content is refused ("exists"). An empty plaintext is a
   * tombstone, which overwrites anything.
   */
  write(key: string, plaintext: Uint8Array): WriteOutcome {
    if (plaintext.length === 0) {
      this.#boxes.set(key, { tombstone: true });
      this.#wake(key);
      return "tombstoned";
    }
    const existing = this.#boxes.get(key);
    if (existing !== undefined) {
      return !existing.tombstone && bytesEqual(existing.plaintext, plaintext)
        ? "identical"
        : "exists";
    }
    this.#boxes.set(key, { tombstone: false, plaintext: plaintext.slice() });
    this.#wake(key);
    return "stored";
  }

  /** Calls `wake` once when the box is next written or tombstoned. */
  onWrite(key: string, wake: () => void): () => void {
    let set = this.#waiters.get(key);
    if (set === undefined) {
      set = new Set();
      this.#waiters.set(key, set);
    }
    set.add(wake);
    return () => {
      const s = this.#waiters.get(key);
      s?.delete(wake);
      if (s?.size === 0) this.#waiters.delete(key);
    };
  }

  #wake(key: string): void {
    const set = this.#waiters.get(key);
    if (set === undefined) return;
    this.#waiters.delete(key);
    for (const w of set) w();
  }
}

// ---------------------------------------------------------------------------
// Courier queries (message_ciphertext of encrypt_read / encrypt_write)

const QUERY_MAGIC = utf8("FKQ1");
const ENVELOPE_MAGIC = utf8("FKE1");

/** What a fake courier query or destination envelope describes. */
export interface FakeQuery {
  /** Read or write. */
  op: "read" | "write";
  /** Stream identity (32 bytes). */
  stream: Uint8Array;
  /** Box index (104 bytes). */
  index: Uint8Array;
  /** Write plaintext (empty = tombstone); null for reads. */
  plaintext: Uint8Array | null;
}

function packSelfDescribing(
  magic: Uint8Array,
  value: Record<string, unknown>,
  padTo: number,
): Uint8Array {
  const body = encodeCbor(value);
  const out = new Uint8Array(Math.max(padTo, 8 + body.length));
  out.set(magic, 0);
  out.set(u32Be(body.length), 4);
  out.set(body, 8);
  return out;
}

function unpackSelfDescribing(
  magic: Uint8Array,
  bytes: Uint8Array,
): Map<unknown, unknown> | null {
  if (bytes.length < 8 || !bytesEqual(bytes.subarray(0, 4), magic)) return null;
  const len = readU32Be(bytes, 4);
  if (8 + len > bytes.length) return null;
  try {
    const v = decodeCborMaps(bytes.subarray(8, 8 + len));
    return v instanceof Map ? v : null;
  } catch {
    return null;
  }
}

function asQuery(map: Map<unknown, unknown> | null): FakeQuery | null {
  if (map === null) return null;
  const op = map.get("op");
  const stream = map.get("stream");
  const index = map.get("index");
  const plaintext = map.get("plaintext");
  if (op !== "read" && op !== "write") return null;
  if (!(stream instanceof Uint8Array) || stream.length !== 32) return null;
  if (!(index instanceof Uint8Array) || index.length !== INDEX_LENGTH) {
    return null;
  }
  if (op === "write" && !(plaintext instanceof Uint8Array)) return null;
  return {
    op,
    stream,
    index,
    plaintext: plaintext instanceof Uint8Array ? plaintext : null,
  };
}

/**
 * Encodes a fake courier query, padded to `padTo` bytes so that reads,
 * writes and tombstones have the same length.
 */
export function encodeQuery(
  query: FakeQuery,
  nonce: Uint8Array,
  padTo: number,
): Uint8Array {
  return packSelfDescribing(QUERY_MAGIC, {
    op: query.op,
    stream: query.stream,
    index: query.index,
    plaintext: query.plaintext,
    nonce,
  }, padTo);
}

/** Decodes a fake courier query; null when it is not one. */
export function decodeQuery(bytes: Uint8Array): FakeQuery | null {
  return asQuery(unpackSelfDescribing(QUERY_MAGIC, bytes));
}

/** Encodes a destination envelope of a copy stream (always a write). */
export function encodeDestinationEnvelope(
  stream: Uint8Array,
  index: Uint8Array,
  plaintext: Uint8Array,
  padTo: number,
): Uint8Array {
  return packSelfDescribing(ENVELOPE_MAGIC, {
    op: "write",
    stream,
    index,
    plaintext,
  }, padTo);
}

/** Decodes a destination envelope; null when it is not one. */
export function decodeDestinationEnvelope(bytes: Uint8Array): FakeQuery | null {
  return asQuery(unpackSelfDescribing(ENVELOPE_MAGIC, bytes));
}

// ---------------------------------------------------------------------------
// Copy streams: [u32 BE length][envelope]… cut into [flags][u32 BE len][data]

/** Copy-stream element flag: first element of the stream. */
export const FLAG_START = 0x01;
/** Copy-stream element flag: last element of the stream. */
export const FLAG_FINAL = 0x02;

/** Serialises envelopes into the copy-stream byte stream. */
export function serializeEnvelopes(envelopes: Uint8Array[]): Uint8Array {
  return concatBytes(envelopes.flatMap((e) => [u32Be(e.length), e]));
}

/** Residual builder state carried in the `buffer` field. */
export interface BuilderState {
  /** Bytes not yet emitted. */
  pending: Uint8Array;
  /** Whether the start flag is still to be emitted. */
  startPending: boolean;
}

/** Encodes builder state as an opaque `buffer` (h'' when nothing is left). */
export function encodeBuffer(state: BuilderState): Uint8Array {
  if (state.pending.length === 0 && !state.startPending) {
    return new Uint8Array();
  }
  return concatBytes([
    new Uint8Array([state.startPending ? 1 : 0]),
    state.pending,
  ]);
}

/** Decodes a `buffer`; null when malformed. */
export function decodeBuffer(buffer: Uint8Array | null): BuilderState | null {
  if (buffer === null || buffer.length === 0) {
    return { pending: new Uint8Array(), startPending: false };
  }
  if (buffer[0] !== 0 && buffer[0] !== 1) return null;
  return { pending: buffer.subarray(1), startPending: buffer[0] === 1 };
}

/**
 * Cuts bytes into copy-stream elements of at most `maxElement` bytes. With
 * `flush` (implied by `isLast`) everything is emitted, otherwise a trailing
 * partial element stays in the returned state. The first element emitted
 * gets the start flag when `startPending`; the last one gets the final flag
 * when `isLast`.
 */
export function cutElements(
  stream: Uint8Array,
  startPending: boolean,
  flush: boolean,
  isLast: boolean,
  maxElement: number,
): { elements: Uint8Array[]; rest: BuilderState } {
  const dataMax = Math.max(1, maxElement - 5);
  const chunks: Uint8Array[] = [];
  let pos = 0;
  while (stream.length - pos >= dataMax) {
    chunks.push(stream.subarray(pos, pos + dataMax));
    pos += dataMax;
  }
  let rest = stream.slice(pos);
  if (flush || isLast) {
    if (rest.length > 0) chunks.push(rest);
    rest = new Uint8Array();
    if (chunks.length === 0 && (startPending || isLast)) {
      chunks.push(new Uint8Array());
    }
  }
  const elements = chunks.map((data, i) => {
    let flags = 0;
    if (i === 0 && startPending) flags |= FLAG_START;
    if (i === chunks.length - 1 && isLast) flags |= FLAG_FINAL;
    return element(flags, data);
  });
  return {
    elements,
    rest: {
      pending: rest,
      startPending: startPending && elements.length === 0,
    },
  };
}

function element(flags: number, data: Uint8Array): Uint8Array {
  return concatBytes([new Uint8Array([flags]), u32Be(data.length), data]);
}

/** A parsed copy-stream element. */
export interface CopyElement {
  /** Flag bits. */
  flags: number;
  /** Data bytes. */
  data: Uint8Array;
}

/** Parses one copy-stream element; null when malformed. */
export function parseElement(bytes: Uint8Array): CopyElement | null {
  if (bytes.length < 5) return null;
  const len = readU32Be(bytes, 1);
  if (5 + len !== bytes.length) return null;
  return { flags: bytes[0] ?? 0, data: bytes.subarray(5) };
}

/** Splits a copy-stream byte stream into envelopes; null when malformed. */
export function splitEnvelopes(stream: Uint8Array): Uint8Array[] | null {
  const out: Uint8Array[] = [];
  let pos = 0;
  while (pos < stream.length) {
    if (stream.length - pos < 4) return null;
    const len = readU32Be(stream, pos);
    pos += 4;
    if (stream.length - pos < len) return null;
    out.push(stream.subarray(pos, pos + len));
    pos += len;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Vouchers

const VOUCHER_PAYLOAD_MAGIC = utf8("FKV1");
const SEALED_MAGIC = utf8("FKS1");

/** Caps of the voucher rendezvous stream derived from a voucher token. */
export function voucherStream(voucher: Uint8Array): FakeKeypair {
  return fakeKeypair(blake2b256(label("voucher-stream"), voucher));
}

/** The public key belonging to a fake voucher secret key. */
export function voucherPublicKey(secret: Uint8Array): Uint8Array {
  return blake2b256(label("voucher-public"), secret);
}

function signature(body: Uint8Array): Uint8Array {
  return blake2b256(label("voucher-signature"), body);
}

/** Builds the voucher payload published in box 0. */
export function encodeVoucherPayload(
  displayName: string,
  messageReadCap: Uint8Array,
  publicKey: Uint8Array,
): Uint8Array {
  const body = encodeCbor({
    displayName,
    messageReadCap,
    publicKey,
  });
  return packSelfDescribing(VOUCHER_PAYLOAD_MAGIC, {
    body,
    signature: signature(body),
  }, 0);
}

/** Result of parsing a voucher payload. */
export type VoucherPayloadResult =
  | {
    ok: true;
    displayName: string;
    messageReadCap: Uint8Array;
    publicKey: Uint8Array;
  }
  | { ok: false; code: 3 | 29 };

/** Parses and verifies a voucher payload. */
export function decodeVoucherPayload(
  payload: Uint8Array,
): VoucherPayloadResult {
  const outer = unpackSelfDescribing(VOUCHER_PAYLOAD_MAGIC, payload);
  const body = outer?.get("body");
  const sig = outer?.get("signature");
  if (!(body instanceof Uint8Array) || !(sig instanceof Uint8Array)) {
    return { ok: false, code: 3 };
  }
  if (!bytesEqual(sig, signature(body))) return { ok: false, code: 29 };
  let inner: unknown;
  try {
    inner = decodeCborMaps(body);
  } catch {
    return { ok: false, code: 3 };
  }
  if (!(inner instanceof Map)) return { ok: false, code: 3 };
  const displayName = inner.get("displayName");
  const messageReadCap = inner.get("messageReadCap");
  const publicKey = inner.get("publicKey");
  if (
    typeof displayName !== "string" ||
    !(messageReadCap instanceof Uint8Array) ||
    !(publicKey instanceof Uint8Array)
  ) return { ok: false, code: 3 };
  return { ok: true, displayName, messageReadCap, publicKey };
}

/** Seals a reply for the holder of the secret key behind `publicKey`. */
export function sealReply(
  publicKey: Uint8Array,
  whoReply: Uint8Array,
  salt: Uint8Array,
): Uint8Array {
  return packSelfDescribing(SEALED_MAGIC, { publicKey, whoReply, salt }, 0);
}

/** Opens a sealed reply; null when the key does not fit or it is corrupt. */
export function openSealedReply(
  secret: Uint8Array,
  sealed: Uint8Array,
): { whoReply: Uint8Array; salt: Uint8Array } | null {
  const map = unpackSelfDescribing(SEALED_MAGIC, sealed);
  const publicKey = map?.get("publicKey");
  const whoReply = map?.get("whoReply");
  const salt = map?.get("salt");
  if (
    !(publicKey instanceof Uint8Array) || !(whoReply instanceof Uint8Array) ||
    !(salt instanceof Uint8Array)
  ) return null;
  if (!bytesEqual(publicKey, voucherPublicKey(secret))) return null;
  return { whoReply, salt };
}

function mutatedPublic(pub: Uint8Array, salt: Uint8Array): Uint8Array {
  return blake2b256(label("mutate-public"), pub, salt);
}

/** Salts a read cap (same boxes as the matching mutated write cap). */
export function mutateReadCap(
  readCap: Uint8Array,
  salt: Uint8Array,
): Uint8Array {
  return concatBytes([
    mutatedPublic(readCap.subarray(0, 32), salt),
    readCap.subarray(32),
  ]);
}

/** Salts a write cap; its read half equals `mutateReadCap` of its read half. */
export function mutateWriteCap(
  writeCap: Uint8Array,
  salt: Uint8Array,
): Uint8Array {
  return concatBytes([
    blake2b256(label("mutate-secret"), writeCap.subarray(0, 32), salt),
    mutatedPublic(writeCap.subarray(32, 64), salt),
    writeCap.subarray(64),
  ]);
}
