/**
 * The daemon side of the thin protocol's CBOR layer, written independently of
 * lib/protocol.ts: Go-ordered response encoding (full 25-key form or
 * single-key form), the zero-valued reply templates, and a strict request
 * decoder that mimics what kpclientd's Go decoder accepts and rejects.
 *
 * @module
 */
import { decodeCborMaps, encodeCbor } from "../lib/cbor.ts";
import { encodeFrame } from "../lib/framing.ts";
import { concatBytes } from "../lib/_bytes.ts";

// ---------------------------------------------------------------------------
// Ordered encoding

function head(major: number, n: number): Uint8Array {
  const m = major << 5;
  if (n < 24) return new Uint8Array([m | n]);
  if (n < 0x100) return new Uint8Array([m | 24, n]);
  if (n < 0x10000) return new Uint8Array([m | 25, n >> 8, n & 0xff]);
  const out = new Uint8Array(5);
  out[0] = m | 26;
  new DataView(out.buffer).setUint32(1, n, false);
  return out;
}

function float64(value: number): Uint8Array {
  const out = new Uint8Array(9);
  out[0] = 0xfb;
  new DataView(out.buffer).setFloat64(1, value, false);
  return out;
}

/**
 * A number the fake daemon encodes as a CBOR float (8 bytes, as Go's
 * default mode) even when its value is an integer, to test that a client
 * refuses a float where Go has an integer field (kpclientd never sends one).
 *
 * @example Usage
 * ```ts
 * import { FakeDaemon, FakeFloat } from "@katzenpost/thinclient/testing";
 * await using daemon = await FakeDaemon.start({ transport: "memory" });
 * daemon.script("new_keypair", { reply: { "error_code": new FakeFloat(3) } });
 * ```
 */
export class FakeFloat {
  /** The value. */
  readonly value: number;
  /**
   * Wraps a value.
   *
   * @param value Any number (an integer is still sent as a float).
   */
  constructor(value: number) {
    this.value = value;
  }
}

/**
 * CBOR bytes the fake daemon splices into a reply as they are, in place of a
 * value: a tag, an indefinite-length item, a simple value, a malformed head,
 * or anything else kpclientd never sends.
 *
 * @example Usage
 * ```ts
 * import { FakeDaemon, FakeRawCbor } from "@katzenpost/thinclient/testing";
 * await using daemon = await FakeDaemon.start({ transport: "memory" });
 * // tag 64 around a 1-byte byte string
 * daemon.script("new_keypair", { reply: { "write_cap": new FakeRawCbor(new Uint8Array([0xd8, 0x40, 0x41, 0x00])) } });
 * ```
 */
