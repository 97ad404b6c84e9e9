/**
 * Every request, reply and event of the kpclientd v0.0.99 thin protocol as
 * TypeScript types, with the encoder and the validating decoder. This is the
 * only file that knows the raw CBOR keys.
 *
 * Requests are encoded as single-key envelope maps. Responses are decoded by
 * picking the one variant whose value is not null (the daemon sends all 25
 * keys, 24 of them null).
 *
 * @module
 */
import {
  type CborEntry,
  cborMapEntries,
  cborTypeAt,
  checkCbor,
  decodeCbor,
  decodeCborBytesList,
  decodeCborScalarAt,
  encodeCborEnvelope,
  NOT_SCALAR,
} from "./cbor.ts";
import { ProtocolError } from "./errors.ts";

/**
 * Most array elements plus map pairs one frame may hold: 65,536. A frame's
 * only long arrays are copy-stream elements (one per box of at most 1549
 * bytes, so about 27,000 in 40 MiB, and at most 65,536 per copy stream) and
 * box indices; the rest is a few dozen fields. Decoding costs about 1 µs
 * per element, so this also bounds the time one frame blocks the event loop
 * (see BENCHMARKS.md, "Hostile input").
 */
const FRAME_MAX_ELEMENTS = 65_536;
/**
 * Most array elements plus map pairs in one field other than a list of byte
 * strings. The largest such field kpclientd sends is the list of directory
 * authorities: a handful of maps of seven fields. Lists of byte strings are
 * decoded without building an object per element; anything else is built
 * by cborg, so this keeps a hostile field cheap to decode.
 */
const FIELD_MAX_ELEMENTS = 4_096;

/** Byte length of query ids, SURB ids, message ids and instance tokens. */
export const ID_LENGTH = 16;
/** Byte length of envelope hashes and identity hashes. */
export const HASH_LENGTH = 32;

// ---------------------------------------------------------------------------
// Geometry

/**
 * The daemon's Sphinx geometry, from every connection status event.
 *
 * @example Usage
 * ```ts ignore
 * console.log(client.sphinxGeometry.userForwardPayloadLength); // 2000
 * ```
 */
export interface SphinxGeometry {
  /** Total Sphinx packet length. */
  packetLength: number;
  /** Hops in a path. */
  nrHops: number;
  /** Sphinx header length. */
  headerLength: number;
  /** Routing-info part of the header. */
  routingInfoLength: number;
  /** Per-hop routing info length. */
  perHopRoutingInfoLength: number;
  /** Length of a SURB. */
  surbLength: number;
  /** Plaintext header length. */
  sphinxPlaintextHeaderLength: number;
  /** Payload tag length. */
  payloadTagLength: number;
  /** Forward payload length. */
  forwardPayloadLength: number;
  /** Maximum `sendMessage` payload, in bytes. */
  userForwardPayloadLength: number;
  /** Next-node hop length. */
  nextNodeHopLength: number;
  /** SPRP key material length. */
  sprpKeyMaterialLength: number;
  /** NIKE scheme name (empty when a KEM is used). */
  nikeName: string;
  /** KEM scheme name (empty when a NIKE is used). */
  kemName: string;
}

/**
 * The daemon's Pigeonhole geometry, derived from its Sphinx geometry.
 *
 * @example Usage
 * ```ts ignore
 * console.log(client.pigeonholeGeometry.maxPlaintextPayloadLength); // 1549
 * ```
 */
export interface PigeonholeGeometry {
  /** Maximum plaintext per box, in bytes. */
  maxPlaintextPayloadLength: number;
  /** Wire size of a read query. */
  courierQueryReadLength: number;
  /** Wire size of a write query. */
  courierQueryWriteLength: number;
  /** Wire size of a courier reply to a read. */
  courierQueryReplyReadLength: number;
  /** Wire size of a courier reply to a write. */
  courierQueryReplyWriteLength: number;
  /** Replica MKEM NIKE name, e.g. `CTIDH1024-X25519`. */
  nikeName: string;
  /** Signature scheme name, e.g. `Ed25519`. */
  signatureSchemeName: string;
}

// ---------------------------------------------------------------------------
// Requests

/**
 * One destination of a multi-payload copy-stream build.
 *
 * @example Usage
 * ```ts ignore
 * const d: CopyDestination = { payload, writeCap, startIndex };
 * ```
 */
export interface CopyDestination {
  /** Bytes to write into the destination stream (≤ 10 MiB). */
  payload: Uint8Array;
  /** Destination write capability (168 bytes). */
  writeCap: Uint8Array;
  /** First destination box index (104 bytes). */
  startIndex: Uint8Array;
}

/**
 * Every request a client sends, as a discriminated union on `kind` (the wire
 * variant name). Fields are camelCase versions of the wire keys.
 *
 * @example Usage
 * ```ts
 * import { encodeRequest, type Request } from "@katzenpost/thinclient";
 * const req: Request = { kind: "thin_close" };
 * console.log(encodeRequest(req)); // Uint8Array(13) [ 161, 106, ... ]
 * ```
 */
