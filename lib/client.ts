/**
 * {@linkcode ThinClient}: one connection to kpclientd, with the handshake,
 * request correlation, events, reconnection and session resumption.
 *
 * The class is a facade over small parts: the session (lib/_session.ts)
 * dials, reads, redials with backoff (lib/_backoff.ts) and writes; the
 * requests (lib/_requests.ts) wait for their replies; the dispatcher
 * (lib/_dispatch.ts) turns frames into daemon state (lib/_daemon_state.ts),
 * replies and events. Every typed request goes through `#call`, every
 * message through lib/_messages.ts.
 *
 * @module
 */
import { randomBytes, randomIdView } from "./_bytes.ts";
import type {
  CallOptions,
  ReconnectOptions,
  ReplyKindFor,
} from "./_options.ts";
import {
  checkCapFields,
  checkLength,
  queryId,
  type QueryRequest,
  type ReplyCheck,
} from "./_requests.ts";
import { Session } from "./_session.ts";
import { postMessage, sendAndWait } from "./_messages.ts";
import {
  checked,
  copyCommandError,
  courierEnvelopesOf,
  daemonError,
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
import type { Dialer } from "./conn.ts";
import { MessageBoxIndex, ReadCap, WriteCap } from "./caps.ts";
import { DaemonError, PayloadTooLargeError } from "./errors.ts";
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
import type { EventsOptions, ThinClientEvent } from "./events.ts";
import { blake2b256 } from "./hash.ts";
import type { PkiDocument, ServiceDescriptor } from "./pki.ts";
import {
  type DirectoryAuthority,
  HASH_LENGTH,
  ID_LENGTH,
  type PigeonholeGeometry,
  type Request,
  type ResponseOf,
  type SphinxGeometry,
} from "./protocol.ts";

export type {
  CallOptions,
  ReconnectOptions,
  ReplyKindFor,
} from "./_options.ts";

/**
 * Options of {@linkcode ThinClient.connect}.
 *
 * @example Usage
 * ```ts ignore
 * const client = await ThinClient.connect(dialer, {
 *   instanceToken: savedToken, // resume the session of a previous run
 *   signal: AbortSignal.timeout(60_000),
 * });
 * ```
 */
export interface ThinClientOptions {
  /** Aborts the first connection and handshake. */
  signal?: AbortSignal;
  /**
   * The 16-byte client instance token sent in the session handshake. Supply
   * the token of a previous run (see {@linkcode ThinClient.instanceToken}) to
   * resume its daemon session within the daemon's grace period.
   * @default {16 random bytes}
   */
  instanceToken?: Uint8Array;
  /**
   * Redial after losing the daemon (`false` closes the client instead).
   * @default {true}
   */
  reconnect?: boolean | ReconnectOptions;
  /**
   * Milliseconds allowed for each dial and handshake. The daemon may wait up to 30 s
   * for a PKI document before its first frame.
   * @default {60000}
   */
  handshakeTimeout?: number;
  /**
   * Largest frame body accepted from the daemon.
   * @default {41943040}
   */
  maxFrameSize?: number;
  /**
   * Largest frame body accepted before the client sends its session token:
   * the daemon's connection status and PKI document (see
   * {@linkcode HANDSHAKE_MAX_FRAME_SIZE}). Raise it for a network whose PKI
   * document is larger; it never exceeds `maxFrameSize`.
   * @default {4194304}
   */
  handshakeMaxFrameSize?: number;
}

/**
 * Options of {@linkcode ThinClient.sendMessage}.
 *
 * @example Usage
 * ```ts ignore
 * await client.sendMessage(surbId, payload, dest, queue, { messageId: client.newMessageId() });
 * ```
 */
export interface SendMessageOptions {
  /** A 16-byte application message id, echoed in the events. */
  messageId?: Uint8Array;
}

/**
 * The raw signed PKI document returned by {@linkcode ThinClient.getPkiDocumentRaw}.
 *
 * @example Usage
 * ```ts ignore
 * const { epoch, payload } = await client.getPkiDocumentRaw();
 * ```
 */
export interface SignedPkiDocument {
  /** Epoch of the document actually returned. */
  epoch: bigint;
  /** The certificate-wrapped, signed CBOR document as received from the network. */
  payload: Uint8Array;
}

/** The request kinds that carry a query id (and get a reply). */
type QueryKind = Extract<Request, { queryId: Uint8Array }>["kind"];

/** A request of `kind` without its kind and query id, which `#call` adds. */
type Fields<K extends QueryKind> = Omit<
  Extract<Request, { kind: K }>,
  "kind" | "queryId"
>;

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
export class ThinClient implements AsyncDisposable {
  readonly #session: Session;

  private constructor(dialer: Dialer, options: ThinClientOptions) {
    this.#session = new Session(dialer, options);
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
  // State

  /**
   * The 16-byte client instance token. Persist it and pass it as
   * `instanceToken` to resume this session from another process.
   *
   * @example Usage
   * ```ts ignore
   * localStorage.setItem("token", toHex(client.instanceToken));
   * ```
   */
  get instanceToken(): Uint8Array {
    return this.#session.instanceToken.slice();
  }

  /**
   * The daemon's instance token (changes when the daemon restarts).
   *
   * @example Usage
   * ```ts ignore
   * console.log(client.daemonInstanceToken);
   * ```
   */
  get daemonInstanceToken(): Uint8Array {
    return this.#session.state.daemonToken.slice();
  }

  /**
   * The application id the daemon serves this session under.
   *
   * @example Usage
   * ```ts ignore
   * console.log(client.appId);
   * ```
   */
  get appId(): Uint8Array {
    return this.#session.state.appId.slice();
  }

  /**
   * Whether the latest handshake resumed an existing daemon session (same
   * instance token, within the daemon's grace period) rather than starting a
   * new one.
   *
   * @example Usage
   * ```ts ignore
   * const client = await connect("thinclient.toml", { instanceToken: saved });
   * if (!client.resumed) console.log("session expired: in-flight operations are gone");
   * ```
   */
  get resumed(): boolean {
    return this.#session.state.resumed;
  }

  /**
   * Whether the daemon is connected to the mixnet (not whether this socket is up).
   *
   * @example Usage
   * ```ts ignore
   * if (!client.isConnected) console.log("daemon offline: mixnet requests wait");
   * ```
   */
  get isConnected(): boolean {
    return this.#session.state.isConnected;
  }

  /**
   * Whether the local connection to the daemon is up right now.
   *
   * @example Usage
   * ```ts ignore
   * console.log(client.isDaemonReachable);
   * ```
   */
  get isDaemonReachable(): boolean {
    return this.#session.reachable;
  }

  /**
   * Whether the client has been closed or detached.
   *
   * @example Usage
   * ```ts ignore
   * await client.close();
   * console.log(client.isClosed); // true
   * ```
   */
  get isClosed(): boolean {
    return this.#session.status === "closed";
  }

  /**
   * The daemon's Sphinx geometry.
   *
   * @example Usage
   * ```ts ignore
   * console.log(client.sphinxGeometry.userForwardPayloadLength);
   * ```
   */
  get sphinxGeometry(): SphinxGeometry {
    return { ...this.#session.state.sphinx! };
  }

  /**
   * The daemon's Pigeonhole geometry.
   *
   * @example Usage
   * ```ts ignore
   * console.log(client.pigeonholeGeometry.maxPlaintextPayloadLength);
   * ```
   */
  get pigeonholeGeometry(): PigeonholeGeometry {
    return { ...this.#session.state.pigeonhole! };
  }

  /**
   * Resolves when the client is closed: with nothing after `close()` or
   * `detach()`, or with the error that ended it. Never rejects.
   *
   * @returns The closing error, if any.
   *
   * @example Usage
   * ```ts ignore
   * const err = await client.closed();
   * if (err) console.error("client ended:", err.message);
   * ```
   */
  closed(): Promise<void | Error> {
    return this.#session.closed();
  }

  // -------------------------------------------------------------------------
  // Events

  /**
   * Subscribes to events. Each call is an independent subscriber with its own
   * bounded buffer; a slow subscriber loses its oldest events (and is told so
   * with `events_dropped`) but never stalls the client or other subscribers.
   * The iterator ends on `break`, on abort, and when the client closes.
   *
   * @param options Abort signal and buffer size.
   * @returns An async iterator of events.
   *
   * @example Usage
   * ```ts ignore
   * for await (const ev of client.events({ signal: AbortSignal.timeout(10_000) })) {
   *   console.log(ev.type);
   * }
   * ```
   */
  events(options: EventsOptions = {}): AsyncIterableIterator<ThinClientEvent> {
    return this.#session.dispatcher.subscribe(options, this.isClosed);
  }

  // -------------------------------------------------------------------------
  // PKI and services

  /**
   * The current PKI document (the latest one the daemon pushed).
   *
   * @returns The document.
   * @throws {ThinClientError} When the daemon has not delivered a document yet.
   *
   * @example Usage
   * ```ts ignore
   * console.log(client.pkiDocument().epoch);
   * ```
   */
  pkiDocument(): PkiDocument {
    return this.#session.state.pkiDocument();
  }

  /**
   * The cached document for an epoch (the last 5 epochs are kept), or the
   * current one when that epoch is not cached.
   *
   * @param epoch The epoch.
   * @returns The document.
   * @throws {ThinClientError} When no document is known at all.
   *
   * @example Usage
   * ```ts ignore
   * const doc = client.pkiDocumentForEpoch(client.pkiDocument().epoch - 1n);
   * ```
   */
  pkiDocumentForEpoch(epoch: bigint): PkiDocument {
    return this.#session.state.pkiDocumentForEpoch(epoch);
  }

  /**
   * Every service node offering a capability in the current document.
   *
   * @param capability Capability name, e.g. `echo`.
   * @returns The services (possibly none).
   *
   * @example Usage
   * ```ts ignore
   * console.log(client.getServices("courier").length);
   * ```
   */
  getServices(capability: string): ServiceDescriptor[] {
    return this.#session.state.getServices(capability);
  }

  /**
   * One service offering a capability, chosen at random.
   *
   * @param capability Capability name, e.g. `echo`.
   * @returns The service.
   * @throws {ThinClientError} When no node offers it.
   *
   * @example Usage
   * ```ts ignore
   * const echo = client.getService("echo");
   * ```
   */
  getService(capability: string): ServiceDescriptor {
    return this.#session.state.getService(capability);
  }

  /**
   * Fetches the signed PKI document for an epoch from the daemon, exactly as
   * the daemon received it (certificate with signatures).
   *
   * @param epoch The epoch, or `0n` for the current one.
   * @param options Abort signal.
   * @returns The epoch served and the raw signed document.
   * @throws {DaemonError} Code 10 when the daemon has no document for that epoch.
   *
   * @example Usage
   * ```ts ignore
   * const { epoch, payload } = await client.getPkiDocumentRaw(0n);
   * ```
   */
  async getPkiDocumentRaw(
    epoch: bigint = 0n,
    options: CallOptions = {},
  ): Promise<SignedPkiDocument> {
    if (typeof epoch !== "bigint" || epoch < 0n) {
      throw new TypeError(
        `Cannot get PKI document: epoch '${epoch}' is not a non-negative bigint`,
      );
    }
    const r = await this.#call("get_pki_document", { epoch }, options);
    return { epoch: r.epoch, payload: r.payload ?? new Uint8Array(0) };
  }

  /**
   * The directory authorities configured in the daemon.
   *
   * @param options Abort signal.
   * @returns The authorities.
   * @throws {DaemonError} Code 10 when the daemon has none configured.
   *
   * @example Usage
   * ```ts ignore
   * for (const a of await client.getDirectoryAuthorities()) console.log(a.identifier);
   * ```
   */
  async getDirectoryAuthorities(
    options: CallOptions = {},
  ): Promise<DirectoryAuthority[]> {
    const r = await this.#call("get_directory_authorities", {}, options);
    return r.authorities ?? [];
  }

  // -------------------------------------------------------------------------
  // Ids

  /**
   * A fresh random 16-byte message id.
   *
   * @returns The id.
   *
   * @example Usage
   * ```ts ignore
   * const id = client.newMessageId();
   * ```
   */
  newMessageId(): Uint8Array {
    return randomBytes(ID_LENGTH);
  }

  /**
   * A fresh random 16-byte SURB id.
   *
   * @returns The id.
   *
   * @example Usage
   * ```ts ignore
   * const surbId = client.newSurbId();
   * ```
   */
  newSurbId(): Uint8Array {
    return randomBytes(ID_LENGTH);
  }

  /**
   * A fresh random 16-byte query id.
   *
   * @returns The id.
   *
   * @example Usage
   * ```ts ignore
   * const queryId = client.newQueryId();
   * ```
   */
  newQueryId(): Uint8Array {
    return randomIdView(ID_LENGTH).slice();
  }

  // -------------------------------------------------------------------------
  // Legacy messages

  /**
   * Sends a message to a service without a SURB. The daemon reports nothing
   * back, not even failures.
   *
   * @param payload Message bytes (≤ `sphinxGeometry.userForwardPayloadLength`).
   * @param destinationIdHash The service node's identity hash (32 bytes).
   * @param recipientQueueId The service's queue id (1–32 bytes).
   * @returns When the request has been written.
   * @throws {PayloadTooLargeError} When the payload exceeds the geometry.
   * @throws {ConnectionError} When the daemon is offline or unreachable.
   *
   * @example Usage
   * ```ts ignore
   * const echo = client.getService("echo");
   * await client.sendMessageWithoutReply(bytes, echo.destinationIdHash, echo.recipientQueueId);
   * ```
   */
  async sendMessageWithoutReply(
    payload: Uint8Array,
    destinationIdHash: Uint8Array,
    recipientQueueId: Uint8Array,
  ): Promise<void> {
    await postMessage(
      this.#session,
      null,
      null,
      payload,
      destinationIdHash,
      recipientQueueId,
    );
  }

  /**
   * Sends a message with a SURB. Progress arrives as events: one
   * `message_sent` (with `error` on failure), then at most one
   * `message_reply` with the same `surbId`.
   *
   * @param surbId A fresh 16-byte SURB id (see {@linkcode ThinClient.newSurbId}).
   * @param payload Message bytes (≤ `sphinxGeometry.userForwardPayloadLength`).
   * @param destinationIdHash The service node's identity hash (32 bytes).
   * @param recipientQueueId The service's queue id (1–32 bytes).
   * @param options An optional message id.
   * @returns When the request has been written.
   * @throws {PayloadTooLargeError} When the payload exceeds the geometry.
   * @throws {ConnectionError} When the daemon is offline or unreachable.
   *
   * @example Usage
   * ```ts ignore
   * const surbId = client.newSurbId();
   * await client.sendMessage(surbId, bytes, echo.destinationIdHash, echo.recipientQueueId);
   * ```
   */
  async sendMessage(
    surbId: Uint8Array,
    payload: Uint8Array,
    destinationIdHash: Uint8Array,
    recipientQueueId: Uint8Array,
    options: SendMessageOptions = {},
  ): Promise<void> {
    checkLength("surbId", surbId, ID_LENGTH);
    if (options.messageId !== undefined) {
      checkLength("messageId", options.messageId, ID_LENGTH);
    }
    await postMessage(
      this.#session,
      surbId,
      options.messageId ?? null,
      payload,
      destinationIdHash,
      recipientQueueId,
    );
  }

  /**
   * Sends a message with a SURB and waits for the reply. The reply payload
   * is the whole SURB payload: fixed-size and zero-padded.
   *
   * Rejects when the daemon reports the send failed, when the daemon loses
   * the mixnet, or when the session is lost on reconnect; always pass a
   * signal with a timeout (a reply can be lost in the mixnet). kpclientd
   * v0.0.99 also drops, without a word, a reply that reaches it later than
   * the expected round trip + 4.5 s, which happens when the same daemon is
   * busy decrypting Pigeonhole replies (seconds of CTIDH each): retry after a
   * timeout rather than waiting longer.
   *
   * @param payload Message bytes (≤ `sphinxGeometry.userForwardPayloadLength`).
   * @param destinationIdHash The service node's identity hash (32 bytes).
   * @param recipientQueueId The service's queue id (1–32 bytes).
   * @param options Abort signal.
   * @returns The reply payload.
   * @throws {PayloadTooLargeError} When the payload exceeds the geometry.
   * @throws {ConnectionError} When the daemon is offline, unreachable, or loses the session.
   *
   * @example Usage
   * ```ts ignore
   * const echo = client.getService("echo");
   * const reply = await client.blockingSendMessage(bytes, echo.destinationIdHash,
   *   echo.recipientQueueId, { signal: AbortSignal.timeout(60_000) });
   * ```
   */
  blockingSendMessage(
    payload: Uint8Array,
    destinationIdHash: Uint8Array,
    recipientQueueId: Uint8Array,
    options: CallOptions = {},
  ): Promise<Uint8Array> {
    return sendAndWait(
      this.#session,
      payload,
      destinationIdHash,
      recipientQueueId,
      options.signal,
    );
  }

  // -------------------------------------------------------------------------
  // Generic request/reply

  /**
   * Sends a request that carries a `queryId` and waits for its reply. This is
   * the primitive every typed method uses; it does not interpret
   * `errorCode` (see {@linkcode ThinClient.check}). Requests still waiting
   * when the connection drops are re-sent after reconnecting.
   *
   * Aborting a `start_resending_*` request also sends the matching cancel to
   * the daemon.
   *
   * @param request The request (with a fresh `queryId`).
   * @param options Abort signal.
   * @returns The reply of the matching kind.
   * @throws {RangeError} When the query id, a capability or a box index has
   *   the wrong length (nothing is sent).
   * @throws {ClientClosedError} When the client closes before the reply.
   *
   * @example Usage
   * ```ts ignore
   * const reply = await client.request({ kind: "get_directory_authorities", queryId: client.newQueryId() });
   * ThinClient.check(reply);
   * ```
   */
  request<R extends Request & { queryId: Uint8Array }>(
    request: R,
    options: CallOptions = {},
  ): Promise<ResponseOf<ReplyKindFor<R["kind"]>>> {
    return this.#request(request, options, null) as Promise<
      ResponseOf<ReplyKindFor<R["kind"]>>
    >;
  }

  /**
   * The one path of the typed calls: gives `fields` its kind and a fresh
   * query id, sends it, and settles with the reply of the matching kind, or
   * with the error `check` makes of its error code (a DaemonError unless
   * told otherwise). The fields object becomes the request (no copy).
   */
  #call<K extends QueryKind>(
    kind: K,
    fields: Fields<K>,
    options: CallOptions,
    check: ReplyCheck = daemonError,
  ): Promise<ResponseOf<ReplyKindFor<K>>> {
    const request = fields as unknown as QueryRequest;
    request.kind = kind;
    request.queryId = queryId();
    return this.#request(request, options, check) as Promise<
      ResponseOf<ReplyKindFor<K>>
    >;
  }

  #request(
    request: QueryRequest,
    options: CallOptions,
    check: ReplyCheck | null,
  ): Promise<unknown> {
    try {
      this.#session.assertOpen();
      checkLength("queryId", request.queryId, ID_LENGTH);
      checkCapFields(request);
      options.signal?.throwIfAborted();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#session.requests.add(request, options.signal, check);
  }

  /**
   * Throws the error a reply's `errorCode` stands for (thin-client
   * namespace); does nothing for code 0.
   *
   * @param reply A reply with an `errorCode`.
   * @param operation The request kind, for the message (defaults from the reply kind).
   * @throws {DaemonError} When `errorCode` is not 0.
   *
   * @example Usage
   * ```ts
   * import { ThinClient } from "@katzenpost/thinclient";
   * ThinClient.check({ kind: "new_keypair_reply", errorCode: 0 }); // no throw
   * ```
   */
  static check(
    reply: { kind: string; errorCode: number },
    operation?: string,
  ): void {
    if (reply.errorCode !== 0) {
      throw new DaemonError(
        reply.errorCode,
        operation ?? reply.kind.replace(/_reply$/, ""),
      );
    }
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
    return keypairOf(await this.#call("new_keypair", { seed: s }, options));
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
    const r = await this.#call("encrypt_read", {
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
    const r = await this.#call("encrypt_write", {
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
   * plaintext (by default a read of a box not yet written waits until it is
   * written).
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
      await this.#call(
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
    await this.#call(
      "cancel_resending_encrypted_message",
      { envelopeHash },
      options,
    );
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
    const r = await this.#call("next_message_box_index", {
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
   * const a = await client.getMessageBoxIndexCounter(first);
   * ```
   */
  async getMessageBoxIndexCounter(
    messageBoxIndex: MessageBoxIndex,
    options: CallOptions = {},
  ): Promise<bigint> {
    const r = await this.#call("get_message_box_index_counter", {
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
    await this.#call(
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
    await this.#call("cancel_resending_copy_command", {
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
   *   fileBytes, writeCap, index, true, true);
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
    const r = await this.#call("create_courier_envelopes_from_payload", {
      payload,
      destWriteCap: capBytes(destWriteCap, WriteCap),
      destStartIndex: capBytes(destStartIndex, MessageBoxIndex),
      isStart,
      isLast,
    }, options);
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
   *   [{ payload: a, writeCap: capA, startIndex: idxA }], true, true, null);
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
    const r = await this.#call("create_courier_envelopes_from_multi_payload", {
      destinations: destinations.map((d) => ({
        payload: d.payload,
        writeCap: capBytes(d.writeCap, WriteCap),
        startIndex: capBytes(d.startIndex, MessageBoxIndex),
      })),
      isStart,
      isLast,
      buffer,
    }, options);
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
   * const r = await client.createCourierEnvelopesFromTombstoneRange(writeCap, start, 10, true, true, null);
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
    const r = await this.#call(
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
   * const minted = await client.voucherMint(myWriteCap, "alice");
   * ```
   */
  async voucherMint(
    messageWriteCap: WriteCap,
    displayName: string,
    options: CallOptions = {},
  ): Promise<VoucherMintResult> {
    const r = await this.#call("voucher_mint", {
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
   * const inducted = await client.voucherInduct(voucher, payload, whoReply);
   * ```
   */
  async voucherInduct(
    voucher: Uint8Array,
    voucherPayload: Uint8Array,
    whoReply: Uint8Array,
    options: CallOptions = {},
  ): Promise<VoucherInductResult> {
    const r = await this.#call("voucher_induct", {
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
   * const opened = await client.voucherOpen(minted.voucherSecretKey, sealed, myWriteCap);
   * ```
   */
  async voucherOpen(
    voucherSecretKey: Uint8Array,
    sealedReply: Uint8Array,
    messageWriteCap: WriteCap,
    options: CallOptions = {},
  ): Promise<VoucherOpenResult> {
    const r = await this.#call("voucher_open", {
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
    const r = await this.#call("voucher_derive_stream", { voucher }, options);
    return voucherStreamOf(r);
  }

  // -------------------------------------------------------------------------
  // Lifecycle

  /**
   * Ends the session: sends `thin_close` (the daemon drops all state of this
   * session, including operations in flight), closes the connection, rejects
   * pending calls with {@linkcode ClientClosedError} and ends event
   * iterators. Idempotent.
   *
   * @returns When the client is closed, after the daemon has closed its side
   *   of the connection (2 s at most). kpclientd v0.0.99 forgets the
   *   `instanceToken` a moment later still: a new client should use a new
   *   token (the default) rather than this one.
   *
   * @example Usage
   * ```ts ignore
   * await client.close();
   * ```
   */
  close(): Promise<void> {
    return this.#session.shutdown(true, undefined);
  }

  /**
   * Closes the connection WITHOUT ending the daemon session: the daemon keeps
   * it (and its Pigeonhole operations) for its grace period, so another
   * client connecting with the same `instanceToken` resumes it. Pending calls
   * reject with {@linkcode ClientClosedError}. Idempotent.
   *
   * @returns When the connection is closed: after the daemon has closed its
   *   side (2 s at most). kpclientd v0.0.99 unregisters the old connection
   *   just after closing it, and a resume that overtook that would be
   *   unregistered in its place, so resume only after this resolves.
   *
   * @example Usage
   * ```ts ignore
   * const token = client.instanceToken;
   * await client.detach();
   * const again = await ThinClient.connect(dialer, { instanceToken: token });
   * ```
   */
  detach(): Promise<void> {
    return this.#session.shutdown(false, undefined);
  }

  /**
   * Same as {@linkcode ThinClient.close}, for `await using`.
   *
   * @returns When the client is closed.
   *
   * @example Usage
   * ```ts ignore
   * await using client = await ThinClient.connect(dialer);
   * ```
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
