/**
 * The client's side of the Pigeonhole calls that is not I/O: the reply
 * checks (error code to error), the start_resending request builder, and
 * the readers that turn success replies into the typed results.
 *
 * @module
 */
import { checkLength, daemonError } from "./_requests.ts";
import { MessageBoxIndex, ReadCap, WriteCap } from "./caps.ts";
import {
  CancelledError,
  CopyCommandError,
  errorFromResendCode,
  ThinErrorCode,
} from "./errors.ts";
import {
  capBytes,
  type CourierEnvelopes,
  type Keypair,
  type MultiCourierEnvelopes,
  need,
  needCap,
  type StartResendingOptions,
  type StartResendingParams,
  type StartResendingResult,
  type TombstoneCourierEnvelopes,
  type VoucherInductResult,
  type VoucherMintResult,
  type VoucherOpenResult,
  type VoucherStream,
} from "./pigeonhole.ts";
import {
  HASH_LENGTH,
  type Request,
  type Response,
  type ResponseOf,
} from "./protocol.ts";

type Coded = { kind: string; errorCode: number };

/** `start_resending_encrypted_message`: replica, cancel and daemon errors. */
export function resendError(reply: Response): Error | null {
  const code = (reply as Response as Coded).errorCode;
  return code === 0 ? null : errorFromResendCode(code);
}

/** `start_resending_copy_command`: copy failure, cancel, other codes. */
export function copyCommandError(reply: Response): Error | null {
  const r = reply as ResponseOf<"start_resending_copy_command_reply">;
  if (r.errorCode === ThinErrorCode.CopyCommandFailed) {
    return new CopyCommandError(r.replicaErrorCode, r.failedEnvelopeIndex);
  }
  if (r.errorCode === ThinErrorCode.StartResendingCancelled) {
    return new CancelledError("start_resending_copy_command");
  }
  return daemonError(reply);
}

/** For a reader that takes a check: the reply has been checked already. */
export function checked(_reply: Coded): void {}

type StartResendingFields = Omit<
  Extract<Request, { kind: "start_resending_encrypted_message" }>,
  "kind" | "queryId"
>;

/** Checks the parameters of `startResendingEncryptedMessage` and builds its fields. */
export function startResendingFields(
  params: StartResendingParams,
  options: StartResendingOptions,
): StartResendingFields {
  const isRead = params.readCap !== undefined;
  if (isRead === (params.writeCap !== undefined)) {
    throw new TypeError(
      "Cannot start resending: give exactly one of 'readCap' (read) or 'writeCap' (write)",
    );
  }
  if (isRead && params.messageBoxIndex === undefined) {
    throw new TypeError(
      "Cannot start resending a read: 'messageBoxIndex' is required",
    );
  }
  checkLength("envelopeHash", params.envelopeHash, HASH_LENGTH);
  if (
    params.messageCiphertext.length === 0 ||
    params.envelopeDescriptor.length === 0
  ) {
    throw new RangeError(
      "Cannot start resending: envelope ciphertext or descriptor is empty",
    );
  }
  const fields: StartResendingFields = {
    readCap: isRead ? capBytes(params.readCap!, ReadCap) : null,
    writeCap: isRead ? null : capBytes(params.writeCap!, WriteCap),
    messageBoxIndex: params.messageBoxIndex === undefined
      ? null
      : capBytes(params.messageBoxIndex, MessageBoxIndex),
    envelopeDescriptor: params.envelopeDescriptor,
    messageCiphertext: params.messageCiphertext,
    envelopeHash: params.envelopeHash,
  };
  // Set one by one: spreading conditional objects builds temporaries.
  if (params.replyIndex !== undefined) fields.replyIndex = params.replyIndex;
  if (options.noRetryOnBoxIdNotFound) fields.noRetryOnBoxIdNotFound = true;
  if (options.noIdempotentBoxAlreadyExists) {
    fields.noIdempotentBoxAlreadyExists = true;
  }
  return fields;
}

/** The result of a `start_resending_encrypted_message` reply. */
export function resendResult(
  r: ResponseOf<"start_resending_encrypted_message_reply">,
): StartResendingResult {
  return {
    plaintext: r.plaintext,
    courierIdentityHash: r.courierIdentityHash,
    courierQueueId: r.courierQueueId,
  };
}