export type Request =
  | { kind: "session_token"; clientInstanceToken: Uint8Array }
  | { kind: "thin_close" }
  | {
    kind: "send_message";
    id: Uint8Array | null;
    withSurb: boolean;
    surbId: Uint8Array | null;
    destinationIdHash: Uint8Array;
    recipientQueueId: Uint8Array;
    payload: Uint8Array;
  }
  | { kind: "new_keypair"; queryId: Uint8Array; seed: Uint8Array }
  | {
    kind: "encrypt_read";
    queryId: Uint8Array;
    readCap: Uint8Array;
    messageBoxIndex: Uint8Array;
  }
  | {
    kind: "encrypt_write";
    queryId: Uint8Array;
    plaintext: Uint8Array;
    writeCap: Uint8Array;
    messageBoxIndex: Uint8Array;
  }
  | {
    kind: "start_resending_encrypted_message";
    queryId: Uint8Array;
    readCap: Uint8Array | null;
    writeCap: Uint8Array | null;
    messageBoxIndex: Uint8Array | null;
    replyIndex?: number;
    envelopeDescriptor: Uint8Array;
    messageCiphertext: Uint8Array;
    envelopeHash: Uint8Array;
    noRetryOnBoxIdNotFound?: boolean;
    noIdempotentBoxAlreadyExists?: boolean;
  }
  | {
    kind: "cancel_resending_encrypted_message";
    queryId: Uint8Array;
    envelopeHash: Uint8Array;
  }
  | {
    kind: "start_resending_copy_command";
    queryId: Uint8Array;
    writeCap: Uint8Array;
    courierIdentityHash?: Uint8Array;
    courierQueueId?: Uint8Array;
  }
  | {
    kind: "cancel_resending_copy_command";
    queryId: Uint8Array;
    writeCapHash: Uint8Array;
  }
  | {
    kind: "next_message_box_index";
    queryId: Uint8Array;
    messageBoxIndex: Uint8Array;
  }
  | {
    kind: "get_message_box_index_counter";
    queryId: Uint8Array;
    messageBoxIndex: Uint8Array;
  }
  | { kind: "get_pki_document"; queryId: Uint8Array; epoch: bigint }
  | { kind: "get_directory_authorities"; queryId: Uint8Array }
  | {
    kind: "create_courier_envelopes_from_payload";
    queryId: Uint8Array;
    payload: Uint8Array;
    destWriteCap: Uint8Array;
    destStartIndex: Uint8Array;
    isStart: boolean;
    isLast: boolean;
  }
  | {
    kind: "create_courier_envelopes_from_multi_payload";
    queryId: Uint8Array;
    destinations: CopyDestination[];
    isStart: boolean;
    isLast: boolean;
    buffer: Uint8Array | null;
  }
  | {
    kind: "create_courier_envelopes_from_tombstone_range";
    queryId: Uint8Array;
    destWriteCap: Uint8Array;
    destStartIndex: Uint8Array;
    maxCount: number;
    isStart: boolean;
    isLast: boolean;
    buffer: Uint8Array | null;
  }
  | {
    kind: "voucher_mint";
    queryId: Uint8Array;
    messageWriteCap: Uint8Array;
    displayName: string;
  }
  | {
    kind: "voucher_induct";
    queryId: Uint8Array;
    voucher: Uint8Array;
    voucherPayload: Uint8Array;
    whoReply: Uint8Array;
  }
  | {
    kind: "voucher_open";
    queryId: Uint8Array;
    voucherSecretKey: Uint8Array;
    sealedReply: Uint8Array;
    messageWriteCap: Uint8Array;
  }
  | { kind: "voucher_derive_stream"; queryId: Uint8Array; voucher: Uint8Array };

/**
 * The wire name of a request variant.
 *
 * @example Usage
 * ```ts
 * import type { RequestKind } from "@katzenpost/thinclient";
 * const k: RequestKind = "new_keypair";
 * ```
 */
export type RequestKind = Request["kind"];

