/**
 * {@linkcode ThinClient}: {@linkcode ThinClientCore} (lib/client_core.ts)
 * plus the Pigeonhole calls, each one `call` (lib/_requests.ts) between a
 * request builder and a reply reader (lib/_pigeonhole_calls.ts).
 *
 * @module
 */
import { randomBytes } from "./_bytes.ts";
import type { CallOptions, ThinClientOptions } from "./_options.ts";
import { call, checkLength, type Fields } from "./_requests.ts";
import type { Session } from "./_session.ts";
import {
  checked,
  copyCommandError,
  courierEnvelopesOf,
  keypairOf,
  multiCourierEnvelopesOf,
  resendError,
  resendResult,
  startResendingFields,
  tombstoneCourierEnvelopesOf,
  voucherInductOf,
  voucherMintOf,
  voucherOpenOf,
  voucherStreamOf,
} from "./_pigeonhole_calls.ts";
import { sessionOf, ThinClientCore } from "./client_core.ts";
import type { Dialer } from "./conn.ts";
import { MessageBoxIndex, ReadCap, WriteCap } from "./caps.ts";
import { PayloadTooLargeError } from "./errors.ts";
import {
  capBytes,
  checkCopyPayload,
  type CopyCommandOptions,
  type CopyDestinationInput,
  type CourierEnvelopes,
  encrypted,
  type EncryptedMessage,
  type Keypair,
  type MultiCourierEnvelopes,
  needCap,
  type StartResendingOptions,
  type StartResendingParams,
  type StartResendingResult,
  type TombstoneCourierEnvelopes,
  type TombstoneEnvelope,
  type TombstoneRange,
  type VoucherInductResult,
  type VoucherMintResult,
  type VoucherOpenResult,
  type VoucherStream,
} from "./pigeonhole.ts";
import { blake2b256 } from "./hash.ts";
import { HASH_LENGTH } from "./protocol.ts";

export type {
  CallOptions,
  ReconnectOptions,
  ReplyKindFor,
  ThinClientOptions,
} from "./_options.ts";
export type { SendMessageOptions, SignedPkiDocument } from "./client_core.ts";
export { ThinClientCore } from "./client_core.ts";

/**
 * A connection to the Katzenpost client daemon (kpclientd).
 *
 * Create one with {@linkcode ThinClient.connect} (or `connect()` from the
 * transport module, which builds the dialer from a config). The promise
 * resolves once the handshake is complete: the geometries and the first PKI
 * document are known and the session token has been exchanged.
 *
 * The client redials with backoff when the daemon goes away, resumes its
 * session with the same instance token, and re-sends every request still
 * waiting for a reply.
 *
 * Its connection, state, PKI, event, message and lifecycle methods are
 * those of {@linkcode ThinClientCore}, which it extends; the Pigeonhole
 * calls are its own.
 *
 * @example Usage
 * ```ts ignore
 * import { connect } from "@katzenpost/thinclient/transport";
 *
 * await using client = await connect("testdata/thinclient.toml");
 * const echo = client.getService("echo");
 * const reply = await client.blockingSendMessage(
 *   new TextEncoder().encode("hello"),
 *   echo.destinationIdHash,
 *   echo.recipientQueueId,
 *   { signal: AbortSignal.timeout(60_000) },
 * );
 * ```
 */
export class ThinClient extends ThinClientCore {
  readonly #session: Session;

  private constructor(dialer: Dialer, options: ThinClientOptions) {
    super(dialer, options);
    this.#session = sessionOf(this);
  }

  /**
   * Dials the daemon and completes the handshake.
   *
   * @param dialer Opens the connection (see the transport module).
   * @param options Instance token, reconnection policy, timeouts, abort signal.
   * @returns A connected client.
   * @throws {ConnectionError} When the daemon cannot be reached or the handshake fails.
   * @throws {ProtocolError} When the daemon's first frames are malformed.
   *
   * @example Usage
   * ```ts ignore
   * import { ThinClient } from "@katzenpost/thinclient";
   * import { TcpDialer } from "@katzenpost/thinclient/transport";
   * const client = await ThinClient.connect(new TcpDialer({ address: "127.0.0.1:64331" }));
   * ```
   */
  static async connect(
    dialer: Dialer,
    options: ThinClientOptions = {},
  ): Promise<ThinClient> {
    const client = new ThinClient(dialer, options);
    await client.#session.connect(options.signal);
    return client;
  }

