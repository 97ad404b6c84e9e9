/**
 * The schema of the thin protocol: for every request and reply variant, each
 * field with its TypeScript name, its wire (CBOR map) key and its type. The
 * public types of lib/protocol.ts are derived from it, and so are the
 * encoder's and the decoder's tables (lib/_protocol_values.ts), so a field
 * cannot be in one and not the others.
 *
 * A field type is a base type (the keys of {@linkcode BaseTypes}), then `[]`
 * for an array of it, then `?` when `null` stands for an absent field. A
 * field without `?` that the daemon leaves out (or sends as `null`) decodes
 * as Go's zero value (`false`, `0`, `0n`, `""`, `[]`), except byte strings,
 * which are refused unless the field says `zero` (then all-zero bytes of the
 * fixed length). `omitEmpty` fields are left out of a request when zero, as
 * Go's `omitempty` does, and are optional in the request's type.
 *
 * Requests are encoded as given (their lengths are checked by the client's
 * methods before sending); replies are checked against the schema when
 * decoded.
 *
 * @module
 */

// ---------------------------------------------------------------------------
// Field types

/**
 * The TypeScript type of each base type of the schema.
 *
 * @ignore
 */
export interface BaseTypes {
  /** A byte string of any length. */
  bytes: Uint8Array;
  /** A byte string of {@linkcode ID_LENGTH} bytes. */
  id: Uint8Array;
  /** A byte string of {@linkcode HASH_LENGTH} bytes. */
  hash: Uint8Array;
  /** An unsigned integer up to 255. */
  u8: number;
  /** An unsigned integer up to 2^32 - 1. */
  u32: number;
  /** An unsigned integer up to 2^53 - 1 (Go `int` fields of geometries). */
  uint: number;
  /** An unsigned 64-bit integer, exact. */
  u64: bigint;
  /** Go's `time.Time` as int64 seconds. */
  time: number;
  /** A boolean. */
  bool: boolean;
  /** A UTF-8 text string. */
  text: string;
  /** A map of the fields of {@linkcode SphinxGeometry}. */
  sphinxGeometry: SphinxGeometry;
  /** A map of the fields of {@linkcode PigeonholeGeometry}. */
  pigeonholeGeometry: PigeonholeGeometry;
  /** A map of the fields of {@linkcode CopyDestination}. */
  copyDestination: CopyDestination;
  /** A map of the fields of {@linkcode DirectoryAuthority}. */
  directoryAuthority: DirectoryAuthority;
}

/**
 * A base type of the schema.
 *
 * @ignore
 */
export type BaseName = keyof BaseTypes;

/**
 * A field type: a base type, `[]` for an array of it, `?` when `null`
 * stands for an absent field.
 *
 * @ignore
 */
export type TypeName =
  | BaseName
  | `${BaseName}?`
  | `${BaseName}[]`
  | `${BaseName}[]?`;

/**
 * One field of a variant or of a nested map.
 *
 * @ignore
 */
export interface FieldSpec {
  /** The CBOR map key. */
  readonly wire: string;
  /** The type. */
  readonly type: TypeName;
  /** Left out of a request when zero (Go's `omitempty`); optional in TypeScript. */
  readonly omitEmpty?: true;
  /** An absent byte string decodes as zero bytes instead of being refused. */
  readonly zero?: true;
}

/**
 * The fields of a variant or of a nested map, by TypeScript name, in Go
 * declaration order (the order of the wire keys).
 *
 * @ignore
 */
export type StructSpec = { readonly [name: string]: FieldSpec };

/**
 * The fields of every variant, by wire variant name.
 *
 * @ignore
 */
export type VariantSpecs = { readonly [kind: string]: StructSpec };

/** The TypeScript type of a field type. */
type TypeOf<T> = T extends `${infer B}[]?` ? BaseOf<B>[] | null
  : T extends `${infer B}[]` ? BaseOf<B>[]
  : T extends `${infer B}?` ? BaseOf<B> | null
  : BaseOf<T>;

type BaseOf<B> = B extends BaseName ? BaseTypes[B] : never;

type Flatten<T> = { [K in keyof T]: T[K] };

/**
 * The TypeScript object type of a struct schema: one property per field,
 * optional for `omitEmpty` fields.
 *
 * @ignore
 */
export type FieldsOf<S extends StructSpec> = Flatten<
  & {
    -readonly [K in keyof S as S[K] extends { omitEmpty: true } ? never : K]:
      TypeOf<S[K]["type"]>;
  }
  & {
    -readonly [K in keyof S as S[K] extends { omitEmpty: true } ? K : never]?:
      TypeOf<S[K]["type"]>;
  }
