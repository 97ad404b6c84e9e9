/**
 * Every request, reply and event of the kpclientd v0.0.99 thin protocol as
 * TypeScript types, with the encoder and the validating decoder. This file
 * and the schema behind it (lib/_protocol_schema.ts, compiled into field
 * tables by lib/_protocol_values.ts) are the only ones that know the raw
 * CBOR keys; the types here are derived from the schema.
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
import type { REQUESTS, RESPONSES, VariantsOf } from "./_protocol_schema.ts";
import {
  badType,
  decodeValue,
  type Field,
  quickValue,
  REQUEST_FIELDS,
  RESPONSE_FIELDS,
  SLOW,
  wireEntries,
} from "./_protocol_values.ts";

export {
  type CopyDestination,
  type DirectoryAuthority,
  HASH_LENGTH,
  ID_LENGTH,
  type PigeonholeGeometry,
  type SphinxGeometry,
} from "./_protocol_schema.ts";

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

// ---------------------------------------------------------------------------
// Requests

/**
 * Every request a client sends, as a discriminated union on `kind` (the wire
 * variant name). Fields are camelCase versions of the wire keys; each
 * variant's fields, wire keys and types are those of the protocol schema
 * (lib/_protocol_schema.ts), as docs/protocol.md#requests-and-replies lists
 * them. A field the daemon treats as optional (`omitempty`) is optional here
 * and left out when zero.
 *
 * The variants and their fields:
 *
 * - `session_token`: `clientInstanceToken: Uint8Array`
 * - `thin_close`: no fields
 * - `send_message`: `id: Uint8Array | null`, `withSurb: boolean`,
 *   `surbId: Uint8Array | null`, `destinationIdHash: Uint8Array`,
 *   `recipientQueueId: Uint8Array`, `payload: Uint8Array`
 * - `new_keypair`: `queryId: Uint8Array`, `seed: Uint8Array`
 * - `encrypt_read`: `queryId: Uint8Array`, `readCap: Uint8Array`,
 *   `messageBoxIndex: Uint8Array`
 * - `encrypt_write`: `queryId: Uint8Array`, `plaintext: Uint8Array`,
 *   `writeCap: Uint8Array`, `messageBoxIndex: Uint8Array`
 * - `start_resending_encrypted_message`: `queryId: Uint8Array`,
 *   `readCap: Uint8Array | null`, `writeCap: Uint8Array | null`,
 *   `messageBoxIndex: Uint8Array | null`, `replyIndex?: number`,
 *   `envelopeDescriptor: Uint8Array`, `messageCiphertext: Uint8Array`,
 *   `envelopeHash: Uint8Array`, `noRetryOnBoxIdNotFound?: boolean`,
 *   `noIdempotentBoxAlreadyExists?: boolean`
 * - `cancel_resending_encrypted_message`: `queryId: Uint8Array`,
 *   `envelopeHash: Uint8Array`
 * - `start_resending_copy_command`: `queryId: Uint8Array`,
 *   `writeCap: Uint8Array`, `courierIdentityHash?: Uint8Array`,
 *   `courierQueueId?: Uint8Array`
 * - `cancel_resending_copy_command`: `queryId: Uint8Array`,
 *   `writeCapHash: Uint8Array`
 * - `next_message_box_index`: `queryId: Uint8Array`,
 *   `messageBoxIndex: Uint8Array`
 * - `get_message_box_index_counter`: `queryId: Uint8Array`,
 *   `messageBoxIndex: Uint8Array`
 * - `get_pki_document`: `queryId: Uint8Array`, `epoch: bigint`
 * - `get_directory_authorities`: `queryId: Uint8Array`
 * - `create_courier_envelopes_from_payload`: `queryId: Uint8Array`,
 *   `payload: Uint8Array`, `destWriteCap: Uint8Array`,
 *   `destStartIndex: Uint8Array`, `isStart: boolean`, `isLast: boolean`
 * - `create_courier_envelopes_from_multi_payload`: `queryId: Uint8Array`,
 *   `destinations: CopyDestination[]`, `isStart: boolean`, `isLast: boolean`,
 *   `buffer: Uint8Array | null`
 * - `create_courier_envelopes_from_tombstone_range`: `queryId: Uint8Array`,
 *   `destWriteCap: Uint8Array`, `destStartIndex: Uint8Array`,
 *   `maxCount: number`, `isStart: boolean`, `isLast: boolean`,
 *   `buffer: Uint8Array | null`
 * - `voucher_mint`: `queryId: Uint8Array`, `messageWriteCap: Uint8Array`,
 *   `displayName: string`
 * - `voucher_induct`: `queryId: Uint8Array`, `voucher: Uint8Array`,
 *   `voucherPayload: Uint8Array`, `whoReply: Uint8Array`
 * - `voucher_open`: `queryId: Uint8Array`, `voucherSecretKey: Uint8Array`,
 *   `sealedReply: Uint8Array`, `messageWriteCap: Uint8Array`
 * - `voucher_derive_stream`: `queryId: Uint8Array`, `voucher: Uint8Array`
 *
 * @example Usage
 * ```ts
 * import { encodeRequest, type Request } from "@katzenpost/thinclient";
 * const req: Request = { kind: "thin_close" };
 * console.log(encodeRequest(req)); // Uint8Array(13) [ 161, 106, ... ]
 * ```
 */
