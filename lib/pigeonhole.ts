/**
 * Types of the Pigeonhole operations of {@linkcode ThinClient} (see
 * `newKeypair`, `encryptWrite`, `startResendingEncryptedMessage`, …).
 *
 * @module
 */
import type { CallOptions } from "./_options.ts";
import {
  _adopt,
  MessageBoxIndex,
  type ReadCap,
  type WriteCap,
} from "./caps.ts";
import { PayloadTooLargeError, ProtocolError } from "./errors.ts";
import type { ResponseOf } from "./protocol.ts";

/** Largest payload per destination of the copy-stream builders: 10 MiB. */
export const MAX_COPY_PAYLOAD: number = 10 * 1024 * 1024;

/**
 * A new BACAP stream.
 *
 * @example Usage
 * ```ts ignore
 * const { writeCap, readCap, firstMessageIndex }: Keypair = await client.newKeypair();
 * ```
 */
export interface Keypair {
  /** Secret: writes the stream. */
  writeCap: WriteCap;
  /** Reads the stream; share it with readers. */
  readCap: ReadCap;
  /** The stream's first box. */
  firstMessageIndex: MessageBoxIndex;
}

/**
 * An encrypted read or write, ready for `startResendingEncryptedMessage`.
 *
 * @example Usage
 * ```ts ignore
 * const env: EncryptedMessage = await client.encryptWrite(bytes, writeCap, index);
 * ```
 */
export interface EncryptedMessage {
  /** The courier query. */
  messageCiphertext: Uint8Array;
  /** Secret material needed to open the reply. */
  envelopeDescriptor: Uint8Array;
  /** Identifies the operation (cancel key); 32 bytes. */
  envelopeHash: Uint8Array;
  /** The box after the one addressed. */
  nextMessageBoxIndex: MessageBoxIndex;
}

/**
 * What `startResendingEncryptedMessage` sends.
 *
 * @example Usage
 * ```ts ignore
 * const params: StartResendingParams = { readCap, messageBoxIndex: index, ...env };
 * ```
 */
export interface StartResendingParams {
  /** Set for a read. */
  readCap?: ReadCap;
  /** Set for a write. */
  writeCap?: WriteCap;
  /** The box read (required for reads). */
  messageBoxIndex?: MessageBoxIndex;
  /** Accepted and ignored by the v0.0.99 daemon. */
  replyIndex?: number;
  /** From the encrypt call. */
  envelopeDescriptor: Uint8Array;
  /** From the encrypt call. */
  messageCiphertext: Uint8Array;
  /** From the encrypt call. */
  envelopeHash: Uint8Array;
}

/**
 * Options of `startResendingEncryptedMessage`.
 *
 * @example Usage
 * ```ts ignore
 * const params: StartResendingParams = { readCap, messageBoxIndex: index, ...env };
 * await client.startResendingEncryptedMessage(params, { noRetryOnBoxIdNotFound: true });
 * ```
 */
export interface StartResendingOptions extends CallOptions {
  /**
   * Reads: fail at once with box-not-found instead of waiting for the box.
   * @default {false}
   */
  noRetryOnBoxIdNotFound?: boolean;
  /**
   * Writes: wait for the replica's answer instead of the courier's ACK, so
   * the write resolves only once a replica has stored the box, and report
   * box-already-exists instead of treating it as success (costs a second
   * round trip).
   * @default {false}
   */
  noIdempotentBoxAlreadyExists?: boolean;
}

/**
 * The outcome of `startResendingEncryptedMessage`.
 *
 * @example Usage
 * ```ts ignore
 * const params: StartResendingParams = { readCap, messageBoxIndex: index, ...env };
 * const { plaintext }: StartResendingResult = await client.startResendingEncryptedMessage(params);
 * ```
 */
export interface StartResendingResult {
  /** Reads: the box content. Writes: `null`. */
  plaintext: Uint8Array | null;
  /** The courier used (32 bytes), when known. */
  courierIdentityHash: Uint8Array | null;
  /** That courier's queue id, when known. */
  courierQueueId: Uint8Array | null;
}

/**
 * A courier to pin a copy command to.
 *
 * @example Usage
 * ```ts ignore
 * const c = client.getService("courier");
 * const pin: CourierPin = { identityHash: c.destinationIdHash, queueId: c.recipientQueueId };
 * ```
 */