>;

/**
 * The union of the variants of a schema, each a `kind` (the wire variant
 * name) and its fields.
 *
 * @ignore
 */
export type VariantsOf<M extends VariantSpecs> = {
  [K in keyof M & string]: Flatten<{ kind: K } & FieldsOf<M[K]>>;
}[keyof M & string];

// ---------------------------------------------------------------------------
// Nested maps

/** The base types that are maps of fields. */
type StructName =
  | "sphinxGeometry"
  | "pigeonholeGeometry"
  | "copyDestination"
  | "directoryAuthority";

/**
 * The fields of the nested maps, each bound to its interface: a field that
 * the interface lacks, or that lacks in it, does not compile.
 *
 * @ignore
 */
export const STRUCTS = {
  sphinxGeometry: {
    packetLength: { wire: "PacketLength", type: "uint" },
    nrHops: { wire: "NrHops", type: "uint" },
    headerLength: { wire: "HeaderLength", type: "uint" },
    routingInfoLength: { wire: "RoutingInfoLength", type: "uint" },
    perHopRoutingInfoLength: { wire: "PerHopRoutingInfoLength", type: "uint" },
    surbLength: { wire: "SURBLength", type: "uint" },
    sphinxPlaintextHeaderLength: {
      wire: "SphinxPlaintextHeaderLength",
      type: "uint",
    },
    payloadTagLength: { wire: "PayloadTagLength", type: "uint" },
    forwardPayloadLength: { wire: "ForwardPayloadLength", type: "uint" },
    userForwardPayloadLength: {
      wire: "UserForwardPayloadLength",
      type: "uint",
    },
    nextNodeHopLength: { wire: "NextNodeHopLength", type: "uint" },
    sprpKeyMaterialLength: { wire: "SPRPKeyMaterialLength", type: "uint" },
    nikeName: { wire: "NIKEName", type: "text" },
    kemName: { wire: "KEMName", type: "text" },
  },
  pigeonholeGeometry: {
    maxPlaintextPayloadLength: {
      wire: "MaxPlaintextPayloadLength",
      type: "uint",
    },
    courierQueryReadLength: { wire: "CourierQueryReadLength", type: "uint" },
    courierQueryWriteLength: { wire: "CourierQueryWriteLength", type: "uint" },
    courierQueryReplyReadLength: {
      wire: "CourierQueryReplyReadLength",
      type: "uint",
    },
    courierQueryReplyWriteLength: {
      wire: "CourierQueryReplyWriteLength",
      type: "uint",
    },
    nikeName: { wire: "NIKEName", type: "text" },
    signatureSchemeName: { wire: "SignatureSchemeName", type: "text" },
  },
  copyDestination: {
    payload: { wire: "payload", type: "bytes" },
    writeCap: { wire: "write_cap", type: "bytes" },
    startIndex: { wire: "start_index", type: "bytes" },
  },
  directoryAuthority: {
    identifier: { wire: "identifier", type: "text" },
    pkiSignatureScheme: { wire: "pki_signature_scheme", type: "text" },
    wireKemScheme: { wire: "wire_kem_scheme", type: "text" },
    addresses: { wire: "addresses", type: "text[]" },
    identityPublicKeyPem: { wire: "identity_public_key_pem", type: "text" },
    linkPublicKeyPem: { wire: "link_public_key_pem", type: "text" },
    identityKeyHash: { wire: "identity_key_hash", type: "hash", zero: true },
  },
} as const satisfies {
  readonly [K in StructName]: {
    readonly [F in keyof BaseTypes[K]]-?: FieldSpec;
  };
};

/** `true` when `A` and `B` are the same type, else `false`. */
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends
  (<T>() => T extends B ? 1 : 2) ? true : false;

/**
 * Compiles only when each nested map's schema gives every field of its
 * interface the interface's type.
 */
const _STRUCTS_MATCH_INTERFACES: {
  readonly [K in StructName]: Same<FieldsOf<(typeof STRUCTS)[K]>, BaseTypes[K]>;
} = {
  sphinxGeometry: true,
  pigeonholeGeometry: true,
  copyDestination: true,
  directoryAuthority: true,
};

// ---------------------------------------------------------------------------
// Requests

const QUERY_ID = { wire: "query_id", type: "bytes" } as const;

