/**
 * The fake daemon's local requests (answered at once, on the connection's
 * reader): one handler per request kind, in a table, and the scripting that
 * may replace a handler's answer.
 *
 * @module
 */
import { bytesEqual, concatBytes } from "../lib/_bytes.ts";
import { cancelOp } from "./_arq.ts";
import { blake2b256 } from "./_blake2b.ts";
import {
  cutElements,
  decodeBuffer,
  decodeVoucherPayload,
  encodeBuffer,
  encodeDestinationEnvelope,
  encodeQuery,
  encodeVoucherPayload,
  fakeIndexCounter,
  fakeKeypair,
  fakeNextIndex,
  mutateReadCap,
  mutateWriteCap,
  openSealedReply,
  READ_CAP_LENGTH,
  sealReply,
  serializeEnvelopes,
  streamOfReadCap,
  streamOfWriteCap,
  voucherPublicKey,
  voucherStream,
  WRITE_CAP_LENGTH,
} from "./_pigeonhole.ts";
import type { Resolved } from "./_scripting.ts";
import type { SessionHub } from "./_sessions.ts";
import type { ConnState, DaemonState } from "./_state.ts";
import type { ReceivedRequest } from "./_types.ts";
import {
  bytesOrNull,
  type DecodedRequest,
  encodeOrdered,
  type RequestKind,
  responseBody,
} from "./_wire.ts";

const TEN_MIB = 10 * 1024 * 1024;
const MAX_TOMBSTONES = 65536;

/** The request kinds answered locally. */
type LocalKind = Exclude<
  RequestKind,
  | "session_token"
  | "thin_close"
  | "send_message"
  | "start_resending_encrypted_message"
  | "start_resending_copy_command"
>;

/** What a local handler works with. */
interface LocalContext {
  readonly hub: SessionHub;
  readonly state: DaemonState;
  readonly conn: ConnState;
  /** The request's fields, normalised. */
  readonly f: Record<string, unknown>;
}

/** A local handler: the reply's fields besides `query_id`. */
type LocalHandler = (ctx: LocalContext) => Record<string, unknown>;

type Fields = Record<string, unknown>;

const err = (code: number): Fields => ({ "error_code": code });

/**
 * Answers a local request: a script's reply or error if one is in force,
 * otherwise the handler of its kind.
 */
export async function handleLocal(
  hub: SessionHub,
  conn: ConnState,
  req: DecodedRequest,
  rec: ReceivedRequest,
): Promise<void> {
  const kind = req.kind;
  const variant = `${kind}_reply`;
  const f = req.fields;
  const queryId = f["query_id"] ?? null;
  let action: Resolved;
  try {
    action = await hub.state.scripts.resolve(kind, rec, conn.abort.signal);
  } catch {
    return;
  }
  if (conn.closed || action.type === "none") return;
  const reply = (values: Fields) =>
    hub.send(
      conn,
      variant,
      responseBody(variant, { "query_id": queryId, ...values }),
    );
  if (action.type === "reply") return reply({ ...action.body });
  if (action.type === "error") {
    return reply({ "error_code": action.code, ...action.fields });
  }
  if (!Object.hasOwn(LOCAL_OPS, kind)) return;
  reply(LOCAL_OPS[kind as LocalKind]({ hub, state: hub.state, conn, f }));
}

function newKeypair({ f }: LocalContext): Fields {
  const seed = bytesOrNull(f["seed"]);
  if (seed === null || seed.length !== 32) return err(3);
  const pair = fakeKeypair(seed);
  return {
    "write_cap": pair.writeCap,
    "read_cap": pair.readCap,
    "first_message_index": pair.firstMessageIndex,
  };
}

function encrypt(isWrite: boolean): LocalHandler {
  return ({ state, f }) => {
    const cap = bytesOrNull(f[isWrite ? "write_cap" : "read_cap"]);
    const index = bytesOrNull(f["message_box_index"]);
    const plaintext = bytesOrNull(f["plaintext"]);
    if (cap === null || index === null) return err(3);
    const max = state.pigeonhole.MaxPlaintextPayloadLength;
    if (isWrite && (plaintext === null || plaintext.length > max)) {
      return err(3);
    }
    if (state.doc === null) return err(4);
    const next = fakeNextIndex(index);
    if (next === null) return err(4);
    const ciphertext = encodeQuery(
      {
        op: isWrite ? "write" : "read",
        stream: isWrite ? streamOfWriteCap(cap) : streamOfReadCap(cap),
        index,
        plaintext: isWrite ? plaintext : null,
      },
      state.rng.bytes(16),
      state.pigeonhole.CourierQueryWriteLength,
    );
    return {
      "message_ciphertext": ciphertext,
      "envelope_descriptor": encodeOrdered({
        Epoch: Math.floor(state.doc.epoch / 504),
        ReplicaNums: [0, 1],
        EnvelopeKey: state.rng.bytes(32),
      }),
      "envelope_hash": blake2b256(ciphertext),
      "next_message_box_index": next,
    };
  };
}