export interface CourierPin {
  /** BLAKE2b-256 of the courier node's identity key. */
  identityHash: Uint8Array;
  /** The courier's queue id. */
  queueId: Uint8Array;
}

/**
 * Options of `startResendingCopyCommand`.
 *
 * @example Usage
 * ```ts ignore
 * await client.startResendingCopyCommand(temp.writeCap, { signal: AbortSignal.timeout(600_000) });
 * ```
 */
export interface CopyCommandOptions extends CallOptions {
  /** Use this courier instead of a random one. */
  courier?: CourierPin;
}

/**
 * Copy-stream elements from `createCourierEnvelopesFromPayload`.
 *
 * @example Usage
 * ```ts ignore
 * const { envelopes, nextDestIndex }: CourierEnvelopes = await client.createCourierEnvelopesFromPayload(payload, writeCap, index, true, true);
 * ```
 */
export interface CourierEnvelopes {
  /** Elements, one per temporary-stream box, in order. */
  envelopes: Uint8Array[];
  /** Destination index after the last box used. */
  nextDestIndex: MessageBoxIndex;
}

/**
 * Copy-stream elements from `createCourierEnvelopesFromMultiPayload`.
 *
 * @example Usage
 * ```ts ignore
 * const r: MultiCourierEnvelopes = await client.createCourierEnvelopesFromMultiPayload(
 *   [{ payload, writeCap, startIndex: index }], true, true, null);
 * ```
 */
export interface MultiCourierEnvelopes {
  /** Elements, one per temporary-stream box, in order. */
  envelopes: Uint8Array[];
  /** Residual encoder state for the next call; `null` after the last. */
  buffer: Uint8Array | null;
  /** Next index per destination, in request order. */
  nextDestIndices: MessageBoxIndex[];
}

/**
 * Copy-stream elements from `createCourierEnvelopesFromTombstoneRange`.
 *
 * @example Usage
 * ```ts ignore
 * const r: TombstoneCourierEnvelopes = await client.createCourierEnvelopesFromTombstoneRange(writeCap, index, 3, true, true, null);
 * ```
 */
export interface TombstoneCourierEnvelopes {
  /** Elements, one per temporary-stream box, in order. */
  envelopes: Uint8Array[];
  /** Residual encoder state for the next call; `null` after the last. */
  buffer: Uint8Array | null;
  /** Destination index after the range. */
  nextDestIndex: MessageBoxIndex;
}

/**
 * One destination of `createCourierEnvelopesFromMultiPayload`.
 *
 * @example Usage
 * ```ts ignore
 * const d: CopyDestinationInput = { payload, writeCap, startIndex: index };
 * ```
 */
export interface CopyDestinationInput {
  /** Bytes to write (≤ 10 MiB). */
  payload: Uint8Array;
  /** Destination write capability. */
  writeCap: WriteCap;
  /** First destination box. */
  startIndex: MessageBoxIndex;
}

/**
 * One encrypted tombstone from `tombstoneRange`.
 *
 * @example Usage
 * ```ts ignore
 * const env: TombstoneEnvelope = (await client.tombstoneRange(writeCap, index, 1)).envelopes[0]!;
 * ```
 */
export interface TombstoneEnvelope extends EncryptedMessage {
  /** The box it deletes. */
  messageBoxIndex: MessageBoxIndex;
}

/**
 * The result of `tombstoneRange`.
 *
 * @example Usage
 * ```ts ignore
 * const { envelopes, next }: TombstoneRange = await client.tombstoneRange(writeCap, index, 2);
 * ```
 */
export interface TombstoneRange {
  /** One envelope per box. */
  envelopes: TombstoneEnvelope[];
  /** The index after the range. */
  next: MessageBoxIndex;
}

/**
 * The result of `voucherMint`.
 *
 * @example Usage
 * ```ts ignore
 * const m: VoucherMintResult = await client.voucherMint(writeCap, "alice");
 * ```
 */
export interface VoucherMintResult {
  /** 32-byte token to hand to the inductor out of band. */
  voucher: Uint8Array;
  /** Publish in box 0 of the voucher stream. */
  voucherPayload: Uint8Array;
  /** Voucher stream write capability. */
  voucherWriteCap: WriteCap;
  /** Voucher stream read capability. */
  voucherReadCap: ReadCap;
  /** Keep: opens the inductor's reply. */
  voucherSecretKey: Uint8Array;
  /** The reply public key. */
  voucherPublicKey: Uint8Array;
}