/** TS field name → wire key, per request kind, in Go declaration order. */
const REQUEST_KEYS: {
  readonly [K in RequestKind]: readonly (readonly [string, string])[];
} = {
  "session_token": [["clientInstanceToken", "client_instance_token"]],
  "thin_close": [],
  "send_message": [
    ["id", "id"],
    ["withSurb", "with_surb"],
    ["surbId", "surbid"],
    ["destinationIdHash", "destination_id_hash"],
    ["recipientQueueId", "recipient_queue_id"],
    ["payload", "payload"],
  ],
  "new_keypair": [["queryId", "query_id"], ["seed", "seed"]],
  "encrypt_read": [
    ["queryId", "query_id"],
    ["readCap", "read_cap"],
    ["messageBoxIndex", "message_box_index"],
  ],
  "encrypt_write": [
    ["queryId", "query_id"],
    ["plaintext", "plaintext"],
    ["writeCap", "write_cap"],
    ["messageBoxIndex", "message_box_index"],
  ],
  "start_resending_encrypted_message": [
    ["queryId", "query_id"],
    ["readCap", "read_cap"],
    ["writeCap", "write_cap"],
    ["messageBoxIndex", "message_box_index"],
    ["replyIndex", "reply_index"],
    ["envelopeDescriptor", "envelope_descriptor"],
    ["messageCiphertext", "message_ciphertext"],
    ["envelopeHash", "envelope_hash"],
    ["noRetryOnBoxIdNotFound", "no_retry_on_box_id_not_found"],
    ["noIdempotentBoxAlreadyExists", "no_idempotent_box_already_exists"],
  ],
  "cancel_resending_encrypted_message": [
    ["queryId", "query_id"],
    ["envelopeHash", "envelope_hash"],
  ],
  "start_resending_copy_command": [
    ["queryId", "query_id"],
    ["writeCap", "write_cap"],
    ["courierIdentityHash", "courier_identity_hash"],
    ["courierQueueId", "courier_queue_id"],
  ],
  "cancel_resending_copy_command": [
    ["queryId", "query_id"],
    ["writeCapHash", "write_cap_hash"],
  ],
  "next_message_box_index": [["queryId", "query_id"], [
    "messageBoxIndex",
    "message_box_index",
  ]],
  "get_message_box_index_counter": [
    ["queryId", "query_id"],
    ["messageBoxIndex", "message_box_index"],
  ],
  "get_pki_document": [["queryId", "query_id"], ["epoch", "epoch"]],
  "get_directory_authorities": [["queryId", "query_id"]],
  "create_courier_envelopes_from_payload": [
    ["queryId", "query_id"],
    ["payload", "payload"],
    ["destWriteCap", "dest_write_cap"],
    ["destStartIndex", "dest_start_index"],
    ["isStart", "is_start"],
    ["isLast", "is_last"],
  ],
  "create_courier_envelopes_from_multi_payload": [
    ["queryId", "query_id"],
    ["destinations", "destinations"],
    ["isStart", "is_start"],
    ["isLast", "is_last"],
    ["buffer", "buffer"],
  ],
  "create_courier_envelopes_from_tombstone_range": [
    ["queryId", "query_id"],
    ["destWriteCap", "dest_write_cap"],
    ["destStartIndex", "dest_start_index"],
    ["maxCount", "max_count"],
    ["isStart", "is_start"],
    ["isLast", "is_last"],
    ["buffer", "buffer"],
  ],
  "voucher_mint": [
    ["queryId", "query_id"],
    ["messageWriteCap", "message_write_cap"],
    ["displayName", "display_name"],
  ],
  "voucher_induct": [
    ["queryId", "query_id"],
    ["voucher", "voucher"],
    ["voucherPayload", "voucher_payload"],
    ["whoReply", "who_reply"],
  ],
  "voucher_open": [
    ["queryId", "query_id"],
    ["voucherSecretKey", "voucher_secret_key"],
    ["sealedReply", "sealed_reply"],
    ["messageWriteCap", "message_write_cap"],
  ],
  "voucher_derive_stream": [["queryId", "query_id"], ["voucher", "voucher"]],
};

/** Wire keys that Go omits when zero (`omitempty`). */
const OMIT_EMPTY = new Set([
  "reply_index",
  "no_retry_on_box_id_not_found",
  "no_idempotent_box_already_exists",
  "courier_identity_hash",
  "courier_queue_id",
]);

function isEmptyValue(v: unknown): boolean {
  return v === undefined || v === null || v === false || v === 0 ||
    (v instanceof Uint8Array && v.length === 0);
}

/**
 * Encodes a request as the CBOR body of a frame: a single-key envelope map
 * whose value holds the wire keys of the variant.
 *
 * @param request The request.
 * @returns The CBOR body (without the length prefix).
 *
 * @example Usage
 * ```ts
 * import { encodeRequest } from "@katzenpost/thinclient";
 * const body = encodeRequest({ kind: "thin_close" });
 * console.log(body.length); // 13
 * ```
 */
export function encodeRequest(request: Request): Uint8Array {
  return _encodeRequest(request, 0);
}

/**
 * {@linkcode encodeRequest} with `headroom` zero bytes left before the body,
 * where the client writes the frame's length prefix (no second copy).
 */
export function _encodeRequest(request: Request, headroom: number): Uint8Array {
  const source = request as unknown as Record<string, unknown>;
  const keys = REQUEST_KEYS[request.kind];
  // Wire keys and values, alternating. Indexed loops: destructuring each
  // table entry in a for-of allocates on every request.
  const entries: unknown[] = new Array(keys.length * 2);
  let n = 0;
  for (let i = 0; i < keys.length; i++) {
    const tsKey = keys[i]![0];
    const wireKey = keys[i]![1];
    let value = source[tsKey];
    if (OMIT_EMPTY.has(wireKey) && isEmptyValue(value)) continue;
    if (wireKey === "destinations") {
      value = (value as CopyDestination[]).map((d) => ({
        payload: d.payload,
        write_cap: d.writeCap,
        start_index: d.startIndex,
      }));
    }
    entries[n++] = wireKey;
    entries[n++] = value === undefined ? null : value;
  }
  entries.length = n;
  return encodeCborEnvelope(request.kind, entries, headroom);
}

// ---------------------------------------------------------------------------
// Responses

/**
 * A directory authority configured in the daemon.
 *
 * @example Usage
 * ```ts ignore
 * for (const a of await client.getDirectoryAuthorities()) console.log(a.identifier);
 * ```
 */
export interface DirectoryAuthority {
  /** Authority name. */
  identifier: string;
  /** PKI signature scheme name. */
  pkiSignatureScheme: string;
  /** Wire KEM scheme name. */
  wireKemScheme: string;
  /** Addresses (URLs such as `tcp://…`). */
  addresses: string[];
  /** Identity public key, PEM (may be empty). */
  identityPublicKeyPem: string;
  /** Link public key, PEM (may be empty). */
  linkPublicKeyPem: string;
  /** BLAKE2b-256 of the identity public key (32 bytes). */
  identityKeyHash: Uint8Array;
}