export type Request = VariantsOf<typeof REQUESTS>;

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
  return encodeCborEnvelope(
    request.kind,
    wireEntries(REQUEST_FIELDS[request.kind], request),
    headroom,
  );
}

// ---------------------------------------------------------------------------
// Responses

/**
 * Every frame the daemon sends, decoded, as a discriminated union on `kind`
 * (the wire variant name). Fields are camelCase versions of the wire keys;
 * each variant's fields, wire keys and types are those of the protocol
 * schema (lib/_protocol_schema.ts), as
 * docs/protocol.md#requests-and-replies and
 * docs/protocol.md#events-pushed-by-the-daemon list them. `unknown` stands
 * for a frame with no known non-null variant; it is ignored by the client.
 *
 * The variants and their fields (a field the daemon leaves out is `null`
 * where the type allows it and Go's zero value elsewhere, except that a
 * reply without its 16-byte `appId` or `instanceToken` is refused):
 *
 * - `session_token_reply`: `appId: Uint8Array`, `resumed: boolean`
 * - `shutdown_event`: no fields
 * - `connection_status_event`: `isConnected: boolean`,
 *   `instanceToken: Uint8Array`, `sphinxGeometry: SphinxGeometry | null`,
 *   `pigeonholeGeometry: PigeonholeGeometry | null`
 * - `new_pki_document_event`: `payload: Uint8Array | null`
 * - `message_sent_event`: `messageId: Uint8Array | null`,
 *   `surbId: Uint8Array | null`, `sentAt: number | null`, `replyEta: bigint`,
 *   `err: string | null`
 * - `message_reply_event`: `messageId: Uint8Array | null`,
 *   `surbId: Uint8Array | null`, `payload: Uint8Array | null`,
 *   `replyIndex: number | null`, `errorCode: number`
 * - `message_id_garbage_collected`: `messageId: Uint8Array | null`
 * - `new_keypair_reply`: `queryId: Uint8Array | null`,
 *   `writeCap: Uint8Array | null`, `readCap: Uint8Array | null`,
 *   `firstMessageIndex: Uint8Array | null`, `errorCode: number`
 * - `encrypt_read_reply`: `queryId: Uint8Array | null`,
 *   `messageCiphertext: Uint8Array | null`,
 *   `envelopeDescriptor: Uint8Array | null`, `envelopeHash: Uint8Array | null`,
 *   `nextMessageBoxIndex: Uint8Array | null`, `errorCode: number`
 * - `encrypt_write_reply`: `queryId: Uint8Array | null`,
 *   `messageCiphertext: Uint8Array | null`,
 *   `envelopeDescriptor: Uint8Array | null`, `envelopeHash: Uint8Array | null`,
 *   `nextMessageBoxIndex: Uint8Array | null`, `errorCode: number`
 * - `start_resending_encrypted_message_reply`: `queryId: Uint8Array | null`,
 *   `plaintext: Uint8Array | null`, `errorCode: number`,
 *   `courierIdentityHash: Uint8Array | null`,
 *   `courierQueueId: Uint8Array | null`
 * - `cancel_resending_encrypted_message_reply`: `queryId: Uint8Array | null`,
 *   `errorCode: number`
 * - `start_resending_copy_command_reply`: `queryId: Uint8Array | null`,
 *   `errorCode: number`, `replicaErrorCode: number`,
 *   `failedEnvelopeIndex: bigint`
 * - `cancel_resending_copy_command_reply`: `queryId: Uint8Array | null`,
 *   `errorCode: number`
 * - `next_message_box_index_reply`: `queryId: Uint8Array | null`,
 *   `nextMessageBoxIndex: Uint8Array | null`, `errorCode: number`
 * - `get_message_box_index_counter_reply`: `queryId: Uint8Array | null`,
 *   `counter: bigint`, `errorCode: number`
 * - `get_pki_document_reply`: `queryId: Uint8Array | null`,
 *   `payload: Uint8Array | null`, `epoch: bigint`, `errorCode: number`
 * - `get_directory_authorities_reply`: `queryId: Uint8Array | null`,
 *   `authorities: DirectoryAuthority[] | null`, `errorCode: number`
 * - `create_courier_envelopes_from_payload_reply`:
 *   `queryId: Uint8Array | null`, `envelopes: Uint8Array[] | null`,
 *   `nextDestIndex: Uint8Array | null`, `errorCode: number`
 * - `create_courier_envelopes_from_multi_payload_reply`:
 *   `queryId: Uint8Array | null`, `envelopes: Uint8Array[] | null`,
 *   `buffer: Uint8Array | null`, `nextDestIndices: Uint8Array[] | null`,
 *   `errorCode: number`
 * - `create_courier_envelopes_from_tombstone_range_reply`:
 *   `queryId: Uint8Array | null`, `envelopes: Uint8Array[] | null`,
 *   `buffer: Uint8Array | null`, `nextDestIndex: Uint8Array | null`,
 *   `errorCode: number`
 * - `voucher_mint_reply`: `queryId: Uint8Array | null`,
 *   `voucher: Uint8Array | null`, `voucherPayload: Uint8Array | null`,
 *   `voucherWriteCap: Uint8Array | null`, `voucherReadCap: Uint8Array | null`,
 *   `voucherSecretKey: Uint8Array | null`,
 *   `voucherPublicKey: Uint8Array | null`, `errorCode: number`
 * - `voucher_induct_reply`: `queryId: Uint8Array | null`,
 *   `displayName: string`, `mutatedMessageReadCap: Uint8Array | null`,
 *   `sealedReply: Uint8Array | null`, `voucherWriteCap: Uint8Array | null`,
 *   `voucherReadCap: Uint8Array | null`, `salt: Uint8Array | null`,
 *   `errorCode: number`
 * - `voucher_open_reply`: `queryId: Uint8Array | null`,
 *   `whoReply: Uint8Array | null`, `salt: Uint8Array | null`,
 *   `mutatedMessageWriteCap: Uint8Array | null`, `errorCode: number`
 * - `voucher_derive_stream_reply`: `queryId: Uint8Array | null`,
 *   `voucherWriteCap: Uint8Array | null`, `voucherReadCap: Uint8Array | null`,
 *   `errorCode: number`
 *
 * @example Usage
 * ```ts
 * import { decodeResponse, encodeRequest } from "@katzenpost/thinclient";
 * // An empty map has no variant.
 * console.log(decodeResponse(new Uint8Array([0xa0])).kind); // "unknown"
 * ```
 */