/**
 * The result of `voucherInduct`.
 *
 * @example Usage
 * ```ts ignore
 * const i: VoucherInductResult = await client.voucherInduct(voucher, payload, bytes);
 * ```
 */
export interface VoucherInductResult {
  /** The joiner's display name. */
  displayName: string;
  /** Salted read capability of the joiner's stream. */
  mutatedMessageReadCap: ReadCap;
  /** Write to box 1 of the voucher stream. */
  sealedReply: Uint8Array;
  /** Voucher stream write capability. */
  voucherWriteCap: WriteCap;
  /** Voucher stream read capability. */
  voucherReadCap: ReadCap;
  /** The salt. */
  salt: Uint8Array;
}

/**
 * The result of `voucherOpen`.
 *
 * @example Usage
 * ```ts ignore
 * const o: VoucherOpenResult = await client.voucherOpen(minted.voucherSecretKey, bytes, writeCap);
 * ```
 */
export interface VoucherOpenResult {
  /** The inductor's reply. */
  whoReply: Uint8Array;
  /** The salt. */
  salt: Uint8Array;
  /** Salted write capability (pairs with the inductor's mutated read cap). */
  mutatedMessageWriteCap: WriteCap;
}

/**
 * The result of `voucherDeriveStream`.
 *
 * @example Usage
 * ```ts ignore
 * const s: VoucherStream = await client.voucherDeriveStream(voucher);
 * ```
 */
export interface VoucherStream {
  /** Voucher stream write capability. */
  voucherWriteCap: WriteCap;
  /** Voucher stream read capability. */
  voucherReadCap: ReadCap;
}

/** Throws when a success reply lacks a field. */
export function need(value: Uint8Array | null, field: string): Uint8Array {
  if (value === null) {
    throw new ProtocolError(
      `Cannot decode reply: field '${field}' is null in a success reply`,
    );
  }
  return value;
}

/**
 * A capability or box index from a success reply: present, and of the length
 * of its type (a wrong length is a broken daemon, not a bad argument).
 */
export function needCap<T>(
  value: Uint8Array | null,
  field: string,
  type:
    & { readonly LENGTH: number; readonly name: string }
    & (new (
      bytes: Uint8Array,
    ) => T),
): T {
  const bytes = need(value, field);
  if (bytes.length !== type.LENGTH) {
    throw new ProtocolError(
      `Cannot decode reply: field '${field}' has ${bytes.length} bytes, a ${type.name} has ${type.LENGTH}`,
    );
  }
  return _adopt(type, bytes);
}

/** The bytes of a wrapper, checking it is the right wrapper. */
export function capBytes<T extends { bytes: Uint8Array }>(
  value: T,
  type: abstract new (bytes: Uint8Array) => T,
): Uint8Array {
  if (!(value instanceof type)) {
    throw new TypeError(`Cannot send request: expected a ${type.name}`);
  }
  return value.bytes;
}

/** Turns an encrypt reply into an {@linkcode EncryptedMessage}, throwing on error codes. */
export function encrypted(
  r: ResponseOf<"encrypt_read_reply" | "encrypt_write_reply">,
  check: (reply: { kind: string; errorCode: number }) => void,
): EncryptedMessage {
  check(r);
  return {
    messageCiphertext: need(r.messageCiphertext, "message_ciphertext"),
    envelopeDescriptor: need(r.envelopeDescriptor, "envelope_descriptor"),
    envelopeHash: need(r.envelopeHash, "envelope_hash"),
    nextMessageBoxIndex: needCap(
      r.nextMessageBoxIndex,
      "next_message_box_index",
      MessageBoxIndex,
    ),
  };
}

/** Rejects a copy payload over 10 MiB. */
export function checkCopyPayload(payload: Uint8Array): void {
  if (!(payload instanceof Uint8Array)) {
    throw new TypeError(
      "Cannot build copy stream: payload is not a Uint8Array",
    );
  }
  if (payload.length > MAX_COPY_PAYLOAD) {
    throw new PayloadTooLargeError(
      payload.length,
      MAX_COPY_PAYLOAD,
      "copy payload",
    );
  }
}