/**
 * Every frame the daemon sends, decoded, as a discriminated union on `kind`
 * (the wire variant name). `unknown` stands for a frame with no known
 * non-null variant; it is ignored by the client.
 *
 * @example Usage
 * ```ts
 * import { decodeResponse, encodeRequest } from "@katzenpost/thinclient";
 * // An empty map has no variant.
 * console.log(decodeResponse(new Uint8Array([0xa0])).kind); // "unknown"
 * ```
 */
export type Response =
  | { kind: "session_token_reply"; appId: Uint8Array; resumed: boolean }
  | { kind: "shutdown_event" }
  | {
    kind: "connection_status_event";
    isConnected: boolean;
    instanceToken: Uint8Array;
    sphinxGeometry: SphinxGeometry | null;
    pigeonholeGeometry: PigeonholeGeometry | null;
  }
  | { kind: "new_pki_document_event"; payload: Uint8Array | null }
  | {
    kind: "message_sent_event";
    messageId: Uint8Array | null;
    surbId: Uint8Array | null;
    sentAt: number | null;
    replyEta: bigint;
    err: string | null;
  }
  | {
    kind: "message_reply_event";
    messageId: Uint8Array | null;
    surbId: Uint8Array | null;
    payload: Uint8Array | null;
    replyIndex: number | null;
    errorCode: number;
  }
  | { kind: "message_id_garbage_collected"; messageId: Uint8Array | null }
  | {
    kind: "new_keypair_reply";
    queryId: Uint8Array | null;
    writeCap: Uint8Array | null;
    readCap: Uint8Array | null;
    firstMessageIndex: Uint8Array | null;
    errorCode: number;
  }
  | {
    kind: "encrypt_read_reply" | "encrypt_write_reply";
    queryId: Uint8Array | null;
    messageCiphertext: Uint8Array | null;
    envelopeDescriptor: Uint8Array | null;
    envelopeHash: Uint8Array | null;
    nextMessageBoxIndex: Uint8Array | null;
    errorCode: number;
  }
  | {
    kind: "start_resending_encrypted_message_reply";
    queryId: Uint8Array | null;
    plaintext: Uint8Array | null;
    errorCode: number;
    courierIdentityHash: Uint8Array | null;
    courierQueueId: Uint8Array | null;
  }
  | {
    kind:
      | "cancel_resending_encrypted_message_reply"
      | "cancel_resending_copy_command_reply";
    queryId: Uint8Array | null;
    errorCode: number;
  }
  | {
    kind: "start_resending_copy_command_reply";
    queryId: Uint8Array | null;
    errorCode: number;
    replicaErrorCode: number;
    failedEnvelopeIndex: bigint;
  }
  | {
    kind: "next_message_box_index_reply";
    queryId: Uint8Array | null;
    nextMessageBoxIndex: Uint8Array | null;
    errorCode: number;
  }
  | {
    kind: "get_message_box_index_counter_reply";
    queryId: Uint8Array | null;
    counter: bigint;
    errorCode: number;
  }
  | {
    kind: "get_pki_document_reply";
    queryId: Uint8Array | null;
    payload: Uint8Array | null;
    epoch: bigint;
    errorCode: number;
  }
  | {
    kind: "get_directory_authorities_reply";
    queryId: Uint8Array | null;
    authorities: DirectoryAuthority[] | null;
    errorCode: number;
  }
  | {
    kind: "create_courier_envelopes_from_payload_reply";
    queryId: Uint8Array | null;
    envelopes: Uint8Array[] | null;
    nextDestIndex: Uint8Array | null;
    errorCode: number;
  }
  | {
    kind: "create_courier_envelopes_from_multi_payload_reply";
    queryId: Uint8Array | null;
    envelopes: Uint8Array[] | null;
    buffer: Uint8Array | null;
    nextDestIndices: Uint8Array[] | null;
    errorCode: number;
  }
  | {
    kind: "create_courier_envelopes_from_tombstone_range_reply";
    queryId: Uint8Array | null;
    envelopes: Uint8Array[] | null;
    buffer: Uint8Array | null;
    nextDestIndex: Uint8Array | null;
    errorCode: number;
  }
  | {
    kind: "voucher_mint_reply";
    queryId: Uint8Array | null;
    voucher: Uint8Array | null;
    voucherPayload: Uint8Array | null;
    voucherWriteCap: Uint8Array | null;
    voucherReadCap: Uint8Array | null;
    voucherSecretKey: Uint8Array | null;
    voucherPublicKey: Uint8Array | null;
    errorCode: number;
  }
  | {
    kind: "voucher_induct_reply";
    queryId: Uint8Array | null;
    displayName: string;
    mutatedMessageReadCap: Uint8Array | null;
    sealedReply: Uint8Array | null;
    voucherWriteCap: Uint8Array | null;
    voucherReadCap: Uint8Array | null;
    salt: Uint8Array | null;
    errorCode: number;
  }
  | {
    kind: "voucher_open_reply";
    queryId: Uint8Array | null;
    whoReply: Uint8Array | null;
    salt: Uint8Array | null;
    mutatedMessageWriteCap: Uint8Array | null;
    errorCode: number;
  }
  | {
    kind: "voucher_derive_stream_reply";
    queryId: Uint8Array | null;
    voucherWriteCap: Uint8Array | null;
    voucherReadCap: Uint8Array | null;
    errorCode: number;
  }
  | { kind: "unknown"; keys: string[] };