export type Response =
  | VariantsOf<typeof RESPONSES>
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

/** Variant names in the order the daemon declares them. */
const RESPONSE_KINDS = Object.keys(RESPONSE_FIELDS) as KnownKind[];

type KnownKind = keyof typeof RESPONSE_FIELDS;

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
  f: Field,
  e: CborEntry | undefined,
): unknown {
  const where = f.where;
  if (isNil(body, e)) return decodeValue(where, f, null);
  const { start, end } = e!;
  if (f.array && f.base.kind === "bytes" && f.base.length === undefined) {
    // Views of one buffer, without building an object per element.
    const list = decodeCborBytesList(body, start, owned);
    if (Array.isArray(list)) return list;
    if (list.index < 0) {
      throw badType(where, f.base.array, cborTypeAt(body, start));
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
  const fast = quickValue(f, value);
  return fast !== SLOW ? fast : decodeValue(where, f, value);
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
    const known = RESPONSE_FIELDS[kind];
    // Only the schema's fields are built, under the schema's names.
    for (let i = 0; i < known.length; i++) {
      const f = known[i]!;
      out[f.name] = decodeFieldAt(body, owned, f, fields.get(f.wire));
    }
    return out as Response;
  }
  return { kind: "unknown", keys: [...entriesOf(body, 0).keys()] };
}
