/**
 * {@linkcode ThinClient}: one connection to kpclientd, with the handshake,
 * request correlation, events, reconnection and session resumption.
 *
 * @module
 */
import { idKey, randomBytes, randomIdView, toHex } from "./_bytes.ts";
import {
  abortReason,
  type Deferred,
  deferred,
  deferredUnmarked,
  within,
} from "./_async.ts";
import type { Conn, Dialer } from "./conn.ts";
import { MessageBoxIndex, ReadCap, WriteCap } from "./caps.ts";
import {
  CancelledError,
  ClientClosedError,
  ConnectionError,
  CopyCommandError,
  DaemonError,
  errorFromResendCode,
  PayloadTooLargeError,
  ProtocolError,
  ThinClientError,
  ThinErrorCode,
} from "./errors.ts";
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
  need,
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
import {
  EventQueue,
  type EventsOptions,
  type ThinClientEvent,
} from "./events.ts";
import {
  type _ChunkSource,
  _FrameReader,
  _FrameWriter,
  _sealFrame,
  _streamSource,
  FrameDecoder,
  HANDSHAKE_MAX_FRAME_SIZE,
  MAX_FRAME_SIZE,
} from "./framing.ts";
import { blake2b256 } from "./hash.ts";
import {
  findServices,
  parsePkiDocument,
  type PkiDocument,
  type ServiceDescriptor,
} from "./pki.ts";
import {
  _encodeRequest,
  decodeFrameBody,
  type DirectoryAuthority,
  HASH_LENGTH,
  ID_LENGTH,
  type PigeonholeGeometry,
  type Request,
  type RequestKind,
  type Response,
  type ResponseKind,
  type ResponseOf,
  type SphinxGeometry,
} from "./protocol.ts";

/**
 * Reconnection policy: exponential backoff from `initialDelay` to `maxDelay`.
 *
 * @example Usage
 * ```ts ignore
 * await ThinClient.connect(dialer, { reconnect: { initialDelay: 200, maxDelay: 5000 } });
 * ```
 */
export interface ReconnectOptions {
  /**
   * Milliseconds before the first redial.
   * @default {1000}
   */
  initialDelay?: number;
  /**
   * Upper bound of the doubling delay, in milliseconds.
   * @default {60000}
   */
  maxDelay?: number;
  /**
   * Give up (and close the client with a ConnectionError) after this many
   * failed attempts in a row.
   * @default {Infinity}
   */
  maxAttempts?: number;
}

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
 * Options of every call that waits on the daemon.
 *
 * @example Usage
 * ```ts ignore
 * await client.getDirectoryAuthorities({ signal: AbortSignal.timeout(5000) });
 * ```
 */
export interface CallOptions {
  /** Aborts the wait; the call rejects with `signal.reason`. */
  signal?: AbortSignal;
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

interface Pending {
  request: Request & { queryId: Uint8Array };
  expect: ResponseKind;
  settle: Deferred<Response>;
  /** Its map key (see idKey). */
  key: string;
  /** The caller's signal; while pending, the entry is in that signal's list. */
  watch: AbortWatch | null;
  prev: Pending | null;
  next: Pending | null;
}

/**
 * The pending requests one caller's signal aborts, linked through
 * `Pending.prev/next`: the signal gets one "abort" listener for all of them,
 * and a request costs no listener, closure or container entry of its own.
 */
interface AbortWatch {
  signal: AbortSignal;
  head: Pending | null;
  listener: () => void;
}

interface Handshake {
  frames: _FrameReader;
  resumed: boolean;
  appId: Uint8Array;
}

const PKI_CACHE_EPOCHS = 5n;
const CANCEL_RETRY_MS = 1000;
const CANCEL_MAX_ATTEMPTS = 30;
/**
 * How long close()/detach() wait for the daemon to close its side after ours.
 * kpclientd (v0.0.99) unregisters a closed connection's app ID only after it
 * closes the socket; a client that resumes the same token before that would
 * have its new connection unregistered and its replies queued for nobody.
 */
const DAEMON_CLOSE_WAIT_MS = 2000;

/** The query id of a request the client builds itself (no copy needed). */
function queryId(): Uint8Array {
  return randomIdView(ID_LENGTH);
}

function replyKindOf(kind: RequestKind): ResponseKind {
  return `${kind}_reply` as ResponseKind;
}

function frameSizeOption(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(
      `Cannot use ${name}: '${value}' is not a positive integer`,
    );
  }
  return value;
}

function checkLength(what: string, value: Uint8Array, length: number): void {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(`Cannot use ${what}: expected a Uint8Array`);
  }
  if (value.length !== length) {
    throw new RangeError(
      `Cannot use ${what}: length ${value.length} is not ${length} bytes`,
    );
  }
}

// Request fields holding caps and indices: the daemon drops the connection on
// a wrong length, and the client would re-send the request after every
// reconnect, so they are checked before anything is sent.
const CAP_FIELDS: readonly (readonly [string, number])[] = [
  ["readCap", ReadCap.LENGTH],
  ["writeCap", WriteCap.LENGTH],
  ["messageBoxIndex", MessageBoxIndex.LENGTH],
  ["destWriteCap", WriteCap.LENGTH],
  ["destStartIndex", MessageBoxIndex.LENGTH],
  ["messageWriteCap", WriteCap.LENGTH],
];