/** The keypair of a `new_keypair` reply. */
export function keypairOf(r: ResponseOf<"new_keypair_reply">): Keypair {
  return {
    writeCap: needCap(r.writeCap, "write_cap", WriteCap),
    readCap: needCap(r.readCap, "read_cap", ReadCap),
    firstMessageIndex: needCap(
      r.firstMessageIndex,
      "first_message_index",
      MessageBoxIndex,
    ),
  };
}

/** The elements of a `create_courier_envelopes_from_payload` reply. */
export function courierEnvelopesOf(
  r: { envelopes: Uint8Array[] | null; nextDestIndex: Uint8Array | null },
): CourierEnvelopes {
  return {
    envelopes: r.envelopes ?? [],
    nextDestIndex: needCap(r.nextDestIndex, "next_dest_index", MessageBoxIndex),
  };
}

/** The elements of a `create_courier_envelopes_from_multi_payload` reply. */
export function multiCourierEnvelopesOf(
  r: ResponseOf<"create_courier_envelopes_from_multi_payload_reply">,
): MultiCourierEnvelopes {
  return {
    envelopes: r.envelopes ?? [],
    buffer: r.buffer,
    nextDestIndices: (r.nextDestIndices ?? []).map((b, i) =>
      needCap(b, `next_dest_indices[${i}]`, MessageBoxIndex)
    ),
  };
}

/** The elements of a `create_courier_envelopes_from_tombstone_range` reply. */
export function tombstoneCourierEnvelopesOf(
  r: ResponseOf<"create_courier_envelopes_from_tombstone_range_reply">,
): TombstoneCourierEnvelopes {
  const elements = courierEnvelopesOf(r);
  return {
    envelopes: elements.envelopes,
    buffer: r.buffer,
    nextDestIndex: elements.nextDestIndex,
  };
}

/** The voucher stream's caps of a voucher reply. */
export function voucherStreamOf(
  r: { voucherWriteCap: Uint8Array | null; voucherReadCap: Uint8Array | null },
): VoucherStream {
  return {
    voucherWriteCap: needCap(r.voucherWriteCap, "voucher_write_cap", WriteCap),
    voucherReadCap: needCap(r.voucherReadCap, "voucher_read_cap", ReadCap),
  };
}

/** The result of a `voucher_mint` reply. */
export function voucherMintOf(
  r: ResponseOf<"voucher_mint_reply">,
): VoucherMintResult {
  const voucher = need(r.voucher, "voucher");
  const voucherPayload = need(r.voucherPayload, "voucher_payload");
  const stream = voucherStreamOf(r);
  return {
    voucher,
    voucherPayload,
    voucherWriteCap: stream.voucherWriteCap,
    voucherReadCap: stream.voucherReadCap,
    voucherSecretKey: need(r.voucherSecretKey, "voucher_secret_key"),
    voucherPublicKey: need(r.voucherPublicKey, "voucher_public_key"),
  };
}

/** The result of a `voucher_induct` reply. */
export function voucherInductOf(
  r: ResponseOf<"voucher_induct_reply">,
): VoucherInductResult {
  const mutatedMessageReadCap = needCap(
    r.mutatedMessageReadCap,
    "mutated_message_read_cap",
    ReadCap,
  );
  const sealedReply = need(r.sealedReply, "sealed_reply");
  const stream = voucherStreamOf(r);
  return {
    displayName: r.displayName,
    mutatedMessageReadCap,
    sealedReply,
    voucherWriteCap: stream.voucherWriteCap,
    voucherReadCap: stream.voucherReadCap,
    salt: need(r.salt, "salt"),
  };
}

/** The result of a `voucher_open` reply. */
export function voucherOpenOf(
  r: ResponseOf<"voucher_open_reply">,
): VoucherOpenResult {
  return {
    whoReply: need(r.whoReply, "who_reply"),
    salt: need(r.salt, "salt"),
    mutatedMessageWriteCap: needCap(
      r.mutatedMessageWriteCap,
      "mutated_message_write_cap",
      WriteCap,
    ),
  };
}
