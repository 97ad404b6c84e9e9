/**
 * The daemon side of the thin protocol's CBOR layer, written independently of
 * lib/protocol.ts: Go-ordered response encoding (full 25-key form or
 * single-key form) and the zero-valued reply templates. The strict request
 * decoder lives in _wire_request.ts and is re-exported here.
 *
 * @module
 */
import { encodeCbor } from "../lib/cbor.ts";
import { encodeFrame } from "../lib/framing.ts";
import { concatBytes, u32Be } from "../lib/_bytes.ts";

export {
  bytesOrNull,
  type DecodedRequest,
  decodeRequest,
  LOCAL_KINDS,
  MIXNET_KINDS,
  REQUEST_KINDS,
  RequestDecodeError,
  type RequestKind,
  toPlain,
} from "./_wire_request.ts";

// ---------------------------------------------------------------------------
// Ordered encoding

function head(major: number, n: number): Uint8Array {
  const m = major << 5;
  if (n < 24) return new Uint8Array([m | n]);
  if (n < 0x100) return new Uint8Array([m | 24, n]);
  if (n < 0x10000) return new Uint8Array([m | 25, n >> 8, n & 0xff]);
  const out = new Uint8Array(5);
  out[0] = m | 26;
  out.set(u32Be(n), 1);
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