export class FakeRawCbor {
  /** The bytes spliced in. */
  readonly bytes: Uint8Array;
  /**
   * Wraps bytes.
   *
   * @param bytes One CBOR item, or bytes that are not one on purpose.
   */
  constructor(bytes: Uint8Array) {
    this.bytes = bytes.slice();
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Encodes like Go's default encoder: maps and objects keep their insertion
 * order (Go struct declaration order), object keys whose value is `undefined`
 * are omitted (Go `omitempty`), non-integer numbers and {@linkcode FakeFloat}
 * become 8-byte floats, {@linkcode FakeRawCbor} is copied as it is. Leaves
 * are encoded by lib/cbor.ts.
 */
export function encodeOrdered(value: unknown): Uint8Array {
  const parts: Uint8Array[] = [];
  const walk = (v: unknown): void => {
    if (v instanceof FakeFloat) {
      parts.push(float64(v.value));
    } else if (v instanceof FakeRawCbor) {
      parts.push(v.bytes);
    } else if (v instanceof Uint8Array) {
      parts.push(encodeCbor(v));
    } else if (Array.isArray(v)) {
      parts.push(head(4, v.length));
      for (const item of v) walk(item);
    } else if (v instanceof Map) {
      parts.push(head(5, v.size));
      for (const [k, item] of v) {
        walk(k);
        walk(item);
      }
    } else if (isPlainObject(v)) {
      const entries = Object.entries(v).filter(([, item]) =>
        item !== undefined
      );
      parts.push(head(5, entries.length));
      for (const [k, item] of entries) {
        parts.push(encodeCbor(k));
        walk(item);
      }
    } else if (typeof v === "number" && !Number.isInteger(v)) {
      parts.push(float64(v));
    } else if (v === undefined) {
      parts.push(new Uint8Array([0xf6]));
    } else {
      parts.push(encodeCbor(v));
    }
  };
  walk(value);
  return concatBytes(parts);
}

// ---------------------------------------------------------------------------
// Responses

/** Response variant keys in Go declaration order (docs/protocol.md#cbor-encoding). */
export const RESPONSE_VARIANTS: readonly string[] = [
  "session_token_reply",
  "shutdown_event",
  "connection_status_event",
  "new_pki_document_event",
  "message_sent_event",
  "message_reply_event",
  "message_id_garbage_collected",
  "new_keypair_reply",
  "encrypt_read_reply",
  "encrypt_write_reply",
  "start_resending_encrypted_message_reply",
  "cancel_resending_encrypted_message_reply",
  "start_resending_copy_command_reply",
  "cancel_resending_copy_command_reply",
  "next_message_box_index_reply",
  "get_message_box_index_counter_reply",
  "get_pki_document_reply",
  "get_directory_authorities_reply",
  "create_courier_envelopes_from_payload_reply",
  "create_courier_envelopes_from_multi_payload_reply",
  "create_courier_envelopes_from_tombstone_range_reply",
  "voucher_mint_reply",
  "voucher_induct_reply",
  "voucher_open_reply",
  "voucher_derive_stream_reply",
];

interface FieldSpec {
  key: string;
  zero: unknown;
  omitEmpty: boolean;
}

function f(key: string, zero: unknown, omitEmpty = false): FieldSpec {
  return { key, zero, omitEmpty };
}

const Q = f("query_id", null);
const E = f("error_code", 0);
const ENCRYPT_REPLY = [
  Q,
  f("message_ciphertext", null),
  f("envelope_descriptor", null),
  f("envelope_hash", null),
  f("next_message_box_index", null),
  E,
];
const CANCEL_REPLY = [Q, E];

const RESPONSE_FIELDS: Record<string, FieldSpec[]> = {
  "session_token_reply": [f("app_id", new Uint8Array(16)), f("resumed", false)],
  "shutdown_event": [],
  "connection_status_event": [
    f("is_connected", false),
    f("err", null),
    f("instance_token", new Uint8Array(16)),
    f("sphinx_geometry", null),
    f("pigeonhole_geometry", null),
  ],
  "new_pki_document_event": [f("payload", null)],
  "message_sent_event": [
    f("message_id", null),
    f("surbid", null),
    f("sent_at", null),
    f("reply_eta", 0),
    f("err", "", true),
  ],
  "message_reply_event": [
    f("message_id", null),
    f("surbid", null),
    f("payload", null),
    f("reply_index", 0, true),
    E,
  ],
  "message_id_garbage_collected": [f("message_id", null)],
  "new_keypair_reply": [
    Q,
    f("write_cap", null),
    f("read_cap", null),
    f("first_message_index", null),
    E,
  ],
  "encrypt_read_reply": ENCRYPT_REPLY,
  "encrypt_write_reply": ENCRYPT_REPLY,
  "start_resending_encrypted_message_reply": [
    Q,
    f("plaintext", null),
    E,
    f("courier_identity_hash", null),
    f("courier_queue_id", null),
  ],
  "cancel_resending_encrypted_message_reply": CANCEL_REPLY,
  "start_resending_copy_command_reply": [
    Q,
    E,
    f("replica_error_code", 0, true),
    f("failed_envelope_index", 0, true),
  ],
  "cancel_resending_copy_command_reply": CANCEL_REPLY,
  "next_message_box_index_reply": [Q, f("next_message_box_index", null), E],
  "get_message_box_index_counter_reply": [Q, f("counter", 0), E],
  "get_pki_document_reply": [Q, f("payload", null), f("epoch", 0), E],
  "get_directory_authorities_reply": [Q, f("authorities", null), E],
  "create_courier_envelopes_from_payload_reply": [
    Q,
    f("envelopes", null),
    f("next_dest_index", null),
    E,
  ],
  "create_courier_envelopes_from_multi_payload_reply": [
    Q,
    f("envelopes", null),
    f("buffer", null),
    f("next_dest_indices", null),
    E,
  ],
  "create_courier_envelopes_from_tombstone_range_reply": [
    Q,
    f("envelopes", null),
    f("buffer", null),
    f("next_dest_index", null),
    E,
  ],
  "voucher_mint_reply": [
    Q,
    f("voucher", null),
    f("voucher_payload", null),
    f("voucher_write_cap", null),
    f("voucher_read_cap", null),
    f("voucher_secret_key", null),
    f("voucher_public_key", null),
    E,
  ],
  "voucher_induct_reply": [
    Q,
    f("display_name", ""),
    f("mutated_message_read_cap", null),
    f("sealed_reply", null),
    f("voucher_write_cap", null),
    f("voucher_read_cap", null),
    f("salt", null),
    E,
  ],
  "voucher_open_reply": [
    Q,
    f("who_reply", null),
    f("salt", null),
    f("mutated_message_write_cap", null),
    E,
  ],
  "voucher_derive_stream_reply": [
    Q,
    f("voucher_write_cap", null),
    f("voucher_read_cap", null),
    E,
  ],
};

function isEmptyValue(v: unknown): boolean {
  return v === undefined || v === null || v === 0 || v === 0n || v === false ||
    v === "" || (v instanceof Uint8Array && v.length === 0) ||
    (Array.isArray(v) && v.length === 0);
}

/**
 * Builds a response body with every declared field in Go order: missing
 * fields get their zero value, `omitempty` fields are dropped when empty, and
 * unknown extra fields are appended. Unknown variants are returned as given.
 */
export function responseBody(
  variant: string,
  values: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  const spec = RESPONSE_FIELDS[variant];
  if (spec === undefined) return { ...values };
  const out: Record<string, unknown> = {};
  for (const field of spec) {
    const v = Object.hasOwn(values, field.key) ? values[field.key] : undefined;
    const value = v === undefined ? field.zero : v;
    if (field.omitEmpty && isEmptyValue(value)) continue;
    out[field.key] = value;
  }
  for (const [k, v] of Object.entries(values)) {
    if (!spec.some((field) => field.key === k) && v !== undefined) out[k] = v;
  }
  return out;
}

/** Whether a response variant is known. */
export function isResponseVariant(variant: string): boolean {
  return Object.hasOwn(RESPONSE_FIELDS, variant);
}

/**
 * Encodes a response envelope. Full form: all 25 variant keys in Go order,
 * unused ones `null` (an unknown variant is appended). Otherwise a single-key
 * map. The body is encoded in its own key order.
 */
export function encodeResponse(
  variant: string,
  body: unknown,
  fullForm: boolean,
): Uint8Array {
  if (!fullForm) return encodeOrdered({ [variant]: body });
  const envelope: Record<string, unknown> = {};
  for (const v of RESPONSE_VARIANTS) envelope[v] = v === variant ? body : null;
  if (!Object.hasOwn(envelope, variant)) envelope[variant] = body;
  return encodeOrdered(envelope);
}

/** {@linkcode encodeResponse} plus the 4-byte length prefix. */
export function encodeResponseFrame(
  variant: string,
  body: unknown,
  fullForm: boolean,
): Uint8Array {
  return encodeFrame(encodeResponse(variant, body, fullForm));
}

// ---------------------------------------------------------------------------
// Requests

/**
 * A request variant name (wire key), in Go declaration order.
 */
export type RequestKind =
  | "session_token"
  | "thin_close"
  | "send_message"
  | "new_keypair"
  | "encrypt_read"
  | "encrypt_write"
  | "start_resending_encrypted_message"
  | "cancel_resending_encrypted_message"
  | "start_resending_copy_command"
  | "cancel_resending_copy_command"
  | "next_message_box_index"
  | "get_message_box_index_counter"
  | "get_pki_document"
  | "get_directory_authorities"
  | "create_courier_envelopes_from_payload"
  | "create_courier_envelopes_from_multi_payload"
  | "create_courier_envelopes_from_tombstone_range"
  | "voucher_mint"
  | "voucher_induct"
  | "voucher_open"
  | "voucher_derive_stream";

/** The local requests, in the daemon's priority order (docs/protocol.md#how-the-daemon-processes-requests). */
export const LOCAL_KINDS: readonly RequestKind[] = [
  "new_keypair",
  "encrypt_read",
  "encrypt_write",
  "cancel_resending_encrypted_message",
  "cancel_resending_copy_command",
  "next_message_box_index",
  "get_message_box_index_counter",
  "get_pki_document",
  "get_directory_authorities",
  "create_courier_envelopes_from_payload",
  "create_courier_envelopes_from_multi_payload",
  "create_courier_envelopes_from_tombstone_range",
  "voucher_mint",
  "voucher_induct",
  "voucher_open",
  "voucher_derive_stream",
];

/** The mixnet requests (queued in the per-connection FIFO). */
export const MIXNET_KINDS: readonly RequestKind[] = [
  "send_message",
  "start_resending_encrypted_message",
  "start_resending_copy_command",
];

const PRIORITY: readonly RequestKind[] = [
  "thin_close",
  "session_token",
  ...LOCAL_KINDS,
  ...MIXNET_KINDS,
];

type FieldKind =
  | "id16"
  | "id32"
  | "token16"
  | "cap168"
  | "cap136"
  | "idx104"
  | "bytes"
  | "bool"
  | "u8"
  | "u32"
  | "u64"
  | "text"
  | "destinations";

const REQUEST_FIELDS: Record<RequestKind, Record<string, FieldKind>> = {
  "session_token": { "client_instance_token": "token16" },
  "thin_close": {},
  "send_message": {
    id: "id16",
    "with_surb": "bool",
    surbid: "id16",
    "destination_id_hash": "id32",
    "recipient_queue_id": "bytes",
    payload: "bytes",
  },
  "new_keypair": { "query_id": "id16", seed: "bytes" },
  "encrypt_read": {
    "query_id": "id16",
    "read_cap": "cap136",
    "message_box_index": "idx104",
  },
  "encrypt_write": {
    "query_id": "id16",
    plaintext: "bytes",
    "write_cap": "cap168",
    "message_box_index": "idx104",
  },
  "start_resending_encrypted_message": {
    "query_id": "id16",
    "read_cap": "cap136",
    "write_cap": "cap168",
    "message_box_index": "bytes",
    "reply_index": "u8",
    "envelope_descriptor": "bytes",
    "message_ciphertext": "bytes",
    "envelope_hash": "id32",
    "no_retry_on_box_id_not_found": "bool",
    "no_idempotent_box_already_exists": "bool",
  },
  "cancel_resending_encrypted_message": {
    "query_id": "id16",
    "envelope_hash": "id32",
  },
  "start_resending_copy_command": {
    "query_id": "id16",
    "write_cap": "cap168",
    "courier_identity_hash": "id32",
    "courier_queue_id": "bytes",
  },
  "cancel_resending_copy_command": {
    "query_id": "id16",
    "write_cap_hash": "id32",
  },
  "next_message_box_index": {
    "query_id": "id16",
    "message_box_index": "idx104",
  },
  "get_message_box_index_counter": {
    "query_id": "id16",
    "message_box_index": "idx104",
  },
  "get_pki_document": { "query_id": "id16", epoch: "u64" },
  "get_directory_authorities": { "query_id": "id16" },
  "create_courier_envelopes_from_payload": {
    "query_id": "id16",
    payload: "bytes",
    "dest_write_cap": "cap168",
    "dest_start_index": "idx104",
    "is_start": "bool",
    "is_last": "bool",
  },
  "create_courier_envelopes_from_multi_payload": {
    "query_id": "id16",
    destinations: "destinations",
    "is_start": "bool",
    "is_last": "bool",
    buffer: "bytes",
  },
  "create_courier_envelopes_from_tombstone_range": {
    "query_id": "id16",
    "dest_write_cap": "cap168",
    "dest_start_index": "idx104",
    "max_count": "u32",
    "is_start": "bool",
    "is_last": "bool",
    buffer: "bytes",
  },
  "voucher_mint": {
    "query_id": "id16",
    "message_write_cap": "bytes",
    "display_name": "text",
  },
  "voucher_induct": {
    "query_id": "id16",
    voucher: "bytes",
    "voucher_payload": "bytes",
    "who_reply": "bytes",
  },
  "voucher_open": {
    "query_id": "id16",
    "voucher_secret_key": "bytes",
    "sealed_reply": "bytes",
    "message_write_cap": "bytes",
  },
  "voucher_derive_stream": { "query_id": "id16", voucher: "bytes" },
};

const DESTINATION_FIELDS: Record<string, FieldKind> = {
  payload: "bytes",
  "write_cap": "cap168",
  "start_index": "idx104",
};

/** The request variant names, in Go declaration order. */
export const REQUEST_KINDS: readonly RequestKind[] = Object.keys(
  REQUEST_FIELDS,
) as RequestKind[];

/** Thrown for a frame the Go daemon could not decode (it closes the socket). */
export class RequestDecodeError extends Error {
  override readonly name = "RequestDecodeError";
}

/** A decoded, normalised request. */
export interface DecodedRequest {
  /** The variant acted upon, or "empty" when every variant is null/unknown. */
  kind: RequestKind | "empty";
  /** The variant's fields under their canonical keys, normalised like Go. */
  fields: Record<string, unknown>;
  /** The variant's body as decoded, maps with text keys as plain objects. */
  body: Record<string, unknown>;
}

function lookup(map: Map<unknown, unknown>, key: string): unknown {
  if (map.has(key)) return map.get(key);
  const lower = key.toLowerCase();
  for (const [k, v] of map) {
    if (typeof k === "string" && k.toLowerCase() === lower) return v;
  }
  return undefined;
}

function fixed(v: Uint8Array, n: number): Uint8Array {
  const out = new Uint8Array(n);
  out.set(v.subarray(0, n));
  return out;
}

function decodeField(kind: FieldKind, v: unknown, where: string): unknown {
  const isNull = v === null || v === undefined;
  const bad = (what: string) =>
    new RequestDecodeError(`Cannot decode request: ${where} ${what}`);
  switch (kind) {
    case "id16":
    case "id32":
    case "token16": {
      const n = kind === "id32" ? 32 : 16;
      if (isNull) return kind === "token16" ? new Uint8Array(16) : null;
      if (!(v instanceof Uint8Array)) throw bad("is not a byte string");
      return fixed(v, n);
    }
    case "cap168":
    case "cap136":
    case "idx104": {
      const n = kind === "cap168" ? 168 : kind === "cap136" ? 136 : 104;
      if (isNull) return null;
      if (!(v instanceof Uint8Array)) throw bad("is not a byte string");
      if (v.length !== n) throw bad(`has length ${v.length}, want ${n}`);
      return v;
    }
    case "bytes":
      if (isNull) return null;
      if (!(v instanceof Uint8Array)) throw bad("is not a byte string");
      return v;
    case "bool":
      if (isNull) return false;
      if (typeof v !== "boolean") throw bad("is not a boolean");
      return v;
    case "u8":
    case "u32":
    case "u64": {
      if (isNull) return kind === "u64" ? 0n : 0;
      const max = kind === "u8" ? 0xffn : kind === "u32" ? 0xffffffffn : null;
      let big: bigint;
      if (typeof v === "bigint") big = v;
      else if (typeof v === "number" && Number.isInteger(v)) big = BigInt(v);
      else throw bad("is not an unsigned integer");
      if (big < 0n) throw bad("is negative");
      if (max !== null && big > max) throw bad("overflows");
      if (big > 0xffffffffffffffffn) throw bad("overflows");
      return kind === "u64" ? big : Number(big);
    }
    case "text":
      if (isNull) return "";
      if (typeof v !== "string") throw bad("is not a text string");
      return v;
    case "destinations": {
      if (isNull) return null;
      if (!Array.isArray(v)) throw bad("is not an array");
      return v.map((item, i) =>
        decodeStruct(DESTINATION_FIELDS, item, `${where}[${i}]`)
      );
    }
  }
}

function decodeStruct(
  spec: Record<string, FieldKind>,
  value: unknown,
  where: string,
): Record<string, unknown> {
  if (value === null || value === undefined) value = new Map();
  if (!(value instanceof Map)) {
    throw new RequestDecodeError(
      `Cannot decode request: ${where} is not a map`,
    );
  }
  const out: Record<string, unknown> = {};
  for (const [key, kind] of Object.entries(spec)) {
    out[key] = decodeField(kind, lookup(value, key), `${where}.${key}`);
  }
  return out;
}

/** Converts decoded Maps with only text keys into plain objects, recursively. */
export function toPlain(value: unknown): unknown {
  if (value instanceof Map) {
    const allText = [...value.keys()].every((k) => typeof k === "string");
    if (!allText) {
      return new Map([...value].map(([k, v]) => [k, toPlain(v)]));
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of value) out[k as string] = toPlain(v);
    return out;
  }
  if (Array.isArray(value)) return value.map(toPlain);
  return value;
}

/**
 * Decodes a request frame body as kpclientd would (docs/protocol.md#cbor-encoding,
 * #request-validation): every present variant is decoded and type-checked (so a bad field
 * in any variant is fatal), then the first non-null variant in priority
 * order is chosen.
 *
 * @throws {RequestDecodeError} When the Go daemon would fail to decode it.
 */
export function decodeRequest(bytes: Uint8Array): DecodedRequest {
  let top: unknown;
  try {
    top = decodeCborMaps(bytes);
  } catch (err) {
    throw new RequestDecodeError(
      `Cannot decode request: ${(err as Error).message}`,
      { cause: err },
    );
  }
  if (!(top instanceof Map)) {
    throw new RequestDecodeError("Cannot decode request: not a map");
  }
  const decoded = new Map<RequestKind, DecodedRequest>();
  for (const kind of REQUEST_KINDS) {
    const v = lookup(top, kind);
    if (v === null || v === undefined) continue;
    if (!(v instanceof Map)) {
      throw new RequestDecodeError(
        `Cannot decode request: variant "${kind}" is not a map`,
      );
    }
    decoded.set(kind, {
      kind,
      fields: decodeStruct(REQUEST_FIELDS[kind], v, kind),
      body: toPlain(v) as Record<string, unknown>,
    });
  }
  for (const kind of PRIORITY) {
    const hit = decoded.get(kind);
    if (hit !== undefined) return hit;
  }
  return { kind: "empty", fields: {}, body: {} };
}