function checkCapFields(request: Request): void {
  const fields = request as unknown as Record<string, unknown>;
  // Indexed, not `for (const [name, length] of …)`: that allocates per field.
  for (let i = 0; i < CAP_FIELDS.length; i++) {
    const field = CAP_FIELDS[i]!;
    const value = fields[field[0]];
    if (value !== null && value !== undefined) {
      checkLength(field[0], value as Uint8Array, field[1]);
    }
  }
  if (request.kind === "create_courier_envelopes_from_multi_payload") {
    for (const d of request.destinations) {
      checkLength("destinations.writeCap", d.writeCap, WriteCap.LENGTH);
      checkLength(
        "destinations.startIndex",
        d.startIndex,
        MessageBoxIndex.LENGTH,
      );
    }
  }
}

/** How the client writes to a connection. */
interface Sink {
  write(chunk: Uint8Array): Promise<void>;
  /** Ends the sending side (half-close). */
  closeWrite(): Promise<void>;
  release(): void;
}

function hasDirectIo(conn: Conn): boolean {
  return conn.readChunk !== undefined && conn.writeChunk !== undefined &&
    conn.closeWrite !== undefined;
}

/** Reads the connection directly when it can (see Conn.readChunk), else its stream. */
function connSource(conn: Conn): _ChunkSource {
  if (!hasDirectIo(conn)) return _streamSource(conn.readable);
  return { read: () => conn.readChunk!(), release: () => {} };
}