function cancel(kind: "encrypted" | "copy"): LocalHandler {
  return ({ hub, conn, f }) => {
    const hash = bytesOrNull(
      f[kind === "copy" ? "write_cap_hash" : "envelope_hash"],
    );
    if (f["query_id"] === null || hash === null) return err(3);
    cancelOp(hub, conn, kind, hash);
    return {};
  };
}

function nextIndex({ f }: LocalContext): Fields {
  const index = bytesOrNull(f["message_box_index"]);
  if (index === null) return err(3);
  const next = fakeNextIndex(index);
  return next === null ? err(4) : { "next_message_box_index": next };
}

function indexCounter({ f }: LocalContext): Fields {
  const index = bytesOrNull(f["message_box_index"]);
  if (index === null) return err(3);
  return { "counter": fakeIndexCounter(index) };
}

function getPkiDocument({ state, f }: LocalContext): Fields {
  const epoch = f["epoch"] as bigint;
  const doc = epoch === 0n ? state.doc : state.docs.get(Number(epoch)) ?? null;
  if (doc === null) {
    return {
      "epoch": epoch === 0n ? (state.doc?.epoch ?? 0) : epoch,
      "error_code": 10,
    };
  }
  return { "payload": doc.certificate, "epoch": doc.epoch };
}

function getDirectoryAuthorities({ state }: LocalContext): Fields {
  const list = state.authorities;
  if (list === null || list.length === 0) return err(10);
  return {
    "authorities": list.map((a) => ({
      "identifier": a.identifier,
      "pki_signature_scheme": a["pki_signature_scheme"],
      "wire_kem_scheme": a["wire_kem_scheme"],
      "addresses": [...a.addresses],
      "identity_public_key_pem": a["identity_public_key_pem"],
      "link_public_key_pem": a["link_public_key_pem"],
      "identity_key_hash": a["identity_key_hash"],
    })),
  };
}

/** The envelopes writing `payload` into a stream from `start` on. */
function destinationEnvelopes(
  state: DaemonState,
  cap: Uint8Array,
  start: Uint8Array,
  payload: Uint8Array,
): { envelopes: Uint8Array[]; next: Uint8Array } | null {
  const chunk = Math.max(1, state.pigeonhole.MaxPlaintextPayloadLength - 4);
  const stream = streamOfWriteCap(cap);
  const envelopes: Uint8Array[] = [];
  let i = 0;
  for (let pos = 0; pos < payload.length; pos += chunk, i++) {
    const index = fakeNextIndex(start, i);
    if (index === null) return null;
    envelopes.push(
      encodeDestinationEnvelope(
        stream,
        index,
        payload.subarray(pos, pos + chunk),
        state.pigeonhole.CourierQueryWriteLength - 1,
      ),
    );
  }
  const next = fakeNextIndex(start, i);
  return next === null ? null : { envelopes, next };
}

/** The reply of a buffered builder: elements cut so far and the rest. */
function builderReply(
  { state, f }: LocalContext,
  buffered: { pending: Uint8Array; startPending: boolean },
  envelopes: Uint8Array[],
  extra: Fields,
): Fields {
  const isLast = f["is_last"] === true;
  const { elements, rest } = cutElements(
    concatBytes([buffered.pending, serializeEnvelopes(envelopes)]),
    buffered.startPending || f["is_start"] === true,
    false,
    isLast,
    state.pigeonhole.MaxPlaintextPayloadLength,
  );
  return {
    "envelopes": elements,
    "buffer": isLast ? null : encodeBuffer(rest),
    ...extra,
  };
}

function fromPayload({ state, f }: LocalContext): Fields {
  const cap = bytesOrNull(f["dest_write_cap"]);
  const start = bytesOrNull(f["dest_start_index"]);
  const payload = bytesOrNull(f["payload"]) ?? new Uint8Array();
  if (cap === null || start === null || payload.length > TEN_MIB) {
    return err(3);
  }
  if (state.doc === null) return err(4);
  const built = destinationEnvelopes(state, cap, start, payload);
  if (built === null) return err(4);
  const { elements } = cutElements(
    serializeEnvelopes(built.envelopes),
    f["is_start"] === true,
    true,
    f["is_last"] === true,
    state.pigeonhole.MaxPlaintextPayloadLength,
  );
  return { "envelopes": elements, "next_dest_index": built.next };
}

function fromMultiPayload(ctx: LocalContext): Fields {
  const { state, f } = ctx;
  const dests = f["destinations"] as Fields[] | null;
  if (dests === null || dests.length === 0) return err(3);
  for (const d of dests) {
    const payload = bytesOrNull(d["payload"]);
    if (
      d["write_cap"] === null || d["start_index"] === null ||
      (payload !== null && payload.length > TEN_MIB)
    ) return err(3);
  }
  const buffered = decodeBuffer(bytesOrNull(f["buffer"]));
  if (buffered === null) return err(3);
  if (state.doc === null) return err(4);
  const envelopes: Uint8Array[] = [];
  const nexts: Uint8Array[] = [];
  for (const d of dests) {
    const built = destinationEnvelopes(
      state,
      d["write_cap"] as Uint8Array,
      d["start_index"] as Uint8Array,
      bytesOrNull(d["payload"]) ?? new Uint8Array(),
    );
    if (built === null) return err(4);
    envelopes.push(...built.envelopes);
    nexts.push(built.next);
  }
  return builderReply(ctx, buffered, envelopes, { "next_dest_indices": nexts });
}