  // -------------------------------------------------------------------------
  // Pigeonhole

  /**
   * Creates a new BACAP stream from a 32-byte seed (random when omitted).
   * Deterministic: the same seed always yields the same capabilities. Local;
   * works offline.
   *
   * @param seed Exactly 32 bytes; keep it secret.
   * @param options Abort signal.
   * @returns The write capability, read capability and first box index.
   * @throws {RangeError} When the seed is not 32 bytes.
   * @throws {DaemonError} When the daemon refuses the seed.
   *
   * @example Usage
   * ```ts ignore
   * const { writeCap, readCap, firstMessageIndex } = await client.newKeypair();
   * ```
   */
  async newKeypair(
    seed?: Uint8Array,
    options: CallOptions = {},
  ): Promise<Keypair> {
    const s = seed ?? randomBytes(32);
    checkLength("seed", s, 32);
    return keypairOf(
      await call(this.#session, "new_keypair", { seed: s }, options),
    );
  }

  /**
   * Encrypts a read query for one box (local; needs a PKI document). Send it
   * with {@linkcode ThinClient.startResendingEncryptedMessage} soon: it is
   * bound to the current replica keys.
   *
   * @param readCap The stream's read capability.
   * @param messageBoxIndex The box to read.
   * @param options Abort signal.
   * @returns The envelope and the index after this one.
   * @throws {DaemonError} Code 4 when the daemon has no PKI document.
   *
   * @example Usage
   * ```ts ignore
   * const env = await client.encryptRead(readCap, index);
   * const { plaintext } = await client.startResendingEncryptedMessage({ readCap, messageBoxIndex: index, ...env });
   * ```
   */
  async encryptRead(
    readCap: ReadCap,
    messageBoxIndex: MessageBoxIndex,
    options: CallOptions = {},
  ): Promise<EncryptedMessage> {
    const r = await call(this.#session, "encrypt_read", {
      readCap: capBytes(readCap, ReadCap),
      messageBoxIndex: capBytes(messageBoxIndex, MessageBoxIndex),
    }, options);
    return encrypted(r, checked);
  }

