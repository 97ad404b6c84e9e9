/**
 * {@linkcode ThinClientCore}: the part of the client that is not
 * Pigeonhole: connection and daemon state, the PKI document and services,
 * events, the mixnet messages with SURBs, generic requests and the
 * lifecycle. {@linkcode ThinClient} (lib/client.ts) extends it with the
 * Pigeonhole calls.
 *
 * The class is a facade over small parts: the session (lib/_session.ts)
 * dials, reads, redials with backoff (lib/_backoff.ts) and writes; the
 * requests (lib/_requests.ts) wait for their replies, and every typed call
 * goes through their `call`; the dispatcher (lib/_dispatch.ts) turns frames
 * into daemon state (lib/_daemon_state.ts), replies and events; messages go
 * through lib/_messages.ts.
 *
 * @module
 */
import { randomBytes, randomIdView } from "./_bytes.ts";
import type {
  CallOptions,
  ReplyKindFor,
  ThinClientOptions,
} from "./_options.ts";
import { call, checkLength, replyError, sendRequest } from "./_requests.ts";
import { Session } from "./_session.ts";
import { postMessage, sendAndWait } from "./_messages.ts";
import type { Dialer } from "./conn.ts";
import type {
  ClientState,
  EventOf,
  EventsOptions,
  ThinClientEvent,
} from "./events.ts";
import type { PkiDocument, ServiceDescriptor } from "./pki.ts";
import {
  type DirectoryAuthority,
  ID_LENGTH,
  type PigeonholeGeometry,
  type Request,
  type ResponseOf,
  type SphinxGeometry,
} from "./protocol.ts";

/**
 * Options of {@linkcode ThinClient.sendMessage}.
 *
 * @example Usage
 * ```ts ignore
 * const options: SendMessageOptions = { messageId: client.newMessageId() };
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

let sessionOfCore: (client: ThinClientCore) => Session;

/**
 * The part of every {@linkcode ThinClient} that is not Pigeonhole: daemon
 * and connection state, the PKI document and services, events, messages
 * with SURBs, generic requests, and closing. Get one from
 * {@linkcode ThinClient.connect}; type a parameter with this class when a
 * function needs no Pigeonhole call.
 *
 * @example Usage
 * ```ts ignore
 * import type { ThinClientCore } from "@katzenpost/thinclient";
 *
 * function echoService(client: ThinClientCore) {
 *   return client.getService("echo");
 * }
 * ```
 */
export class ThinClientCore implements AsyncDisposable {
  readonly #session: Session;

  static {
    sessionOfCore = (client) => client.#session;
  }

  /**
   * Checks the options and builds the parts; dials nothing (see
   * {@linkcode ThinClient.connect}).
   *
   * @param dialer Opens the connection (see the transport module).
   * @param options Instance token, reconnection policy, timeouts.
   * @throws {RangeError} When an option is out of range.
   *
   * @example Usage
   * ```ts ignore
   * const client = await ThinClient.connect(dialer, { instanceToken: savedToken });
   * ```
   */
  protected constructor(dialer: Dialer, options: ThinClientOptions) {
    this.#session = new Session(dialer, options);
  }

  // -------------------------------------------------------------------------
  // State

  /**
   * The 16-byte client instance token. Persist it and pass it as
   * `instanceToken` to resume this session from another process.
   *
   * @example Usage
   * ```ts ignore
   * localStorage.setItem("token", JSON.stringify([...client.instanceToken]));
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
   * const client = await connect("thinclient.toml", { instanceToken: savedToken });
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
   * Where the client stands: `connected`, `daemon_offline`, `reconnecting`
   * or `closed` (see {@linkcode ClientState}). Each change is also a `state`
   * event.
   *
   * @example Usage
   * ```ts ignore
   * if (client.state === "daemon_offline") console.log("waiting for the mixnet");
   * ```
   */
  get state(): ClientState {
    return this.#session.clientState;
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
   * @param options Abort signal, buffer size, and the event types wanted.
   * @returns An async iterator of those events (and `events_dropped`).
   * @throws {RangeError} When `bufferSize` or `types` is not valid.
   *
   * @example Usage
   * ```ts ignore
   * const signal = AbortSignal.timeout(10_000);
   * for await (const ev of client.events({ types: ["message_reply"], signal })) {
   *   if (ev.type === "message_reply") console.log(ev.payload.length);
   * }
   * ```
   */
  events<T extends ThinClientEvent["type"] = ThinClientEvent["type"]>(
    options: EventsOptions<T> = {},
  ): AsyncIterableIterator<EventOf<T>> {
    return this.#session.dispatcher.subscribe(
      options,
      this.isClosed,
    ) as AsyncIterableIterator<EventOf<T>>;
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
    const r = await call(this.#session, "get_pki_document", { epoch }, options);
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
    const r = await call(
      this.#session,
      "get_directory_authorities",
      {},
      options,
    );
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
   * const echo = client.getService("echo");
   * await client.sendMessage(client.newSurbId(), bytes, echo.destinationIdHash, echo.recipientQueueId);
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
    return sendRequest(this.#session, request, options.signal, null) as Promise<
      ResponseOf<ReplyKindFor<R["kind"]>>
    >;
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
    const error = replyError(reply, operation);
    if (error !== null) throw error;
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

/** The session of a client, for the subclass in lib/client.ts. */
export function sessionOf(client: ThinClientCore): Session {
  return sessionOfCore(client);
}