/**
 * The wire name of a response variant.
 *
 * @example Usage
 * ```ts
 * import type { ResponseKind } from "@katzenpost/thinclient";
 * const k: ResponseKind = "session_token_reply";
 * ```
 */
export type ResponseKind = Response["kind"];

/**
 * The decoded response of a given kind.
 *
 * @example Usage
 * ```ts
 * import type { ResponseOf } from "@katzenpost/thinclient";
 * type Reply = ResponseOf<"new_keypair_reply">;
 * ```
 */
export type ResponseOf<K extends ResponseKind> = Extract<Response, { kind: K }>;

/** Field types understood by the decoder. */
type FieldType =
  | "bytes?" // byte string or null
  | "id?" // 16-byte id or null
  | "id" // 16-byte id
  | "hash?" // 32-byte hash or null
  | "hash" // 32-byte hash
  | "bool"
  | "u8"
  | "u64"
  | "time?" // seconds or null
  | "text"
  | "text?"
  | "bytesList?"
  | "sphinx?"
  | "pigeonhole?"
  | "authorities?";

const Q: readonly [string, string, FieldType] = ["queryId", "query_id", "id?"];
const E: readonly [string, string, FieldType] = [
  "errorCode",
  "error_code",
  "u8",
];

/** Wire variant → (TS field, wire key, type), in Go declaration order. */
const RESPONSE_FIELDS: {
  readonly [K in Exclude<ResponseKind, "unknown">]: readonly (readonly [
    string,
    string,
    FieldType,
  ])[];
} = {
  "session_token_reply": [["appId", "app_id", "id"], [
    "resumed",
    "resumed",
    "bool",
  ]],
  "shutdown_event": [],
  "connection_status_event": [
    ["isConnected", "is_connected", "bool"],
    ["instanceToken", "instance_token", "id"],
    ["sphinxGeometry", "sphinx_geometry", "sphinx?"],
    ["pigeonholeGeometry", "pigeonhole_geometry", "pigeonhole?"],
  ],
  "new_pki_document_event": [["payload", "payload", "bytes?"]],
  "message_sent_event": [
    ["messageId", "message_id", "id?"],
    ["surbId", "surbid", "id?"],
    ["sentAt", "sent_at", "time?"],
    ["replyEta", "reply_eta", "u64"],
    ["err", "err", "text?"],
  ],
  "message_reply_event": [
    ["messageId", "message_id", "id?"],
    ["surbId", "surbid", "id?"],
    ["payload", "payload", "bytes?"],
    ["replyIndex", "reply_index", "u8"],
    E,
  ],
  "message_id_garbage_collected": [["messageId", "message_id", "id?"]],
  "new_keypair_reply": [
    Q,
    ["writeCap", "write_cap", "bytes?"],
    ["readCap", "read_cap", "bytes?"],
    ["firstMessageIndex", "first_message_index", "bytes?"],
    E,
  ],
  "encrypt_read_reply": [
    Q,
    ["messageCiphertext", "message_ciphertext", "bytes?"],
    ["envelopeDescriptor", "envelope_descriptor", "bytes?"],
    ["envelopeHash", "envelope_hash", "hash?"],
    ["nextMessageBoxIndex", "next_message_box_index", "bytes?"],
    E,
  ],
  "encrypt_write_reply": [
    Q,
    ["messageCiphertext", "message_ciphertext", "bytes?"],
    ["envelopeDescriptor", "envelope_descriptor", "bytes?"],
    ["envelopeHash", "envelope_hash", "hash?"],
    ["nextMessageBoxIndex", "next_message_box_index", "bytes?"],
    E,
  ],
  "start_resending_encrypted_message_reply": [
    Q,
    ["plaintext", "plaintext", "bytes?"],
    E,
    ["courierIdentityHash", "courier_identity_hash", "hash?"],
    ["courierQueueId", "courier_queue_id", "bytes?"],
  ],
  "cancel_resending_encrypted_message_reply": [Q, E],
  "start_resending_copy_command_reply": [
    Q,
    E,
    ["replicaErrorCode", "replica_error_code", "u8"],
    ["failedEnvelopeIndex", "failed_envelope_index", "u64"],
  ],
  "cancel_resending_copy_command_reply": [Q, E],
  "next_message_box_index_reply": [
    Q,
    ["nextMessageBoxIndex", "next_message_box_index", "bytes?"],
    E,
  ],
  "get_message_box_index_counter_reply": [Q, ["counter", "counter", "u64"], E],
  "get_pki_document_reply": [
    Q,
    ["payload", "payload", "bytes?"],
    ["epoch", "epoch", "u64"],
    E,
  ],
  "get_directory_authorities_reply": [
    Q,
    ["authorities", "authorities", "authorities?"],
    E,
  ],
  "create_courier_envelopes_from_payload_reply": [
    Q,
    ["envelopes", "envelopes", "bytesList?"],
    ["nextDestIndex", "next_dest_index", "bytes?"],
    E,
  ],
  "create_courier_envelopes_from_multi_payload_reply": [
    Q,
    ["envelopes", "envelopes", "bytesList?"],
    ["buffer", "buffer", "bytes?"],
    ["nextDestIndices", "next_dest_indices", "bytesList?"],
    E,
  ],
  "create_courier_envelopes_from_tombstone_range_reply": [
    Q,
    ["envelopes", "envelopes", "bytesList?"],
    ["buffer", "buffer", "bytes?"],
    ["nextDestIndex", "next_dest_index", "bytes?"],
    E,
  ],
  "voucher_mint_reply": [
    Q,
    ["voucher", "voucher", "bytes?"],
    ["voucherPayload", "voucher_payload", "bytes?"],
    ["voucherWriteCap", "voucher_write_cap", "bytes?"],
    ["voucherReadCap", "voucher_read_cap", "bytes?"],
    ["voucherSecretKey", "voucher_secret_key", "bytes?"],
    ["voucherPublicKey", "voucher_public_key", "bytes?"],
    E,
  ],
  "voucher_induct_reply": [
    Q,
    ["displayName", "display_name", "text"],
    ["mutatedMessageReadCap", "mutated_message_read_cap", "bytes?"],
    ["sealedReply", "sealed_reply", "bytes?"],
    ["voucherWriteCap", "voucher_write_cap", "bytes?"],
    ["voucherReadCap", "voucher_read_cap", "bytes?"],
    ["salt", "salt", "bytes?"],
    E,
  ],
  "voucher_open_reply": [
    Q,
    ["whoReply", "who_reply", "bytes?"],
    ["salt", "salt", "bytes?"],
    ["mutatedMessageWriteCap", "mutated_message_write_cap", "bytes?"],
    E,
  ],
  "voucher_derive_stream_reply": [
    Q,
    ["voucherWriteCap", "voucher_write_cap", "bytes?"],
    ["voucherReadCap", "voucher_read_cap", "bytes?"],
    E,
  ],
};

