/**
 * The daemon side of the thin protocol's requests, written independently of
 * lib/protocol.ts: the request schema in Go declaration order and a strict
 * decoder that mimics what kpclientd's Go decoder accepts and rejects.
 *
 * @module
 */
import { decodeCborMaps } from "../lib/cbor.ts";

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

/** A decoded field as bytes, or `null` when it is not a byte string. */
export function bytesOrNull(v: unknown): Uint8Array | null {
  return v instanceof Uint8Array ? v : null;
}