/**
 * Every request variant, in the order of the daemon's Request struct, with
 * its fields in Go declaration order.
 *
 * @ignore
 */
export const REQUESTS = {
  session_token: {
    clientInstanceToken: { wire: "client_instance_token", type: "bytes" },
  },
  thin_close: {},
  send_message: {
    id: { wire: "id", type: "bytes?" },
    withSurb: { wire: "with_surb", type: "bool" },
    surbId: { wire: "surbid", type: "bytes?" },
    destinationIdHash: { wire: "destination_id_hash", type: "bytes" },
    recipientQueueId: { wire: "recipient_queue_id", type: "bytes" },
    payload: { wire: "payload", type: "bytes" },
  },
  new_keypair: {
    queryId: QUERY_ID,
    seed: { wire: "seed", type: "bytes" },
  },
  encrypt_read: {
    queryId: QUERY_ID,
    readCap: { wire: "read_cap", type: "bytes" },
    messageBoxIndex: { wire: "message_box_index", type: "bytes" },
  },
  encrypt_write: {
    queryId: QUERY_ID,
    plaintext: { wire: "plaintext", type: "bytes" },
    writeCap: { wire: "write_cap", type: "bytes" },
    messageBoxIndex: { wire: "message_box_index", type: "bytes" },
  },
  start_resending_encrypted_message: {
    queryId: QUERY_ID,
    readCap: { wire: "read_cap", type: "bytes?" },
    writeCap: { wire: "write_cap", type: "bytes?" },
    messageBoxIndex: { wire: "message_box_index", type: "bytes?" },
    replyIndex: { wire: "reply_index", type: "u8", omitEmpty: true },
    envelopeDescriptor: { wire: "envelope_descriptor", type: "bytes" },
    messageCiphertext: { wire: "message_ciphertext", type: "bytes" },
    envelopeHash: { wire: "envelope_hash", type: "bytes" },
    noRetryOnBoxIdNotFound: {
      wire: "no_retry_on_box_id_not_found",
      type: "bool",
      omitEmpty: true,
    },
    noIdempotentBoxAlreadyExists: {
      wire: "no_idempotent_box_already_exists",
      type: "bool",
      omitEmpty: true,
    },
  },
  cancel_resending_encrypted_message: {
    queryId: QUERY_ID,
    envelopeHash: { wire: "envelope_hash", type: "bytes" },
  },
  start_resending_copy_command: {
    queryId: QUERY_ID,
    writeCap: { wire: "write_cap", type: "bytes" },
    courierIdentityHash: {
      wire: "courier_identity_hash",
      type: "bytes",
      omitEmpty: true,
    },
    courierQueueId: {
      wire: "courier_queue_id",
      type: "bytes",
      omitEmpty: true,
    },
  },
  cancel_resending_copy_command: {
    queryId: QUERY_ID,
    writeCapHash: { wire: "write_cap_hash", type: "bytes" },
  },
  next_message_box_index: {
    queryId: QUERY_ID,
    messageBoxIndex: { wire: "message_box_index", type: "bytes" },
  },
  get_message_box_index_counter: {
    queryId: QUERY_ID,
    messageBoxIndex: { wire: "message_box_index", type: "bytes" },
  },
  get_pki_document: {
    queryId: QUERY_ID,
    epoch: { wire: "epoch", type: "u64" },
  },
  get_directory_authorities: { queryId: QUERY_ID },
  create_courier_envelopes_from_payload: {
    queryId: QUERY_ID,
    payload: { wire: "payload", type: "bytes" },
    destWriteCap: { wire: "dest_write_cap", type: "bytes" },
    destStartIndex: { wire: "dest_start_index", type: "bytes" },
    isStart: { wire: "is_start", type: "bool" },
    isLast: { wire: "is_last", type: "bool" },
  },
  create_courier_envelopes_from_multi_payload: {
    queryId: QUERY_ID,
    destinations: { wire: "destinations", type: "copyDestination[]" },
    isStart: { wire: "is_start", type: "bool" },
    isLast: { wire: "is_last", type: "bool" },
    buffer: { wire: "buffer", type: "bytes?" },
  },
  create_courier_envelopes_from_tombstone_range: {
    queryId: QUERY_ID,
    destWriteCap: { wire: "dest_write_cap", type: "bytes" },
    destStartIndex: { wire: "dest_start_index", type: "bytes" },
    maxCount: { wire: "max_count", type: "u32" },
    isStart: { wire: "is_start", type: "bool" },
    isLast: { wire: "is_last", type: "bool" },
    buffer: { wire: "buffer", type: "bytes?" },
  },
  voucher_mint: {
    queryId: QUERY_ID,
    messageWriteCap: { wire: "message_write_cap", type: "bytes" },
    displayName: { wire: "display_name", type: "text" },
  },
  voucher_induct: {
    queryId: QUERY_ID,
    voucher: { wire: "voucher", type: "bytes" },
    voucherPayload: { wire: "voucher_payload", type: "bytes" },
    whoReply: { wire: "who_reply", type: "bytes" },
  },
  voucher_open: {
    queryId: QUERY_ID,
    voucherSecretKey: { wire: "voucher_secret_key", type: "bytes" },
    sealedReply: { wire: "sealed_reply", type: "bytes" },
    messageWriteCap: { wire: "message_write_cap", type: "bytes" },
  },
  voucher_derive_stream: {
    queryId: QUERY_ID,
    voucher: { wire: "voucher", type: "bytes" },
  },
} as const satisfies VariantSpecs;