const SPHINX_KEYS: readonly (readonly [keyof SphinxGeometry, string])[] = [
  ["packetLength", "PacketLength"],
  ["nrHops", "NrHops"],
  ["headerLength", "HeaderLength"],
  ["routingInfoLength", "RoutingInfoLength"],
  ["perHopRoutingInfoLength", "PerHopRoutingInfoLength"],
  ["surbLength", "SURBLength"],
  ["sphinxPlaintextHeaderLength", "SphinxPlaintextHeaderLength"],
  ["payloadTagLength", "PayloadTagLength"],
  ["forwardPayloadLength", "ForwardPayloadLength"],
  ["userForwardPayloadLength", "UserForwardPayloadLength"],
  ["nextNodeHopLength", "NextNodeHopLength"],
  ["sprpKeyMaterialLength", "SPRPKeyMaterialLength"],
  ["nikeName", "NIKEName"],
  ["kemName", "KEMName"],
];

const PIGEONHOLE_KEYS:
  readonly (readonly [keyof PigeonholeGeometry, string])[] = [
    ["maxPlaintextPayloadLength", "MaxPlaintextPayloadLength"],
    ["courierQueryReadLength", "CourierQueryReadLength"],
    ["courierQueryWriteLength", "CourierQueryWriteLength"],
    ["courierQueryReplyReadLength", "CourierQueryReplyReadLength"],
    ["courierQueryReplyWriteLength", "CourierQueryReplyWriteLength"],
    ["nikeName", "NIKEName"],
    ["signatureSchemeName", "SignatureSchemeName"],
  ];

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (v instanceof Uint8Array) return "byte string";
  if (Array.isArray(v)) return "array";
  if (typeof v === "bigint") return "integer";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "float";
  if (typeof v === "string") return "text string";
  if (typeof v === "object") return "map";
  return typeof v;
}

function badType(
  where: string,
  expected: string,
  type: string,
): ProtocolError {
  return new ProtocolError(
    `Cannot decode frame: field '${where}' is ${type}, expected ${expected}`,
  );
}

function bad(where: string, expected: string, v: unknown): ProtocolError {
  return badType(where, expected, typeName(v));
}

function isPlainMap(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) &&
    !(v instanceof Uint8Array) && !(v instanceof Map);
}

/** A map's own value for a key (never one inherited from `Object.prototype`). */
function own(map: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(map, key) ? map[key] : undefined;
}

function decodeUint(where: string, v: unknown, max: number): number {
  if (v === null || v === undefined) return 0;
  if (typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= max) {
    return v;
  }
  throw bad(where, `an unsigned integer ≤ ${max}`, v);
}

function decodeU64(where: string, v: unknown): bigint {
  if (v === null || v === undefined) return 0n;
  if (typeof v === "number" && Number.isInteger(v) && v >= 0) return BigInt(v);
  if (typeof v === "bigint" && v >= 0n && v < 1n << 64n) return v;
  throw bad(where, "an unsigned 64-bit integer", v);
}

function decodeBytes(
  where: string,
  v: unknown,
  length?: number,
): Uint8Array | null {
  if (v === null || v === undefined) return null;
  if (!(v instanceof Uint8Array)) throw bad(where, "a byte string", v);
  if (length !== undefined && v.length !== length) {
    throw new ProtocolError(
      `Cannot decode frame: field '${where}' has ${v.length} bytes, expected ${length}`,
    );
  }
  return v;
}

function decodeText(where: string, v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v !== "string") throw bad(where, "a text string", v);
  return v;
}