  /**
   * Encrypts a write of `plaintext` into one box (local; needs a PKI
   * document). An empty plaintext is a tombstone (deletes the box).
   *
   * @param plaintext 0 to `pigeonholeGeometry.maxPlaintextPayloadLength` bytes.
   * @param writeCap The stream's write capability.
   * @param messageBoxIndex The box to write.
   * @param options Abort signal.
   * @returns The envelope and the index after this one.
   * @throws {PayloadTooLargeError} When the plaintext exceeds the geometry.
   * @throws {DaemonError} Code 4 when the daemon has no PKI document.
   *
   * @example Usage
   * ```ts ignore
   * const env = await client.encryptWrite(bytes, writeCap, index);
   * await client.startResendingEncryptedMessage({ writeCap, ...env });
   * ```
   */
  async encryptWrite(
    plaintext: Uint8Array,
    writeCap: WriteCap,
    messageBoxIndex: MessageBoxIndex,
    options: CallOptions = {},
  ): Promise<EncryptedMessage> {
    if (!(plaintext instanceof Uint8Array)) {
      throw new TypeError(
        "Cannot encrypt write: plaintext is not a Uint8Array",
      );
    }
    const max = this.#session.state.pigeonhole!.maxPlaintextPayloadLength;
    if (plaintext.length > max) {
      throw new PayloadTooLargeError(plaintext.length, max, "box plaintext");
    }
    const r = await call(this.#session, "encrypt_write", {
      plaintext,
      writeCap: capBytes(writeCap, WriteCap),
      messageBoxIndex: capBytes(messageBoxIndex, MessageBoxIndex),
    }, options);
    return encrypted(r, checked);
  }

  /**
   * Sends an encrypted read or write with the daemon's ARQ: it is resent
   * until the courier answers. Writes resolve on the courier's
   * acknowledgement, which says the courier took the envelope, not that a
   * replica stored it (a replica that refuses the courier's connection can
   * lose an ACKed write); with `noIdempotentBoxAlreadyExists` a write
   * resolves only on the replica's own answer. Reads resolve with the box's
   * plaintext; a read of an unwritten box waits, but sees only a box written
   * within seconds (to wait longer, use `readBox`, which polls).
   *
   * Aborting the signal sends the cancel to the daemon and rejects with the
   * signal's reason.
   *
   * @param params The capability (exactly one of `readCap`/`writeCap`), the
   *   read's box index, and the envelope from `encryptRead`/`encryptWrite`.
   * @param options Abort signal and the no-retry / box-exists variants.
   * @returns The plaintext (reads) and the courier used.
   * @throws {ReplicaError} Box not found (with `noRetryOnBoxIdNotFound`), box
   *   already exists (with `noIdempotentBoxAlreadyExists`), tombstone, or a replica failure.
   * @throws {CancelledError} When cancelled through the daemon.
   * @throws {DaemonError} Courier, MKEM, BACAP and other daemon failures.
   *
   * @example Usage
   * ```ts ignore
   * const env = await client.encryptRead(readCap, index);
   * const { plaintext } = await client.startResendingEncryptedMessage(
   *   { readCap, messageBoxIndex: index, ...env },
   *   { signal: AbortSignal.timeout(120_000) },
   * );
   * ```
   */
  async startResendingEncryptedMessage(
    params: StartResendingParams,
    options: StartResendingOptions = {},
  ): Promise<StartResendingResult> {
    const fields = startResendingFields(params, options);
    return resendResult(
      await call(
        this.#session,
        "start_resending_encrypted_message",
        fields,
        options,
        resendError,
      ),
    );
  }

  /**
   * Cancels a running encrypted read or write by its envelope hash. The
   * waiting start call rejects with {@linkcode CancelledError}. Succeeds also
   * when nothing was running.
   *
   * @param envelopeHash The 32-byte hash from `encryptRead`/`encryptWrite`.
   * @param options Abort signal.
   * @returns When the daemon has processed the cancel.
   *
   * @example Usage
   * ```ts ignore
   * await client.cancelResendingEncryptedMessage(env.envelopeHash);
   * ```
   */
  async cancelResendingEncryptedMessage(
    envelopeHash: Uint8Array,
    options: CallOptions = {},
  ): Promise<void> {
    checkLength("envelopeHash", envelopeHash, HASH_LENGTH);
    await call(this.#session, "cancel_resending_encrypted_message", {
      envelopeHash,
    }, options);
  }

  /**
   * The index of the box after `messageBoxIndex` (local).
   *
   * @param messageBoxIndex An index.
   * @param options Abort signal.
   * @returns The next index.
   *
   * @example Usage
   * ```ts ignore
   * const next = await client.nextMessageBoxIndex(index);
   * ```
   */
  async nextMessageBoxIndex(
    messageBoxIndex: MessageBoxIndex,
    options: CallOptions = {},
  ): Promise<MessageBoxIndex> {
    const r = await call(this.#session, "next_message_box_index", {
      messageBoxIndex: capBytes(messageBoxIndex, MessageBoxIndex),
    }, options);
    return needCap(
      r.nextMessageBoxIndex,
      "next_message_box_index",
      MessageBoxIndex,
    );
  }

  /**
   * The 64-bit counter of an index, to order indices (local).
   *
   * @param messageBoxIndex An index.
   * @param options Abort signal.
   * @returns The counter (often above 2^53, hence bigint).
   *
   * @example Usage
   * ```ts ignore
   * const counter = await client.getMessageBoxIndexCounter(index);
   * ```
   */
  async getMessageBoxIndexCounter(
    messageBoxIndex: MessageBoxIndex,
    options: CallOptions = {},
  ): Promise<bigint> {
    const r = await call(this.#session, "get_message_box_index_counter", {
      messageBoxIndex: capBytes(messageBoxIndex, MessageBoxIndex),
    }, options);
    return r.counter;
  }

  /**
   * Asks a courier to execute the copy stream written with `writeCap` (the
   * temporary stream's write capability): its envelopes are written into
   * their destinations, then the temporary stream is tombstoned. Resolves
   * when the courier reports success. Aborting sends the cancel.
   *
   * @param writeCap The temporary stream's write capability.
   * @param options Abort signal and an optional courier pin.
   * @returns When the copy is complete.
   * @throws {CopyCommandError} When the courier reports the copy failed.
   * @throws {CancelledError} When cancelled through the daemon.
   *
   * @example Usage
   * ```ts ignore
   * await client.startResendingCopyCommand(temp.writeCap, { signal: AbortSignal.timeout(600_000) });
   * ```
   */
  async startResendingCopyCommand(
    writeCap: WriteCap,
    options: CopyCommandOptions = {},
  ): Promise<void> {
    const pin = options.courier;
    if (pin !== undefined) {
      checkLength("courier.identityHash", pin.identityHash, HASH_LENGTH);
    }
    const fields: Fields<"start_resending_copy_command"> = {
      writeCap: capBytes(writeCap, WriteCap),
    };
    if (pin !== undefined) {
      fields.courierIdentityHash = pin.identityHash;
      fields.courierQueueId = pin.queueId;
    }
    await call(
      this.#session,
      "start_resending_copy_command",
      fields,
      options,
      copyCommandError,
    );
  }

  /**
   * Cancels a running copy command. The waiting start call rejects with
   * {@linkcode CancelledError}.
   *
   * @param writeCap The temporary stream's write capability given to the start.
   * @param options Abort signal.
   * @returns When the daemon has processed the cancel.
   *
   * @example Usage
   * ```ts ignore
   * await client.cancelResendingCopyCommand(temp.writeCap);
   * ```
   */
  async cancelResendingCopyCommand(
    writeCap: WriteCap,
    options: CallOptions = {},
  ): Promise<void> {
    await call(this.#session, "cancel_resending_copy_command", {
      writeCapHash: blake2b256(capBytes(writeCap, WriteCap)),
    }, options);
  }

  /**
   * Builds copy-stream elements that write `payload` into consecutive boxes
   * of a destination stream (local). Write each element into consecutive
   * boxes of a temporary stream, then run the copy command.
   *
   * @param payload Up to 10 MiB.
   * @param destWriteCap The destination stream's write capability.
   * @param destStartIndex The first destination box.
   * @param isStart Whether this call starts the copy stream.
   * @param isLast Whether this call ends it.
   * @param options Abort signal.
   * @returns The elements and the destination index after the last box used.
   * @throws {PayloadTooLargeError} When the payload exceeds 10 MiB.
   *
   * @example Usage
   * ```ts ignore
   * const { envelopes, nextDestIndex } = await client.createCourierEnvelopesFromPayload(
   *   payload, writeCap, index, true, true);
   * ```
   */
  async createCourierEnvelopesFromPayload(
    payload: Uint8Array,
    destWriteCap: WriteCap,
    destStartIndex: MessageBoxIndex,
    isStart: boolean,
    isLast: boolean,
    options: CallOptions = {},
  ): Promise<CourierEnvelopes> {
    checkCopyPayload(payload);
    const r = await call(
      this.#session,
      "create_courier_envelopes_from_payload",
      {
        payload,
        destWriteCap: capBytes(destWriteCap, WriteCap),
        destStartIndex: capBytes(destStartIndex, MessageBoxIndex),
        isStart,
        isLast,
      },
      options,
    );
    return courierEnvelopesOf(r);
  }

  /**
   * Builds copy-stream elements for several destinations packed together
   * (local). Pass the returned `buffer` to the next call (persist it for
   * crash recovery); it is `null` after the call with `isLast`.
   *
   * @param destinations Payloads (each ≤ 10 MiB) with their write caps and start indices.
   * @param isStart Whether this call starts the copy stream.
   * @param isLast Whether this call ends it.
   * @param buffer The previous call's `buffer`, or `null` on the first call.
   * @param options Abort signal.
   * @returns The elements, the residual buffer and the next index per destination.
   *
   * @example Usage
   * ```ts ignore
   * const r = await client.createCourierEnvelopesFromMultiPayload(
   *   [{ payload, writeCap, startIndex: index }], true, true, null);
   * ```
   */
  async createCourierEnvelopesFromMultiPayload(
    destinations: readonly CopyDestinationInput[],
    isStart: boolean,
    isLast: boolean,
    buffer: Uint8Array | null,
    options: CallOptions = {},
  ): Promise<MultiCourierEnvelopes> {
    if (destinations.length === 0) {
      throw new RangeError("Cannot build copy stream: no destinations given");
    }
    for (const d of destinations) checkCopyPayload(d.payload);
    const r = await call(
      this.#session,
      "create_courier_envelopes_from_multi_payload",
      {
        destinations: destinations.map((d) => ({
          payload: d.payload,
          writeCap: capBytes(d.writeCap, WriteCap),
          startIndex: capBytes(d.startIndex, MessageBoxIndex),
        })),
        isStart,
        isLast,
        buffer,
      },
      options,
    );
    return multiCourierEnvelopesOf(r);
  }

  /**
   * Builds copy-stream elements that tombstone `maxCount` consecutive boxes
   * of a destination stream (local).
   *
   * @param destWriteCap The destination stream's write capability.
   * @param destStartIndex The first box to tombstone.
   * @param maxCount How many boxes.
   * @param isStart Whether this call starts the copy stream.
   * @param isLast Whether this call ends it.
   * @param buffer The previous call's `buffer`, or `null`.
   * @param options Abort signal.
   * @returns The elements, the residual buffer and the index after the range.
   *
   * @example Usage
   * ```ts ignore
   * const r = await client.createCourierEnvelopesFromTombstoneRange(writeCap, index, 10, true, true, null);
   * ```
   */
  async createCourierEnvelopesFromTombstoneRange(
    destWriteCap: WriteCap,
    destStartIndex: MessageBoxIndex,
    maxCount: number,
    isStart: boolean,
    isLast: boolean,
    buffer: Uint8Array | null,
    options: CallOptions = {},
  ): Promise<TombstoneCourierEnvelopes> {
    if (!Number.isInteger(maxCount) || maxCount < 0 || maxCount > 0xffff_ffff) {
      throw new RangeError(
        `Cannot build tombstones: maxCount '${maxCount}' is not a uint32`,
      );
    }
    const r = await call(
      this.#session,
      "create_courier_envelopes_from_tombstone_range",
      {
        destWriteCap: capBytes(destWriteCap, WriteCap),
        destStartIndex: capBytes(destStartIndex, MessageBoxIndex),
        maxCount,
        isStart,
        isLast,
        buffer,
      },
      options,
    );
    return tombstoneCourierEnvelopesOf(r);
  }

  /**
   * Encrypts tombstones for `maxCount` consecutive boxes (client-side helper:
   * one `encryptWrite` of an empty plaintext per box, no request for 0).
   * Send each with `startResendingEncryptedMessage({ writeCap, ...envelope })`.
   *
   * @param writeCap The stream's write capability.
   * @param start The first box to tombstone.
   * @param maxCount How many boxes.
   * @param options Abort signal.
   * @returns One envelope per box and the index after the range.
   *
   * @example Usage
   * ```ts ignore
   * const { envelopes } = await client.tombstoneRange(writeCap, index, 1);
   * for (const env of envelopes) await client.startResendingEncryptedMessage({ writeCap, ...env });
   * ```
   */
  async tombstoneRange(
    writeCap: WriteCap,
    start: MessageBoxIndex,
    maxCount: number,
    options: CallOptions = {},
  ): Promise<TombstoneRange> {
    if (!Number.isInteger(maxCount) || maxCount < 0) {
      throw new RangeError(
        `Cannot tombstone: maxCount '${maxCount}' is not a non-negative integer`,
      );
    }
    const envelopes: TombstoneEnvelope[] = [];
    let index = start;
    for (let i = 0; i < maxCount; i++) {
      const env = await this.encryptWrite(
        new Uint8Array(0),
        writeCap,
        index,
        options,
      );
      envelopes.push({ ...env, messageBoxIndex: index });
      index = env.nextMessageBoxIndex;
    }
    return { envelopes, next: index };
  }

  /**
   * Mints a contact voucher (joiner side, local).
   *
   * @param messageWriteCap The joiner's message-stream write capability.
   * @param displayName The joiner's display name.
   * @param options Abort signal.
   * @returns The voucher token, its payload, the voucher stream caps and the reply keypair.
   *
   * @example Usage
   * ```ts ignore
   * const minted = await client.voucherMint(writeCap, "alice");
   * ```
   */
  async voucherMint(
    messageWriteCap: WriteCap,
    displayName: string,
    options: CallOptions = {},
  ): Promise<VoucherMintResult> {
    const r = await call(this.#session, "voucher_mint", {
      messageWriteCap: capBytes(messageWriteCap, WriteCap),
      displayName,
    }, options);
    return voucherMintOf(r);
  }

  /**
   * Inducts a joiner from their voucher (inductor side, local).
   *
   * @param voucher The 32-byte voucher token.
   * @param voucherPayload The payload read from box 0 of the voucher stream.
   * @param whoReply The bytes to seal for the joiner.
   * @param options Abort signal.
   * @returns The joiner's display name, the salted read cap and the sealed reply.
   * @throws {DaemonError} Code 28 or 29 when the payload does not match the voucher.
   *
   * @example Usage
   * ```ts ignore
   * const inducted = await client.voucherInduct(voucher, payload, bytes);
   * ```
   */
  async voucherInduct(
    voucher: Uint8Array,
    voucherPayload: Uint8Array,
    whoReply: Uint8Array,
    options: CallOptions = {},
  ): Promise<VoucherInductResult> {
    const r = await call(this.#session, "voucher_induct", {
      voucher,
      voucherPayload,
      whoReply,
    }, options);
    return voucherInductOf(r);
  }

  /**
   * Opens the inductor's sealed reply (joiner side, local).
   *
   * @param voucherSecretKey The secret key from {@linkcode ThinClient.voucherMint}.
   * @param sealedReply The bytes read from box 1 of the voucher stream.
   * @param messageWriteCap The joiner's message-stream write capability.
   * @param options Abort signal.
   * @returns The inductor's reply, the salt and the salted write cap.
   * @throws {DaemonError} Code 30 when the reply cannot be opened.
   *
   * @example Usage
   * ```ts ignore
   * const opened = await client.voucherOpen(minted.voucherSecretKey, bytes, writeCap);
   * ```
   */
  async voucherOpen(
    voucherSecretKey: Uint8Array,
    sealedReply: Uint8Array,
    messageWriteCap: WriteCap,
    options: CallOptions = {},
  ): Promise<VoucherOpenResult> {
    const r = await call(this.#session, "voucher_open", {
      voucherSecretKey,
      sealedReply,
      messageWriteCap: capBytes(messageWriteCap, WriteCap),
    }, options);
    return voucherOpenOf(r);
  }

  /**
   * Derives the voucher stream's capabilities from a voucher (inductor side, local).
   *
   * @param voucher The 32-byte voucher token.
   * @param options Abort signal.
   * @returns The voucher stream's caps (equal to the minter's).
   *
   * @example Usage
   * ```ts ignore
   * const { voucherReadCap } = await client.voucherDeriveStream(voucher);
   * ```
   */
  async voucherDeriveStream(
    voucher: Uint8Array,
    options: CallOptions = {},
  ): Promise<VoucherStream> {
    const r = await call(
      this.#session,
      "voucher_derive_stream",
      { voucher },
      options,
    );
    return voucherStreamOf(r);
  }
}