// ---------------------------------------------------------------------------
// Replies and events

const REPLY_QUERY_ID = { wire: "query_id", type: "id?" } as const;
const ERROR_CODE = { wire: "error_code", type: "u8" } as const;
const ENCRYPT_REPLY = {
  queryId: REPLY_QUERY_ID,
  messageCiphertext: { wire: "message_ciphertext", type: "bytes?" },
  envelopeDescriptor: { wire: "envelope_descriptor", type: "bytes?" },
  envelopeHash: { wire: "envelope_hash", type: "hash?" },
  nextMessageBoxIndex: { wire: "next_message_box_index", type: "bytes?" },
  errorCode: ERROR_CODE,
} as const;
const CANCEL_REPLY = {
  queryId: REPLY_QUERY_ID,
  errorCode: ERROR_CODE,
} as const;

/**
 * Every variant the daemon sends, in the order of its Response struct (the
 * decoder takes the first one that is not null), with its fields in Go
 * declaration order.
 *
 * @ignore
 */
export const RESPONSES = {
  session_token_reply: {
    appId: { wire: "app_id", type: "id" },
    resumed: { wire: "resumed", type: "bool" },
  },
  shutdown_event: {},
  connection_status_event: {
    isConnected: { wire: "is_connected", type: "bool" },
    instanceToken: { wire: "instance_token", type: "id" },
    sphinxGeometry: { wire: "sphinx_geometry", type: "sphinxGeometry?" },
    pigeonholeGeometry: {
      wire: "pigeonhole_geometry",
      type: "pigeonholeGeometry?",
    },
  },
  new_pki_document_event: { payload: { wire: "payload", type: "bytes?" } },
  message_sent_event: {
    messageId: { wire: "message_id", type: "id?" },
    surbId: { wire: "surbid", type: "id?" },
    sentAt: { wire: "sent_at", type: "time?" },
    replyEta: { wire: "reply_eta", type: "u64" },
    err: { wire: "err", type: "text?" },
  },
  message_reply_event: {
    messageId: { wire: "message_id", type: "id?" },
    surbId: { wire: "surbid", type: "id?" },
    payload: { wire: "payload", type: "bytes?" },
    replyIndex: { wire: "reply_index", type: "u8?" },
    errorCode: ERROR_CODE,
  },
  message_id_garbage_collected: {
    messageId: { wire: "message_id", type: "id?" },
  },
  new_keypair_reply: {
    queryId: REPLY_QUERY_ID,
    writeCap: { wire: "write_cap", type: "bytes?" },
    readCap: { wire: "read_cap", type: "bytes?" },
    firstMessageIndex: { wire: "first_message_index", type: "bytes?" },
    errorCode: ERROR_CODE,
  },
  encrypt_read_reply: ENCRYPT_REPLY,
  encrypt_write_reply: ENCRYPT_REPLY,
  start_resending_encrypted_message_reply: {
    queryId: REPLY_QUERY_ID,
    plaintext: { wire: "plaintext", type: "bytes?" },
    errorCode: ERROR_CODE,
    courierIdentityHash: { wire: "courier_identity_hash", type: "hash?" },
    courierQueueId: { wire: "courier_queue_id", type: "bytes?" },
  },
  cancel_resending_encrypted_message_reply: CANCEL_REPLY,
  start_resending_copy_command_reply: {
    queryId: REPLY_QUERY_ID,
    errorCode: ERROR_CODE,
    replicaErrorCode: { wire: "replica_error_code", type: "u8" },
    failedEnvelopeIndex: { wire: "failed_envelope_index", type: "u64" },
  },
  cancel_resending_copy_command_reply: CANCEL_REPLY,
  next_message_box_index_reply: {
    queryId: REPLY_QUERY_ID,
    nextMessageBoxIndex: { wire: "next_message_box_index", type: "bytes?" },
    errorCode: ERROR_CODE,
  },
  get_message_box_index_counter_reply: {
    queryId: REPLY_QUERY_ID,
    counter: { wire: "counter", type: "u64" },
    errorCode: ERROR_CODE,
  },
  get_pki_document_reply: {
    queryId: REPLY_QUERY_ID,
    payload: { wire: "payload", type: "bytes?" },
    epoch: { wire: "epoch", type: "u64" },
    errorCode: ERROR_CODE,
  },
  get_directory_authorities_reply: {
    queryId: REPLY_QUERY_ID,
    authorities: { wire: "authorities", type: "directoryAuthority[]?" },
    errorCode: ERROR_CODE,
  },
  create_courier_envelopes_from_payload_reply: {
    queryId: REPLY_QUERY_ID,
    envelopes: { wire: "envelopes", type: "bytes[]?" },
    nextDestIndex: { wire: "next_dest_index", type: "bytes?" },
    errorCode: ERROR_CODE,
  },
  create_courier_envelopes_from_multi_payload_reply: {
    queryId: REPLY_QUERY_ID,
    envelopes: { wire: "envelopes", type: "bytes[]?" },
    buffer: { wire: "buffer", type: "bytes?" },
    nextDestIndices: { wire: "next_dest_indices", type: "bytes[]?" },
    errorCode: ERROR_CODE,
  },
  create_courier_envelopes_from_tombstone_range_reply: {
    queryId: REPLY_QUERY_ID,
    envelopes: { wire: "envelopes", type: "bytes[]?" },
    buffer: { wire: "buffer", type: "bytes?" },
    nextDestIndex: { wire: "next_dest_index", type: "bytes?" },
    errorCode: ERROR_CODE,
  },
  voucher_mint_reply: {
    queryId: REPLY_QUERY_ID,
    voucher: { wire: "voucher", type: "bytes?" },
    voucherPayload: { wire: "voucher_payload", type: "bytes?" },
    voucherWriteCap: { wire: "voucher_write_cap", type: "bytes?" },
    voucherReadCap: { wire: "voucher_read_cap", type: "bytes?" },
    voucherSecretKey: { wire: "voucher_secret_key", type: "bytes?" },
    voucherPublicKey: { wire: "voucher_public_key", type: "bytes?" },
    errorCode: ERROR_CODE,
  },
  voucher_induct_reply: {
    queryId: REPLY_QUERY_ID,
    displayName: { wire: "display_name", type: "text" },
    mutatedMessageReadCap: { wire: "mutated_message_read_cap", type: "bytes?" },
    sealedReply: { wire: "sealed_reply", type: "bytes?" },
    voucherWriteCap: { wire: "voucher_write_cap", type: "bytes?" },
    voucherReadCap: { wire: "voucher_read_cap", type: "bytes?" },
    salt: { wire: "salt", type: "bytes?" },
    errorCode: ERROR_CODE,
  },
  voucher_open_reply: {
    queryId: REPLY_QUERY_ID,
    whoReply: { wire: "who_reply", type: "bytes?" },
    salt: { wire: "salt", type: "bytes?" },
    mutatedMessageWriteCap: {
      wire: "mutated_message_write_cap",
      type: "bytes?",
    },
    errorCode: ERROR_CODE,
  },
  voucher_derive_stream_reply: {
    queryId: REPLY_QUERY_ID,
    voucherWriteCap: { wire: "voucher_write_cap", type: "bytes?" },
    voucherReadCap: { wire: "voucher_read_cap", type: "bytes?" },
    errorCode: ERROR_CODE,
  },
} as const satisfies VariantSpecs;

// ---------------------------------------------------------------------------
// Lengths and nested maps

/** Byte length of query ids, SURB ids, message ids and instance tokens. */
export const ID_LENGTH = 16;
/** Byte length of envelope hashes and identity hashes. */
export const HASH_LENGTH = 32;

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

/**
 * One destination of a multi-payload copy-stream build.
 *
 * @example Usage
 * ```ts ignore
 * const d: CopyDestination = { payload, writeCap: writeCap.bytes, startIndex: index.bytes };
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