function decodeStruct<T>(
  where: string,
  v: unknown,
  keys: readonly (readonly [keyof T, string])[],
): T | null {
  if (v === null || v === undefined) return null;
  if (!isPlainMap(v)) throw bad(where, "a map", v);
  const out: Record<string, unknown> = {};
  for (const [tsKey, wireKey] of keys) {
    const raw = own(v, wireKey);
    const at = `${where}.${wireKey}`;
    if (wireKey.endsWith("Name")) {
      out[tsKey as string] = decodeText(at, raw) ?? "";
    } else out[tsKey as string] = decodeUint(at, raw, Number.MAX_SAFE_INTEGER);
  }
  return out as T;
}

function decodeAuthority(where: string, v: unknown): DirectoryAuthority {
  if (!isPlainMap(v)) throw bad(where, "a map", v);
  const addresses = own(v, "addresses");
  const text = (key: string): string =>
    decodeText(`${where}.${key}`, own(v, key)) ?? "";
  const list: string[] = [];
  if (addresses !== null && addresses !== undefined) {
    if (!Array.isArray(addresses)) {
      throw bad(`${where}.addresses`, "an array", addresses);
    }
    for (const a of addresses) {
      list.push(decodeText(`${where}.addresses`, a) ?? "");
    }
  }
  return {
    identifier: text("identifier"),
    pkiSignatureScheme: text("pki_signature_scheme"),
    wireKemScheme: text("wire_kem_scheme"),
    addresses: list,
    identityPublicKeyPem: text("identity_public_key_pem"),
    linkPublicKeyPem: text("link_public_key_pem"),
    identityKeyHash: decodeBytes(
      `${where}.identity_key_hash`,
      own(v, "identity_key_hash"),
      32,
    ) ??
      new Uint8Array(32),
  };
}

function decodeField(where: string, type: FieldType, v: unknown): unknown {
  switch (type) {
    case "bytes?":
      return decodeBytes(where, v);
    case "id?":
      return decodeBytes(where, v, ID_LENGTH);
    case "id": {
      const b = decodeBytes(where, v, ID_LENGTH);
      if (b === null) throw bad(where, `a ${ID_LENGTH}-byte string`, v);
      return b;
    }
    case "hash?":
      return decodeBytes(where, v, HASH_LENGTH);
    case "hash": {
      const b = decodeBytes(where, v, HASH_LENGTH);
      if (b === null) throw bad(where, `a ${HASH_LENGTH}-byte string`, v);
      return b;
    }
    case "bool":
      if (v === null || v === undefined) return false;
      if (typeof v !== "boolean") throw bad(where, "a boolean", v);
      return v;
    case "u8":
      return decodeUint(where, v, 255);
    case "u64":
      return decodeU64(where, v);
    case "time?":
      // Go's time.Time: int64 seconds. Frames hold no floats (decodeCbor
      // refuses them), so a number here is an integer.
      if (v === null || v === undefined) return null;
      if (typeof v === "number") return v;
      if (typeof v === "bigint" && v >= -(1n << 63n) && v < 1n << 63n) {
        return Number(v);
      }
      throw bad(where, "a time in seconds (a 64-bit integer)", v);
    case "text":
      return decodeText(where, v) ?? "";
    case "text?":
      return decodeText(where, v);
    case "bytesList?": {
      if (v === null || v === undefined) return null;
      if (!Array.isArray(v)) throw bad(where, "an array of byte strings", v);
      return v.map((item, i) => {
        const b = decodeBytes(`${where}[${i}]`, item);
        if (b === null) throw bad(`${where}[${i}]`, "a byte string", item);
        return b;
      });
    }
    case "sphinx?":
      return decodeStruct<SphinxGeometry>(where, v, SPHINX_KEYS);
    case "pigeonhole?":
      return decodeStruct<PigeonholeGeometry>(where, v, PIGEONHOLE_KEYS);
    case "authorities?":
      if (v === null || v === undefined) return null;
      if (!Array.isArray(v)) throw bad(where, "an array of maps", v);
      return v.map((item, i) => decodeAuthority(`${where}[${i}]`, item));
  }
}

const SLOW: unique symbol = Symbol("decode field the long way");

/**
 * The common, well-formed cases of {@linkcode decodeField} without building
 * the field's name; `SLOW` for anything else (which then gets the full check
 * and, when wrong, the error naming the field).
 */
function quickField(type: FieldType, v: unknown): unknown {
  switch (type) {
    case "bytes?":
      if (v === null || v === undefined) return null;
      return v instanceof Uint8Array ? v : SLOW;
    case "id?":
    case "hash?":
      if (v === null || v === undefined) return null;
      return v instanceof Uint8Array &&
          v.length === (type === "id?" ? ID_LENGTH : HASH_LENGTH)
        ? v
        : SLOW;
    case "u8":
      return typeof v === "number" && (v & 0xff) === v ? v : SLOW;
    default:
      return SLOW;
  }
}

/** Variant names in the order the daemon declares them. */
const RESPONSE_KINDS = Object.keys(RESPONSE_FIELDS) as KnownKind[];

/** Why the CBOR layer refused a body, without its own prefix. */
function cborReason(err: unknown): string {
  return err instanceof Error
    ? err.message.replace(/^(Cannot decode CBOR|CBOR decode error): /, "")
    : String(err);
}