function fromTombstoneRange(ctx: LocalContext): Fields {
  const { state, f } = ctx;
  const cap = bytesOrNull(f["dest_write_cap"]);
  const start = bytesOrNull(f["dest_start_index"]);
  const count = f["max_count"] as number;
  if (cap === null || start === null) return err(3);
  if (count === 0) return { "next_dest_index": start };
  if (count > MAX_TOMBSTONES) return err(3);
  const buffered = decodeBuffer(bytesOrNull(f["buffer"]));
  if (buffered === null) return err(3);
  if (state.doc === null) return err(4);
  const end = fakeNextIndex(start, count);
  if (end === null) return err(4);
  const envelopes: Uint8Array[] = [];
  const stream = streamOfWriteCap(cap);
  for (let i = 0; i < count; i++) {
    envelopes.push(
      encodeDestinationEnvelope(
        stream,
        fakeNextIndex(start, i) as Uint8Array,
        new Uint8Array(),
        state.pigeonhole.CourierQueryWriteLength - 1,
      ),
    );
  }
  return builderReply(ctx, buffered, envelopes, { "next_dest_index": end });
}

function voucherMint({ state, f }: LocalContext): Fields {
  const cap = bytesOrNull(f["message_write_cap"]);
  if (cap === null || cap.length !== WRITE_CAP_LENGTH) return err(3);
  const secret = state.rng.bytes(32);
  const publicKey = voucherPublicKey(secret);
  const payload = encodeVoucherPayload(
    f["display_name"] as string,
    cap.subarray(32),
    publicKey,
  );
  const voucher = blake2b256(payload);
  return {
    "voucher": voucher,
    "voucher_payload": payload,
    ...voucherCaps(voucher),
    "voucher_secret_key": secret,
    "voucher_public_key": publicKey,
  };
}

/** The caps of a voucher's stream. */
function voucherCaps(voucher: Uint8Array): Fields {
  const stream = voucherStream(voucher);
  return {
    "voucher_write_cap": stream.writeCap,
    "voucher_read_cap": stream.readCap,
  };
}

function voucherDeriveStream({ f }: LocalContext): Fields {
  const voucher = bytesOrNull(f["voucher"]);
  if (voucher === null || voucher.length !== 32) return err(3);
  return voucherCaps(voucher);
}

function voucherInduct({ state, f }: LocalContext): Fields {
  const voucher = bytesOrNull(f["voucher"]);
  const payload = bytesOrNull(f["voucher_payload"]);
  const whoReply = bytesOrNull(f["who_reply"]) ?? new Uint8Array();
  if (voucher === null || voucher.length !== 32 || payload === null) {
    return err(3);
  }
  if (!bytesEqual(blake2b256(payload), voucher)) return err(28);
  const parsed = decodeVoucherPayload(payload);
  if (!parsed.ok) return err(parsed.code);
  if (parsed.messageReadCap.length !== READ_CAP_LENGTH) return err(3);
  const salt = state.rng.bytes(32);
  return {
    "display_name": parsed.displayName,
    "mutated_message_read_cap": mutateReadCap(parsed.messageReadCap, salt),
    "sealed_reply": sealReply(parsed.publicKey, whoReply, salt),
    ...voucherCaps(voucher),
    "salt": salt,
  };
}

function voucherOpen({ f }: LocalContext): Fields {
  const secret = bytesOrNull(f["voucher_secret_key"]);
  const sealed = bytesOrNull(f["sealed_reply"]);
  const cap = bytesOrNull(f["message_write_cap"]);
  if (
    secret === null || sealed === null || cap === null ||
    cap.length !== WRITE_CAP_LENGTH
  ) return err(3);
  const opened = openSealedReply(secret, sealed);
  if (opened === null) return err(30);
  return {
    "who_reply": opened.whoReply,
    "salt": opened.salt,
    "mutated_message_write_cap": mutateWriteCap(cap, opened.salt),
  };
}

/** The handler of each local request kind. */
const LOCAL_OPS: Readonly<Record<LocalKind, LocalHandler>> = {
  "new_keypair": newKeypair,
  "encrypt_read": encrypt(false),
  "encrypt_write": encrypt(true),
  "cancel_resending_encrypted_message": cancel("encrypted"),
  "cancel_resending_copy_command": cancel("copy"),
  "next_message_box_index": nextIndex,
  "get_message_box_index_counter": indexCounter,
  "get_pki_document": getPkiDocument,
  "get_directory_authorities": getDirectoryAuthorities,
  "create_courier_envelopes_from_payload": fromPayload,
  "create_courier_envelopes_from_multi_payload": fromMultiPayload,
  "create_courier_envelopes_from_tombstone_range": fromTombstoneRange,
  "voucher_mint": voucherMint,
  "voucher_induct": voucherInduct,
  "voucher_open": voucherOpen,
  "voucher_derive_stream": voucherDeriveStream,
};