/** Writes the connection directly when it can, else through its stream. */
function connSink(conn: Conn): Sink {
  if (hasDirectIo(conn)) {
    return {
      write: (chunk) => conn.writeChunk!(chunk),
      closeWrite: () => conn.closeWrite!(),
      release: () => {},
    };
  }
  const writer = conn.writable.getWriter();
  return {
    write: (chunk) => writer.write(chunk),
    closeWrite: () => writer.close(),
    release: () => writer.releaseLock(),
  };
}

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
  readonly #dialer: Dialer;
  readonly #instanceToken: Uint8Array;
  readonly #reconnect: Required<ReconnectOptions> | null;
  readonly #handshakeTimeout: number;
  readonly #maxFrameSize: number;
  readonly #handshakeMaxFrameSize: number;

  #conn: Conn | null = null;
  #sink: Sink | null = null;
  #frameWriter: _FrameWriter | null = null;
  /** Settles when the read loop of the current connection has ended. */
  #readEnded: Promise<void> | null = null;
  #state: "connected" | "reconnecting" | "closed" = "connected";
  #sawShutdown = false;
  readonly #lifetime = new AbortController();
  readonly #closedResult = deferred<void | Error>();
  #closing: Promise<void> | null = null;

  #isConnected = false;
  #daemonToken: Uint8Array = new Uint8Array(ID_LENGTH);
  #appId: Uint8Array = new Uint8Array(ID_LENGTH);
  #resumed = false;
  #sphinx: SphinxGeometry | null = null;
  #pigeonhole: PigeonholeGeometry | null = null;
  #document: PkiDocument | null = null;
  readonly #documents = new Map<bigint, PkiDocument>();

  readonly #pending = new Map<string, Pending>();
  readonly #surbWaiters = new Map<string, Deferred<Uint8Array>>();
  readonly #cancelling = new Map<
    string,
    { request: Request; attempts: number }
  >();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  readonly #subscribers = new Set<EventQueue>();
  readonly #watches = new WeakMap<AbortSignal, AbortWatch>();

  private constructor(dialer: Dialer, options: ThinClientOptions) {
    this.#dialer = dialer;
    if (options.instanceToken !== undefined) {
      checkLength("instanceToken", options.instanceToken, ID_LENGTH);
      if (options.instanceToken.every((b) => b === 0)) {
        throw new RangeError("Cannot use instanceToken: it is all zero bytes");
      }
      this.#instanceToken = options.instanceToken.slice();
    } else {
      this.#instanceToken = randomBytes(ID_LENGTH);
    }
    const r = options.reconnect ?? true;
    this.#reconnect = r === false ? null : {
      initialDelay: (r === true ? undefined : r.initialDelay) ?? 1000,
      maxDelay: (r === true ? undefined : r.maxDelay) ?? 60_000,
      maxAttempts: (r === true ? undefined : r.maxAttempts) ?? Infinity,
    };
    this.#handshakeTimeout = options.handshakeTimeout ?? 60_000;
    this.#maxFrameSize = frameSizeOption(
      "maxFrameSize",
      options.maxFrameSize ?? MAX_FRAME_SIZE,
    );
    this.#handshakeMaxFrameSize = Math.min(
      this.#maxFrameSize,
      frameSizeOption(
        "handshakeMaxFrameSize",
        options.handshakeMaxFrameSize ?? HANDSHAKE_MAX_FRAME_SIZE,
      ),
    );
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
    await client.#connectFirst(options.signal);
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
    return this.#instanceToken.slice();
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
    return this.#daemonToken.slice();
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
    return this.#appId.slice();
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
    return this.#resumed;
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
    return this.#isConnected;
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
    return this.#state === "connected" && this.#conn !== null;
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
    return this.#state === "closed";
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
    return { ...this.#sphinx! };
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
    return { ...this.#pigeonhole! };
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
    return this.#closedResult.promise;
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
    // `queue` is still unset when the constructor ends the queue of an
    // already aborted signal; such a queue is never subscribed.
    let queue: EventQueue | undefined = undefined;
    queue = new EventQueue(
      options.bufferSize ?? 1024,
      () => {
        if (queue !== undefined) this.#subscribers.delete(queue);
      },
      options.signal,
    );
    if (this.#state === "closed" || options.signal?.aborted === true) {
      queue.end();
    } else this.#subscribers.add(queue);
    return queue;
  }

  #emit(event: ThinClientEvent): void {
    for (const s of this.#subscribers) s.push(event);
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
    if (this.#document === null) {
      throw new ThinClientError(
        "Cannot get PKI document: the daemon has not delivered one yet",
      );
    }
    return this.#document;
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
    return this.#documents.get(epoch) ?? this.pkiDocument();
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
    return this.#document === null
      ? []
      : findServices(this.#document, capability);
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
    const all = this.getServices(capability);
    if (all.length === 0) {
      throw new ThinClientError(
        `Cannot find service '${capability}': no service node offers it in the current PKI document`,
      );
    }
    const pick = new Uint32Array(1);
    crypto.getRandomValues(pick);
    return all[pick[0]! % all.length]!;
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
    const reply = await this.request(
      { kind: "get_pki_document", queryId: queryId(), epoch },
      options,
    );
    ThinClient.check(reply);
    return { epoch: reply.epoch, payload: reply.payload ?? new Uint8Array(0) };
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
    const reply = await this.request(
      { kind: "get_directory_authorities", queryId: queryId() },
      options,
    );
    ThinClient.check(reply);
    return reply.authorities ?? [];
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

  #checkSend(
    payload: Uint8Array,
    destinationIdHash: Uint8Array,
    queueId: Uint8Array,
  ): void {
    this.#assertOpen();
    if (!(payload instanceof Uint8Array)) {
      throw new TypeError("Cannot send message: payload is not a Uint8Array");
    }
    checkLength("destinationIdHash", destinationIdHash, HASH_LENGTH);
    if (
      !(queueId instanceof Uint8Array) || queueId.length < 1 ||
      queueId.length > 32
    ) {
      throw new RangeError(
        `Cannot send message: recipientQueueId must be 1 to 32 bytes, got ${
          queueId instanceof Uint8Array ? queueId.length : typeof queueId
        }`,
      );
    }
    const limit = this.#sphinx!.userForwardPayloadLength;
    if (payload.length > limit) {
      throw new PayloadTooLargeError(payload.length, limit, "message payload");
    }
    if (!this.#isConnected) {
      throw new ConnectionError(
        "Cannot send message: the daemon is offline (not connected to the mixnet)",
      );
    }
    if (!this.isDaemonReachable) {
      throw new ConnectionError(
        `Cannot send message: not connected to the daemon at '${this.#dialer.address}'`,
      );
    }
  }

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
    this.#checkSend(payload, destinationIdHash, recipientQueueId);
    await this.#write({
      kind: "send_message",
      id: null,
      withSurb: false,
      surbId: null,
      destinationIdHash,
      recipientQueueId,
      payload,
    });
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
    this.#checkSend(payload, destinationIdHash, recipientQueueId);
    await this.#write({
      kind: "send_message",
      id: options.messageId ?? null,
      withSurb: true,
      surbId,
      destinationIdHash,
      recipientQueueId,
      payload,
    });
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
  async blockingSendMessage(
    payload: Uint8Array,
    destinationIdHash: Uint8Array,
    recipientQueueId: Uint8Array,
    options: CallOptions = {},
  ): Promise<Uint8Array> {
    options.signal?.throwIfAborted();
    this.#checkSend(payload, destinationIdHash, recipientQueueId);
    const surbId = this.newSurbId();
    const key = idKey(surbId);
    const waiter = deferred<Uint8Array>();
    this.#surbWaiters.set(key, waiter);
    const signal = options.signal;
    const onAbort = (): void => {
      this.#surbWaiters.delete(key);
      waiter.reject(abortReason(signal!));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await this.#write({
        kind: "send_message",
        id: null,
        withSurb: true,
        surbId,
        destinationIdHash,
        recipientQueueId,
        payload,
      });
      return await waiter.promise;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      this.#surbWaiters.delete(key);
    }
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
    try {
      this.#assertOpen();
      checkLength("queryId", request.queryId, ID_LENGTH);
      checkCapFields(request);
      options.signal?.throwIfAborted();
    } catch (err) {
      return Promise.reject(err);
    }
    const key = idKey(request.queryId);
    if (this.#pending.has(key)) {
      return Promise.reject(
        new RangeError(
          `Cannot send request: queryId '${
            toHex(request.queryId)
          }' is already in use`,
        ),
      );
    }
    const entry: Pending = {
      request,
      expect: replyKindOf(request.kind),
      // Returned below, and every caller awaits it: no need to mark it handled.
      settle: deferredUnmarked<Response>(),
      key,
      watch: null,
      prev: null,
      next: null,
    };
    this.#pending.set(key, entry);
    if (options.signal !== undefined) this.#watch(options.signal, entry);
    if (this.isDaemonReachable) this.#send(request);
    return entry.settle.promise as Promise<
      ResponseOf<ReplyKindFor<R["kind"]>>
    >;
  }

  /** Puts a pending request in its signal's list (see AbortWatch). */
  #watch(signal: AbortSignal, p: Pending): void {
    let w = this.#watches.get(signal);
    if (w === undefined) {
      const watch: AbortWatch = {
        signal,
        head: null,
        listener: () => this.#abortWatched(watch),
      };
      w = watch;
      this.#watches.set(signal, watch);
      signal.addEventListener("abort", watch.listener, { once: true });
    }
    p.watch = w;
    p.next = w.head;
    if (w.head !== null) w.head.prev = p;
    w.head = p;
  }

  /**
   * Takes a settled request out of its signal's list, clearing its links so
   * that no stale pointer keeps younger objects alive in the garbage
   * collector. The last one out removes the listener: a listener on an
   * `AbortSignal.timeout()` signal keeps Deno's event loop alive.
   */
  #settled(p: Pending): void {
    const w = p.watch;
    if (w === null) return;
    if (p.prev !== null) p.prev.next = p.next;
    else w.head = p.next;
    if (p.next !== null) p.next.prev = p.prev;
    p.watch = p.prev = p.next = null;
    if (w.head === null) {
      w.signal.removeEventListener("abort", w.listener);
      this.#watches.delete(w.signal);
    }
  }

  #abortWatched(w: AbortWatch): void {
    const reason = abortReason(w.signal);
    const aborted: Pending[] = [];
    for (let p = w.head; p !== null; p = p.next) aborted.push(p);
    for (const p of aborted.reverse()) {
      this.#settled(p);
      if (this.#pending.get(p.key) !== p) continue;
      this.#pending.delete(p.key);
      this.#cancelInDaemon(p.request);
      p.settle.reject(reason);
    }
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

  #cancelInDaemon(request: Request): void {
    let cancel: Request;
    if (request.kind === "start_resending_encrypted_message") {
      cancel = {
        kind: "cancel_resending_encrypted_message",
        queryId: queryId(),
        envelopeHash: request.envelopeHash,
      };
    } else if (request.kind === "start_resending_copy_command") {
      cancel = {
        kind: "cancel_resending_copy_command",
        queryId: queryId(),
        writeCapHash: blake2b256(request.writeCap),
      };
    } else {
      return;
    }
    const startKey = idKey(request.queryId);
    this.#cancelling.set(startKey, { request: cancel, attempts: 0 });
    this.#sendCancel(startKey);
  }

  #sendCancel(startKey: string): void {
    const c = this.#cancelling.get(startKey);
    if (c === undefined || this.#state === "closed") return;
    c.attempts++;
    const fresh = { ...c.request, queryId: queryId() } as Request & {
      queryId: Uint8Array;
    };
    c.request = fresh;
    if (this.isDaemonReachable) this.#send(fresh);
  }

  /** A cancel reply arrived: if the start's reply has not, the start may still be queued. */
  #onCancelReply(resp: Response & { queryId: Uint8Array | null }): void {
    if (resp.queryId === null) return;
    const qk = idKey(resp.queryId);
    for (const [startKey, c] of this.#cancelling) {
      if (!("queryId" in c.request) || idKey(c.request.queryId) !== qk) {
        continue;
      }
      if (c.attempts >= CANCEL_MAX_ATTEMPTS) {
        this.#cancelling.delete(startKey);
        return;
      }
      this.#later(CANCEL_RETRY_MS, () => this.#sendCancel(startKey));
      return;
    }
  }

  #later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    this.#timers.add(t);
  }

  // -------------------------------------------------------------------------
  // Pigeonhole

  #maxPlaintext(): number {
    return this.#pigeonhole!.maxPlaintextPayloadLength;
  }

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
    const r = await this.request({
      kind: "new_keypair",
      queryId: queryId(),
      seed: s,
    }, options);
    ThinClient.check(r);
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
    const r = await this.request({
      kind: "encrypt_read",
      queryId: queryId(),
      readCap: capBytes(readCap, ReadCap),
      messageBoxIndex: capBytes(messageBoxIndex, MessageBoxIndex),
    }, options);
    return encrypted(r, ThinClient.check);
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
    if (plaintext.length > this.#maxPlaintext()) {
      throw new PayloadTooLargeError(
        plaintext.length,
        this.#maxPlaintext(),
        "box plaintext",
      );
    }
    const r = await this.request({
      kind: "encrypt_write",
      queryId: queryId(),
      plaintext,
      writeCap: capBytes(writeCap, WriteCap),
      messageBoxIndex: capBytes(messageBoxIndex, MessageBoxIndex),
    }, options);
    return encrypted(r, ThinClient.check);
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
    const request: Request & {
      kind: "start_resending_encrypted_message";
    } = {
      kind: "start_resending_encrypted_message",
      queryId: queryId(),
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
    if (params.replyIndex !== undefined) request.replyIndex = params.replyIndex;
    if (options.noRetryOnBoxIdNotFound) request.noRetryOnBoxIdNotFound = true;
    if (options.noIdempotentBoxAlreadyExists) {
      request.noIdempotentBoxAlreadyExists = true;
    }
    const r = await this.request(request, options) as ResponseOf<
      "start_resending_encrypted_message_reply"
    >;
    if (r.errorCode !== 0) throw errorFromResendCode(r.errorCode);
    return {
      plaintext: r.plaintext,
      courierIdentityHash: r.courierIdentityHash,
      courierQueueId: r.courierQueueId,
    };
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
    const r = await this.request({
      kind: "cancel_resending_encrypted_message",
      queryId: queryId(),
      envelopeHash,
    }, options);
    ThinClient.check(r);
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
    const r = await this.request({
      kind: "next_message_box_index",
      queryId: queryId(),
      messageBoxIndex: capBytes(messageBoxIndex, MessageBoxIndex),
    }, options);
    ThinClient.check(r);
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
    const r = await this.request({
      kind: "get_message_box_index_counter",
      queryId: queryId(),
      messageBoxIndex: capBytes(messageBoxIndex, MessageBoxIndex),
    }, options);
    ThinClient.check(r);
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
    const r = await this.request({
      kind: "start_resending_copy_command",
      queryId: queryId(),
      writeCap: capBytes(writeCap, WriteCap),
      ...(pin === undefined ? {} : {
        courierIdentityHash: pin.identityHash,
        courierQueueId: pin.queueId,
      }),
    }, options);
    if (r.errorCode === ThinErrorCode.CopyCommandFailed) {
      throw new CopyCommandError(r.replicaErrorCode, r.failedEnvelopeIndex);
    }
    if (r.errorCode === ThinErrorCode.StartResendingCancelled) {
      throw new CancelledError("start_resending_copy_command");
    }
    ThinClient.check(r);
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
    const r = await this.request({
      kind: "cancel_resending_copy_command",
      queryId: queryId(),
      writeCapHash: blake2b256(capBytes(writeCap, WriteCap)),
    }, options);
    ThinClient.check(r);
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
    const r = await this.request({
      kind: "create_courier_envelopes_from_payload",
      queryId: queryId(),
      payload,
      destWriteCap: capBytes(destWriteCap, WriteCap),
      destStartIndex: capBytes(destStartIndex, MessageBoxIndex),
      isStart,
      isLast,
    }, options);
    ThinClient.check(r);
    return {
      envelopes: r.envelopes ?? [],
      nextDestIndex: needCap(
        r.nextDestIndex,
        "next_dest_index",
        MessageBoxIndex,
      ),
    };
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
    const r = await this.request({
      kind: "create_courier_envelopes_from_multi_payload",
      queryId: queryId(),
      destinations: destinations.map((d) => ({
        payload: d.payload,
        writeCap: capBytes(d.writeCap, WriteCap),
        startIndex: capBytes(d.startIndex, MessageBoxIndex),
      })),
      isStart,
      isLast,
      buffer,
    }, options);
    ThinClient.check(r);
    return {
      envelopes: r.envelopes ?? [],
      buffer: r.buffer,
      nextDestIndices: (r.nextDestIndices ?? []).map((b, i) =>
        needCap(b, `next_dest_indices[${i}]`, MessageBoxIndex)
      ),
    };
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
    const r = await this.request({
      kind: "create_courier_envelopes_from_tombstone_range",
      queryId: queryId(),
      destWriteCap: capBytes(destWriteCap, WriteCap),
      destStartIndex: capBytes(destStartIndex, MessageBoxIndex),
      maxCount,
      isStart,
      isLast,
      buffer,
    }, options);
    ThinClient.check(r);
    return {
      envelopes: r.envelopes ?? [],
      buffer: r.buffer,
      nextDestIndex: needCap(
        r.nextDestIndex,
        "next_dest_index",
        MessageBoxIndex,
      ),
    };
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
    const r = await this.request({
      kind: "voucher_mint",
      queryId: queryId(),
      messageWriteCap: capBytes(messageWriteCap, WriteCap),
      displayName,
    }, options);
    ThinClient.check(r);
    return {
      voucher: need(r.voucher, "voucher"),
      voucherPayload: need(r.voucherPayload, "voucher_payload"),
      voucherWriteCap: needCap(
        r.voucherWriteCap,
        "voucher_write_cap",
        WriteCap,
      ),
      voucherReadCap: needCap(r.voucherReadCap, "voucher_read_cap", ReadCap),
      voucherSecretKey: need(r.voucherSecretKey, "voucher_secret_key"),
      voucherPublicKey: need(r.voucherPublicKey, "voucher_public_key"),
    };
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
    const r = await this.request({
      kind: "voucher_induct",
      queryId: queryId(),
      voucher,
      voucherPayload,
      whoReply,
    }, options);
    ThinClient.check(r);
    return {
      displayName: r.displayName,
      mutatedMessageReadCap: needCap(
        r.mutatedMessageReadCap,
        "mutated_message_read_cap",
        ReadCap,
      ),
      sealedReply: need(r.sealedReply, "sealed_reply"),
      voucherWriteCap: needCap(
        r.voucherWriteCap,
        "voucher_write_cap",
        WriteCap,
      ),
      voucherReadCap: needCap(r.voucherReadCap, "voucher_read_cap", ReadCap),
      salt: need(r.salt, "salt"),
    };
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
    const r = await this.request({
      kind: "voucher_open",
      queryId: queryId(),
      voucherSecretKey,
      sealedReply,
      messageWriteCap: capBytes(messageWriteCap, WriteCap),
    }, options);
    ThinClient.check(r);
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
    const r = await this.request({
      kind: "voucher_derive_stream",
      queryId: queryId(),
      voucher,
    }, options);
    ThinClient.check(r);
    return {
      voucherWriteCap: needCap(
        r.voucherWriteCap,
        "voucher_write_cap",
        WriteCap,
      ),
      voucherReadCap: needCap(r.voucherReadCap, "voucher_read_cap", ReadCap),
    };
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
    return this.#shutdown(true, undefined);
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
    return this.#shutdown(false, undefined);
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

  #assertOpen(): void {
    if (this.#state === "closed") throw new ClientClosedError();
  }

  #shutdown(sendClose: boolean, error: Error | undefined): Promise<void> {
    if (this.#closing !== null) return this.#closing;
    this.#state = "closed";
    this.#lifetime.abort(new ClientClosedError());
    this.#closing = (async () => {
      const conn = this.#conn;
      if (conn !== null) {
        await within(
          (async () => {
            if (sendClose) {
              await this.#write({ kind: "thin_close" }).catch(() => {});
            }
            await this.#letDaemonClose();
          })(),
          DAEMON_CLOSE_WAIT_MS,
        );
      }
      this.#dropConn();
      for (const t of this.#timers) clearTimeout(t);
      this.#timers.clear();
      this.#cancelling.clear();
      const reason = error ?? new ClientClosedError();
      for (const p of this.#pending.values()) {
        this.#settled(p);
        p.settle.reject(reason);
      }
      this.#pending.clear();
      for (const w of this.#surbWaiters.values()) w.reject(reason);
      this.#surbWaiters.clear();
      for (const s of [...this.#subscribers]) s.end();
      this.#closedResult.resolve(error);
    })();
    return this.#closing;
  }

  /**
   * Ends our sending side and waits until the daemon has closed its side, so
   * the daemon is done with this connection before close()/detach() resolve.
   */
  async #letDaemonClose(): Promise<void> {
    const sink = this.#sink;
    const frames = this.#frameWriter;
    const readEnded = this.#readEnded;
    if (sink === null || frames === null || readEnded === null) return;
    await frames.idle();
    await sink.closeWrite().catch(() => {});
    await readEnded;
  }

  #dropConn(): void {
    const conn = this.#conn;
    this.#conn = null;
    const sink = this.#sink;
    this.#sink = null;
    this.#frameWriter = null;
    this.#readEnded = null;
    sink?.release();
    if (conn !== null) {
      try {
        conn.close();
      } catch {
        // already closed
      }
    }
  }

  /**
   * Encodes a request into a frame and queues it on the connection.
   *
   * @returns When it has been written.
   * @throws {RangeError} When the frame is too large.
   * @throws {ConnectionError} When there is no connection.
   */
  #queue(request: Request): Promise<void> {
    const frame = _sealFrame(_encodeRequest(request, 4));
    const frames = this.#frameWriter;
    if (frames === null) {
      throw new ConnectionError(
        `Cannot write to daemon at '${this.#dialer.address}': not connected`,
      );
    }
    return frames.write(frame);
  }

  /**
   * Queues a request without waiting. A failed write needs no handling here:
   * the reader notices the broken connection, and pending requests are
   * re-sent after reconnecting.
   */
  #send(request: Request): void {
    try {
      void this.#queue(request);
    } catch {
      // As for a failed write.
    }
  }

  /** Queues a request and waits until it has been written. */
  async #write(request: Request): Promise<void> {
    const written = this.#queue(request);
    try {
      await written;
    } catch (err) {
      throw new ConnectionError(
        `Cannot write to daemon at '${this.#dialer.address}': connection failed`,
        { cause: err },
      );
    }
  }

  async #connectFirst(signal: AbortSignal | undefined): Promise<void> {
    const sig = signal === undefined
      ? this.#lifetime.signal
      : AbortSignal.any([signal, this.#lifetime.signal]);
    try {
      const hs = await this.#dialAndHandshake(sig);
      this.#readEnded = this.#readLoop(hs.frames);
    } catch (err) {
      this.#state = "closed";
      this.#lifetime.abort();
      this.#closedResult.resolve(
        err instanceof Error ? err : new Error(String(err)),
      );
      throw err;
    }
  }

  /** Dials, runs the handshake, installs the connection. */
  async #dialAndHandshake(signal: AbortSignal): Promise<Handshake> {
    signal.throwIfAborted();
    // The timeout covers the dial too: a dial that never completes must not
    // stall connect() or the reconnect loop.
    const timeoutCtl = new AbortController();
    const timer = setTimeout(
      () =>
        timeoutCtl.abort(
          new ConnectionError(
            `Cannot complete handshake with daemon at '${this.#dialer.address}': no answer within ${this.#handshakeTimeout} ms`,
          ),
        ),
      this.#handshakeTimeout,
    );
    const hsSignal = AbortSignal.any([signal, timeoutCtl.signal]);
    let conn: Conn;
    try {
      conn = await this.#dialer.dial({ signal: hsSignal });
    } catch (err) {
      clearTimeout(timer);
      if (hsSignal.aborted) throw abortReason(hsSignal);
      if (err instanceof ThinClientError) throw err;
      throw new ConnectionError(
        `Cannot dial daemon at '${this.#dialer.address}'`,
        {
          cause: err,
        },
      );
    }
    if (hsSignal.aborted) {
      // A dialer that ignored the signal: its late connection is not used.
      clearTimeout(timer);
      try {
        conn.close();
      } catch {
        // ignore
      }
      throw abortReason(hsSignal);
    }
    // Until the session token is sent, only the status and the PKI document
    // may arrive: a small limit keeps a wrong peer from costing 40 MiB.
    // Bodies are views of the chunks read: each is decoded (its byte strings
    // copied out) before the next read.
    const decoder = new FrameDecoder(this.#handshakeMaxFrameSize);
    const frames = new _FrameReader(connSource(conn), decoder, false);
    const onAbort = (): void => {
      try {
        conn.close();
      } catch {
        // ignore
      }
    };
    hsSignal.addEventListener("abort", onAbort, { once: true });
    const next = async (): Promise<Response> => {
      let body: Uint8Array | null;
      try {
        body = await frames.next();
      } catch (err) {
        if (hsSignal.aborted) throw abortReason(hsSignal);
        if (
          err instanceof ProtocolError &&
          decoder.maxFrameSize < this.#maxFrameSize &&
          err.message.includes("exceeds maximum")
        ) {
          throw new ProtocolError(
            `Cannot complete handshake with daemon at '${this.#dialer.address}': ${err.message} before the session token (raise the handshakeMaxFrameSize option if the daemon's PKI document is that large)`,
            { cause: err },
          );
        }
        if (err instanceof ThinClientError) throw err;
        throw new ConnectionError(
          `Cannot complete handshake with daemon at '${this.#dialer.address}': connection failed`,
          { cause: err },
        );
      }
      if (hsSignal.aborted) throw abortReason(hsSignal);
      if (body === null) {
        throw new ConnectionError(
          `Cannot complete handshake with daemon at '${this.#dialer.address}': connection closed by the daemon`,
        );
      }
      return decodeFrameBody(body, false);
    };
    try {
      const first = await next();
      if (first.kind === "shutdown_event") {
        throw new ConnectionError(
          `Cannot complete handshake with daemon at '${this.#dialer.address}': the daemon is shutting down`,
        );
      }
      if (first.kind !== "connection_status_event") {
        throw new ProtocolError(
          `Cannot complete handshake: first frame is '${first.kind}', expected 'connection_status_event'`,
        );
      }
      if (first.sphinxGeometry === null || first.pigeonholeGeometry === null) {
        throw new ProtocolError(
          "Cannot complete handshake: connection_status_event lacks a geometry (incompatible daemon)",
        );
      }
      // On a reconnect the status may have changed while we were away.
      this.#applyStatus(first, this.#sphinx !== null);
      let second = await next();
      while (second.kind === "connection_status_event") {
        this.#applyStatus(second, true);
        second = await next();
      }
      if (second.kind !== "new_pki_document_event") {
        throw new ProtocolError(
          `Cannot complete handshake: second frame is '${second.kind}', expected 'new_pki_document_event'`,
        );
      }
      this.#applyDocument(second.payload, this.#document !== null);
      // Install the connection so replies flushed before the token reply are dispatched.
      this.#conn = conn;
      const sink = connSink(conn);
      this.#sink = sink;
      this.#frameWriter = new _FrameWriter(sink.write);
      this.#sawShutdown = false;
      // Replies queued for a resumed session may follow: any size from now.
      decoder.maxFrameSize = this.#maxFrameSize;
      await this.#write({
        kind: "session_token",
        clientInstanceToken: this.#instanceToken,
      });
      while (true) {
        const resp = await next();
        if (resp.kind === "session_token_reply") {
          this.#appId = resp.appId;
          this.#resumed = resp.resumed;
          return { frames, resumed: resp.resumed, appId: resp.appId };
        }
        this.#dispatch(resp);
      }
    } catch (err) {
      if (this.#conn === conn) this.#dropConn();
      else onAbort();
      throw err;
    } finally {
      clearTimeout(timer);
      hsSignal.removeEventListener("abort", onAbort);
    }
  }

  async #readLoop(frames: _FrameReader): Promise<void> {
    let error: Error | null = null;
    try {
      // Every frame of a chunk is dispatched at once; only an empty reader waits.
      for (;;) {
        const body = frames.take();
        if (body === undefined) {
          if (!(await frames.fill())) break;
          continue;
        }
        // While close()/detach() drain the connection, frames are dropped.
        if (this.#state === "closed") continue;
        this.#dispatch(decodeFrameBody(body, false));
      }
    } catch (err) {
      error = err instanceof Error ? err : new Error(String(err));
    }
    try {
      frames.release();
    } catch {
      // Nothing left to release.
    }
    if (this.#state === "closed") return;
    this.#onDisconnect(error);
  }

  #onDisconnect(error: Error | null): void {
    const graceful = this.#sawShutdown;
    this.#dropConn();
    this.#emit({ type: "daemon_disconnected", graceful, error });
    if (this.#reconnect === null) {
      void this.#shutdown(
        false,
        new ConnectionError(
          `Lost connection to daemon at '${this.#dialer.address}'`,
          {
            cause: error ?? undefined,
          },
        ),
      );
      return;
    }
    this.#state = "reconnecting";
    void this.#reconnectLoop(this.#reconnect);
  }

  async #reconnectLoop(policy: Required<ReconnectOptions>): Promise<void> {
    let delay = policy.initialDelay;
    let attempts = 0;
    let lastError: unknown = null;
    const signal = this.#lifetime.signal;
    while (!signal.aborted) {
      if (attempts >= policy.maxAttempts) {
        void this.#shutdown(
          false,
          new ConnectionError(
            `Cannot reconnect to daemon at '${this.#dialer.address}': gave up after ${attempts} attempts`,
            { cause: lastError },
          ),
        );
        return;
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          this.#timers.delete(t);
          signal.removeEventListener("abort", done);
          resolve();
        }, delay);
        this.#timers.add(t);
        const done = (): void => {
          clearTimeout(t);
          this.#timers.delete(t);
          resolve();
        };
        signal.addEventListener("abort", done, { once: true });
      });
      if (signal.aborted) return;
      attempts++;
      const before = this.#daemonToken;
      try {
        const hs = await this.#dialAndHandshake(signal);
        if (this.#state === "closed") return;
        this.#state = "connected";
        const tokenChanged = toHex(before) !== toHex(this.#daemonToken);
        if (!hs.resumed) {
          const lost = new ConnectionError(
            "Lost the reply: the daemon session was not resumed after reconnecting",
          );
          for (const w of this.#surbWaiters.values()) w.reject(lost);
          this.#surbWaiters.clear();
        }
        this.#emit({
          type: "reconnected",
          resumed: hs.resumed,
          instanceTokenChanged: tokenChanged,
          appId: hs.appId,
        });
        // Re-send everything still waiting: replies produced while we were away are lost.
        for (const p of this.#pending.values()) {
          this.#write(p.request).catch(() => {});
        }
        for (const key of this.#cancelling.keys()) this.#sendCancel(key);
        this.#readEnded = this.#readLoop(hs.frames);
        return;
      } catch (err) {
        lastError = err;
        if (signal.aborted) return;
        delay = Math.min(delay * 2, policy.maxDelay);
      }
    }
  }

  #applyStatus(
    ev: ResponseOf<"connection_status_event">,
    emit: boolean,
  ): void {
    this.#isConnected = ev.isConnected;
    this.#daemonToken = ev.instanceToken;
    if (ev.sphinxGeometry !== null) this.#sphinx = ev.sphinxGeometry;
    if (ev.pigeonholeGeometry !== null) {
      this.#pigeonhole = ev.pigeonholeGeometry;
    }
    if (!ev.isConnected && this.#surbWaiters.size > 0) {
      const err = new ConnectionError(
        "Cannot wait for reply: the daemon lost its mixnet connection",
      );
      for (const w of this.#surbWaiters.values()) w.reject(err);
      this.#surbWaiters.clear();
    }
    if (emit) {
      this.#emit({
        type: "connection_status",
        isConnected: ev.isConnected,
        instanceToken: ev.instanceToken,
        sphinxGeometry: this.sphinxGeometry,
        pigeonholeGeometry: this.pigeonholeGeometry,
      });
    }
  }

  #applyDocument(payload: Uint8Array | null, emit: boolean): void {
    if (payload === null || payload.length === 0) return;
    let doc: PkiDocument;
    try {
      doc = parsePkiDocument(payload);
    } catch {
      return; // a document that fails to parse is ignored, as upstream does
    }
    this.#document = doc;
    this.#documents.set(doc.epoch, doc);
    for (const epoch of this.#documents.keys()) {
      if (epoch + PKI_CACHE_EPOCHS <= doc.epoch) this.#documents.delete(epoch);
    }
    if (emit) this.#emit({ type: "pki_document", document: doc });
  }

  #dispatch(resp: Response): void {
    switch (resp.kind) {
      case "connection_status_event":
        this.#applyStatus(resp, true);
        return;
      case "new_pki_document_event":
        this.#applyDocument(resp.payload, true);
        return;
      case "shutdown_event":
        this.#sawShutdown = true;
        this.#emit({ type: "shutdown" });
        return;
      case "message_sent_event": {
        this.#emit({
          type: "message_sent",
          messageId: resp.messageId,
          surbId: resp.surbId,
          sentAt: resp.sentAt === null ? null : new Date(resp.sentAt * 1000),
          replyEtaMs: Number(resp.replyEta / 1_000_000n),
          error: resp.err,
        });
        if (resp.err !== null && resp.surbId !== null) {
          const key = idKey(resp.surbId);
          const w = this.#surbWaiters.get(key);
          if (w !== undefined) {
            this.#surbWaiters.delete(key);
            w.reject(
              new ThinClientError(
                `Cannot send message: the daemon reported '${resp.err}'`,
              ),
            );
          }
        }
        return;
      }
      case "message_reply_event": {
        const payload = resp.payload ?? new Uint8Array(0);
        this.#emit({
          type: "message_reply",
          messageId: resp.messageId,
          surbId: resp.surbId,
          payload,
          replyIndex: resp.replyIndex,
          errorCode: resp.errorCode,
        });
        if (resp.surbId !== null) {
          const key = idKey(resp.surbId);
          const w = this.#surbWaiters.get(key);
          if (w !== undefined) {
            this.#surbWaiters.delete(key);
            w.resolve(payload);
          }
        }
        return;
      }
      case "message_id_garbage_collected":
        this.#emit({
          type: "message_id_garbage_collected",
          messageId: resp.messageId,
        });
        return;
      case "session_token_reply":
      case "unknown":
        return;
      default: {
        if (resp.queryId === null) return;
        const key = idKey(resp.queryId);
        if (
          resp.kind === "start_resending_encrypted_message_reply" ||
          resp.kind === "start_resending_copy_command_reply"
        ) {
          this.#cancelling.delete(key);
        } else if (
          resp.kind === "cancel_resending_encrypted_message_reply" ||
          resp.kind === "cancel_resending_copy_command_reply"
        ) {
          this.#onCancelReply(resp);
        }
        const p = this.#pending.get(key);
        if (p === undefined || p.expect !== resp.kind) return;
        this.#pending.delete(key);
        this.#settled(p);
        p.settle.resolve(resp);
      }
    }
  }
}

/**
 * The reply kind of a request kind.
 *
 * @example Usage
 * ```ts
 * import type { ReplyKindFor } from "@katzenpost/thinclient";
 * type R = ReplyKindFor<"new_keypair">; // "new_keypair_reply"
 * ```
 */
export type ReplyKindFor<K extends RequestKind> = `${K}_reply` extends
  ResponseKind ? `${K}_reply`
  : never;