/** The entries of a map, first occurrence of each key (as Go keeps it). */
function entriesOf(
  body: Uint8Array,
  pos: number,
  skipNil = false,
): Map<string, CborEntry> {
  const out = new Map<string, CborEntry>();
  for (const e of cborMapEntries(body, pos, skipNil)) {
    if (!out.has(e.key)) out.set(e.key, e);
  }
  return out;
}

function isNil(body: Uint8Array, e: CborEntry | undefined): boolean {
  return e === undefined || body[e.start] === 0xf6 || body[e.start] === 0xf7;
}

/** Decodes one known field from where it lies in the body. */
function decodeFieldAt(
  body: Uint8Array,
  owned: boolean,
  where: string,
  type: FieldType,
  e: CborEntry | undefined,
): unknown {
  if (isNil(body, e)) return decodeField(where, type, null);
  const { start, end } = e!;
  if (type === "bytesList?") {
    const list = decodeCborBytesList(body, start, owned);
    if (Array.isArray(list)) return list;
    if (list.index < 0) {
      throw badType(where, "an array of byte strings", cborTypeAt(body, start));
    }
    throw badType(`${where}[${list.index}]`, "a byte string", list.type);
  }
  let value: unknown;
  try {
    value = decodeCborScalarAt(body, start);
    if (value === NOT_SCALAR) {
      value = decodeCbor(body.subarray(start, end), {
        allowFloats: false,
        maxElements: FIELD_MAX_ELEMENTS,
      });
    }
  } catch (err) {
    throw new ProtocolError(
      `Cannot decode frame: field '${where}' is invalid: ${cborReason(err)}`,
      { cause: err },
    );
  }
  const fast = quickField(type, value);
  return fast !== SLOW ? fast : decodeField(where, type, value);
}

/**
 * Decodes a frame body from the daemon. Picks the variant whose value is not
 * null; validates the type of every known field; ignores unknown keys; treats
 * missing keys as Go zero values.
 *
 * The body is first checked whole against the CBOR limits (no floats, tags
 * or indefinite lengths, at most 65,536 array elements and map pairs, nesting
 * at most 32 deep). Then only the known fields of the one known variant are
 * built: unknown variants and unknown fields are skipped unread. A list of
 * byte strings (`envelopes`, `nextDestIndices`) is returned as views of one
 * buffer holding the whole list; any other field may hold at most 4,096
 * elements.
 *
 * @param body The CBOR body of one frame.
 * @returns The decoded response (`kind: "unknown"` when no known variant is set).
 * @throws {ProtocolError} When the body is not CBOR, exceeds the limits, is
 *   not a map, or a field has the wrong type or range.
 *
 * @example Usage
 * ```ts
 * import { decodeResponse } from "@katzenpost/thinclient";
 * // {"shutdown_event": {}}
 * const body = new Uint8Array([
 *   0xa1, 0x6e, ...new TextEncoder().encode("shutdown_event"), 0xa0,
 * ]);
 * console.log(decodeResponse(body)); // { kind: "shutdown_event" }
 * ```
 */
export function decodeResponse(body: Uint8Array): Response {
  return decodeFrameBody(body, false);
}

/**
 * {@linkcode decodeResponse} for a body the caller hands over for good (a
 * fresh buffer from the frame reader, never changed or reused): lists of
 * byte strings are then views of it, with no copy. Internal to the client.
 *
 * @param body The CBOR body of one frame.
 * @param owned Whether the body is handed over.
 * @returns The decoded response.
 * @throws {ProtocolError} As {@linkcode decodeResponse}.
 */
export function decodeFrameBody(body: Uint8Array, owned: boolean): Response {
  let top: Map<string, CborEntry>;
  try {
    checkCbor(body, { allowFloats: false, maxElements: FRAME_MAX_ELEMENTS });
    const type = cborTypeAt(body, 0);
    if (type !== "map") throw badType("(envelope)", "a map", type);
    // Null variants are skipped unread; an unknown frame reads all keys.
    top = entriesOf(body, 0, true);
  } catch (err) {
    if (
      err instanceof ProtocolError &&
      err.message.startsWith("Cannot decode frame")
    ) {
      throw err;
    }
    throw new ProtocolError(
      `Cannot decode frame: invalid CBOR in ${body.length}-byte body: ${
        cborReason(err)
      }`,
      { cause: err },
    );
  }
  for (const kind of RESPONSE_KINDS) {
    const entry = top.get(kind);
    if (isNil(body, entry)) continue;
    const type = cborTypeAt(body, entry!.start);
    if (type !== "map") throw badType(kind, "a map", type);
    let fields: Map<string, CborEntry>;
    try {
      fields = entriesOf(body, entry!.start);
    } catch (err) {
      throw new ProtocolError(
        `Cannot decode frame: variant '${kind}' is invalid: ${cborReason(err)}`,
        { cause: err },
      );
    }
    const out: Record<string, unknown> = { kind };
    for (const [tsKey, wireKey, type] of RESPONSE_FIELDS[kind]) {
      out[tsKey] = decodeFieldAt(
        body,
        owned,
        `${kind}.${wireKey}`,
        type,
        fields.get(wireKey),
      );
    }
    if (
      kind === "message_reply_event" && isNil(body, fields.get("reply_index"))
    ) {
      out["replyIndex"] = null;
    }
    return out as Response;
  }
  return { kind: "unknown", keys: [...entriesOf(body, 0).keys()] };
}

type KnownKind = Exclude<ResponseKind, "unknown">;
