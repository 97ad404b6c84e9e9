/**
 * A fake kpclientd: an independent, in-process implementation of the daemon
 * side of the thin protocol (docs/protocol.md), for unit tests of thin
 * clients and of applications built on them.
 *
 * @module
 */
import type { Dialer } from "../lib/conn.ts";
import { encodeFrame, FrameDecoder, MAX_FRAME_SIZE } from "../lib/framing.ts";
import { blake2b256 } from "./_blake2b.ts";
import {
  buildDirectoryAuthorities,
  buildPkiDocument,
  DEFAULT_PIGEONHOLE_GEOMETRY,
  DEFAULT_SPHINX_GEOMETRY,
  type FakeDirectoryAuthority,
  type FakePkiDocument,
  orderedPigeonholeGeometry,
  orderedSphinxGeometry,
  type WirePigeonholeGeometry,
  type WireSphinxGeometry,
} from "./_pki.ts";
import {
  boxKey,
  BoxStore,
  cutElements,
  decodeBuffer,
  decodeDestinationEnvelope,
  decodeQuery,
  decodeVoucherPayload,
  encodeBuffer,
  encodeDestinationEnvelope,
  encodeQuery,
  encodeVoucherPayload,
  type FakeBox,
  fakeIndexCounter,
  fakeKeypair,
  fakeNextIndex,
  firstIndexOfWriteCap,
  FLAG_FINAL,
  mutateReadCap,
  mutateWriteCap,
  openSealedReply,
  parseElement,
  READ_CAP_LENGTH,
  sealReply,
  serializeEnvelopes,
  splitEnvelopes,
  streamOfReadCap,
  streamOfWriteCap,
  voucherPublicKey,
  voucherStream,
  WRITE_CAP_LENGTH,
} from "./_pigeonhole.ts";
import {
  type FakeListener,
  type FakeTransport,
  listen,
  type ServerSocket,
} from "./_transport.ts";
import {
  type DecodedRequest,
  decodeRequest,
  encodeOrdered,
  encodeResponse,
  isResponseVariant,
  LOCAL_KINDS,
  type RequestKind,
  responseBody,
} from "./_wire.ts";
import { bytesEqual, concatBytes, fromUtf8, toHex } from "../lib/_bytes.ts";
import { delay, Notifier } from "../lib/_async.ts";
import { Rng } from "./_util.ts";

/**
 * A request variant name as it appears on the wire (`new_keypair`, …).
 *
 * @example Usage
 * ```ts
 * import type { FakeRequestKind } from "@katzenpost/thinclient/testing";
 * const kind: FakeRequestKind = "get_pki_document";
 * ```
 */
export type FakeRequestKind = RequestKind;

/**
 * One frame the fake daemon read from a client.
 *
 * @example Usage
 * ```ts
 * import type { ReceivedRequest } from "@katzenpost/thinclient/testing";
 * function queryIdOf(request: ReceivedRequest): unknown {
 *   return request.body["query_id"];
 * }
 * ```
 */
export interface ReceivedRequest {
  /**
   * The variant the daemon acted on; `"empty"` when no variant was non-null
   * (the daemon drops it), `"invalid"` when the frame could not be decoded
   * (the daemon closed the connection).
   */
  readonly kind: FakeRequestKind | "empty" | "invalid";
  /**
   * The variant's body exactly as decoded (wire keys as sent; maps with only
   * text keys become plain objects; byte strings are `Uint8Array`; uint64
   * values are `number` or `bigint`). Empty for "empty" and "invalid".
   */
  readonly body: Readonly<Record<string, unknown>>;
  /**
   * The frame body (CBOR, without the length prefix); for an oversize
   * length prefix, the first bytes of the chunk that carried it.
   */
  readonly raw: Uint8Array;
  /** Which connection sent it (1 for the first accepted connection, …). */
  readonly connId: number;
  /** For `"invalid"`: why the frame was rejected. */
  readonly error?: string;
}

/**
 * What a scripted request kind does instead of (or before) its normal
 * behaviour:
 *
 * - `"default"`: behave normally.
 * - `"none"`: never reply (for `start_resending_*` the operation is dropped
 *   silently, like the daemon's lost ARQ replies).
 * - a number, or `{ errorCode, fields }`: an error-form reply with that code
 *   (only `query_id` and `error_code` set, plus `fields`; for
 *   `start_resending_encrypted_message` the courier fields are filled unless
 *   the code is 3 or 4). For `send_message` it yields a `message_sent_event`
 *   with `err` (`fields.err` or "scripted failure") and no reply.
 * - `{ reply }`: exactly this reply body (wire keys; `query_id` defaults to
 *   the request's; other missing fields get zero values). For
 *   `send_message` it is the `message_sent_event` body; for
 *   `session_token` the `session_token_reply` body.
 * - `{ delayMs, then }`: wait, then do `then` (default `"default"`). A
 *   delayed local request blocks the connection's reader, as in kpclientd;
 *   a delayed `start_resending_*` stays cancellable.
 *
 * @example Usage
 * ```ts
 * import type { ScriptAction } from "@katzenpost/thinclient/testing";
 * const copyFails: ScriptAction = {
 *   errorCode: 26,
 *   fields: { "replica_error_code": 10, "failed_envelope_index": 3 },
 * };
 * ```
 */
export type ScriptAction =
  | "default"
  | "none"
  | number
  | {
    readonly errorCode: number;
    readonly fields?: Readonly<Record<string, unknown>>;
  }
  | { readonly reply: Readonly<Record<string, unknown>> }
  | { readonly delayMs: number; readonly then?: ScriptAction };

/**
 * Computes a {@linkcode ScriptAction} per request; may be async (a pending
 * promise holds the reply; a rejection means no reply).
 *
 * @example Usage
 * ```ts
 * import type { ScriptHandler } from "@katzenpost/thinclient/testing";
 * const failOddSeeds: ScriptHandler = (request) =>
 *   ((request.body["seed"] as Uint8Array)[0]! & 1) ? 3 : "default";
 * ```
 */
export type ScriptHandler = (
  request: ReceivedRequest,
) => ScriptAction | Promise<ScriptAction>;

/**
 * Options of {@linkcode FakeDaemon.script}.
 *
 * @example Usage
 * ```ts
 * import type { ScriptOptions } from "@katzenpost/thinclient/testing";
 * const once: ScriptOptions = { times: 1 };
 * ```
 */
export interface ScriptOptions {
  /** Remove the script after this many requests. @default Infinity */
  times?: number;
}

/**
 * Switches that make the fake daemon misbehave like a real one sometimes
 * does. Change them at any time through {@linkcode FakeDaemon.faults}; the
 * handshake flags apply to connections accepted afterwards.
 *
 * @example Usage
 * ```ts
 * import type { FakeDaemonFaults } from "@katzenpost/thinclient/testing";
 * const faults: Partial<FakeDaemonFaults> = { splitWrites: true };
 * ```
 */
export interface FakeDaemonFaults {
  /** Wait this long before frame #1 (kpclientd waits up to 30 s for a document). @default 0 */
  delayBeforeHandshakeMs: number;
  /** Send `shutdown_event` instead of frame #1, then close. @default false */
  shutdownBeforeHandshake: boolean;
  /** Send `payload: null` in frame #2 even when a document exists. @default false */
  pkiPayloadNull: boolean;
  /**
   * Push a `connection_status_event` and a `new_pki_document_event` right
   * before the `session_token_reply` (the race in docs/protocol.md#connection-and-handshake). @default false
   */
  raceEventBeforeTokenReply: boolean;
  /** Write every frame in random pieces of 1–7 bytes. @default false */
  splitWrites: boolean;
  /** Merge frames queued in the same tick into one write. @default false */
  coalesceWrites: boolean;
  /**
   * Keep a connection open after the client has ended its sending side,
   * instead of closing it as kpclientd does (TCP and Unix; a WebSocket's
   * closing handshake is answered by the runtime). @default false
   */
  ignoreClientEof: boolean;
}

/**
 * Options of {@linkcode FakeDaemon.start}.
 *
 * @example Usage
 * ```ts
 * import type { FakeDaemonOptions } from "@katzenpost/thinclient/testing";
 * const options: FakeDaemonOptions = { transport: "memory", gracePeriodMs: 200 };
 * ```
 */
export interface FakeDaemonOptions {
  /** Where to listen. @default "tcp" (127.0.0.1, any free port) */
  transport?: FakeTransport;
  /** TCP/WebSocket port. @default 0 (any free port) */
  port?: number;
  /**
   * Unix socket path, or `@name` for a Linux abstract socket (a NUL byte and
   * the name, exact length, as Go binds it).
   * @default a socket in a new temporary directory
   */
  path?: string;
  /** Send Go full-form envelopes (all 25 keys, unused ones null). @default true */
  goFullForm?: boolean;
  /** The daemon's 16-byte instance token. @default 16 seeded random bytes */
  instanceToken?: Uint8Array;
  /** Initial mixnet connectivity (`is_connected`). @default true */
  connected?: boolean;
  /** Sphinx geometry sent in status events. @default DEFAULT_SPHINX_GEOMETRY */
  sphinxGeometry?: Readonly<WireSphinxGeometry>;
  /** Pigeonhole geometry sent in status events. @default DEFAULT_PIGEONHOLE_GEOMETRY */
  pigeonholeGeometry?: Readonly<WirePigeonholeGeometry>;
  /** Current PKI document; `null` = none (frame #2 null, encrypt → 4, get → 10). @default buildPkiDocument() */
  pkiDocument?: FakePkiDocument | null;
  /** `get_directory_authorities` answer; `null` or empty → error 10. @default buildDirectoryAuthorities() */
  directoryAuthorities?: readonly FakeDirectoryAuthority[] | null;
  /** How long a disconnected session with a token survives. @default 600000 */
  gracePeriodMs?: number;
  /** Release delay of each request in the per-connection mixnet FIFO. @default 0 */
  mixnetDelayMs?: number;
  /** Capacity of the mixnet FIFO; the reader stalls when it is full. @default 16 */
  mixnetQueueCapacity?: number;
  /** Delay between dispatch and the terminal reply of `start_resending_encrypted_message`. @default 0 */
  arqDelayMs?: number;
  /** Delay between dispatch and the reply of `start_resending_copy_command`. @default 0 */
  copyDelayMs?: number;
  /** Delay between `message_sent_event` and the echo service's reply. @default 0 */
  echoDelayMs?: number;
  /** `reply_eta` of `message_sent_event`, in nanoseconds. @default 1500000000 */
  replyEtaNs?: number;
  /** Legacy replies kept for a disconnected session. @default 1000 */
  maxQueuedReplies?: number;
  /** Clock for `sent_at`, in milliseconds. @default Date.now */
  now?: () => number;
  /** Seed of every random value the daemon makes. @default a per-process counter */
  seed?: number;
  /** Initial fault switches. */
  faults?: Partial<FakeDaemonFaults>;
}

/**
 * Options of {@linkcode FakeDaemon.waitForRequest}.
 *
 * @example Usage
 * ```ts
 * import type { WaitOptions } from "@katzenpost/thinclient/testing";
 * const options: WaitOptions = { signal: AbortSignal.timeout(1000) };
 * ```
 */
export interface WaitOptions {
  /** Aborts the wait; the promise rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Give up after this long (rejects with an `Error`). @default 5000 */
  timeoutMs?: number;
}

/**
 * Options of {@linkcode FakeDaemon.restart}.
 *
 * @example Usage
 * ```ts
 * import type { RestartOptions } from "@katzenpost/thinclient/testing";
 * const options: RestartOptions = { graceful: true };
 * ```
 */
export interface RestartOptions {
  /** Send `shutdown_event` to every connection before closing it. @default false */
  graceful?: boolean;
  /** Pick a new instance token (a new daemon process). @default true */
  newInstanceToken?: boolean;
}

/**
 * Targets one connection; without `connId` every connection is targeted.
 *
 * @example Usage
 * ```ts
 * import type { ConnectionTarget } from "@katzenpost/thinclient/testing";
 * const target: ConnectionTarget = { connId: 1 };
 * ```
 */
export interface ConnectionTarget {
  /** The connection id of {@linkcode ReceivedRequest.connId}. */
  connId?: number;
}

/**
 * A daemon→client message in single-key form: `{ <variant>: <body> }` with
 * wire keys, e.g. `{ shutdown_event: {} }`.
 *
 * @example Usage
 * ```ts
 * import type { FakeEvent } from "@katzenpost/thinclient/testing";
 * const event: FakeEvent = { "connection_status_event": { "is_connected": false } };
 * ```
 */
export type FakeEvent = Readonly<
  Record<string, Readonly<Record<string, unknown>>>
>;

type Resolved =
  | { type: "default" }
  | { type: "none" }
  | { type: "error"; code: number; fields: Readonly<Record<string, unknown>> }
  | { type: "reply"; body: Readonly<Record<string, unknown>> };

interface ScriptEntry {
  action: ScriptAction | ScriptHandler;
  remaining: number;
}

interface Queued {
  req: DecodedRequest;
  rec: ReceivedRequest;
}

interface ConnState {
  id: number;
  socket: ServerSocket;
  session: Session;
  ready: boolean;
  closed: boolean;
  abort: AbortController;
  writeChain: Promise<void>;
  pendingCoalesce: Uint8Array[] | null;
  queue: Queued[];
  queueChanged: Notifier;
}

interface ArqOp {
  kind: "encrypted" | "copy";
  key: string | null;
  queryId: Uint8Array | null;
  session: Session;
  abort: AbortController;
  done: boolean;
  courierHash: Uint8Array | null;
  courierQueue: Uint8Array | null;
}

interface Session {
  appId: Uint8Array;
  token: string | null;
  conn: ConnState | null;
  graceTimer: ReturnType<typeof setTimeout> | null;
  queued: [string, Record<string, unknown>][];
  encOps: Map<string, ArqOp>;
  copyOps: Map<string, ArqOp>;
  ops: Set<ArqOp>;
  destroyed: boolean;
}

interface CopyResult {
  code: number;
  replica: number;
  failed: number;
}

const TEN_MIB = 10 * 1024 * 1024;
const MAX_TOMBSTONES = 65536;
const MAX_COPY_BOXES = 65536;
const START_ENC = "start_resending_encrypted_message_reply";
const START_COPY = "start_resending_copy_command_reply";
let seedCounter = 0x5eed;
let defaultDocument: FakePkiDocument | null = null;

function nonEmpty(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array && v.length > 0;
}

function bytesOrNull(v: unknown): Uint8Array | null {
  return v instanceof Uint8Array ? v : null;
}

/**
 * A fake kpclientd. Start it with {@linkcode FakeDaemon.start}, point a
 * client at {@linkcode FakeDaemon.dialer} (or {@linkcode FakeDaemon.address}),
 * and dispose of it with `await using`.
 *
 * It follows docs/protocol.md: the daemon-first handshake with both
 * geometries and a realistic PKI document, session tokens with resume and a
 * grace period, Go full-form replies, the daemon's request validation, the
 * per-connection 16-slot mixnet FIFO with back-pressure, an echo service, an
 * in-memory box store with write-once/tombstone semantics, cancellation with
 * the double reply, copy commands that really execute the copy streams made
 * by its own envelope builders, and self-consistent vouchers.
 *
 * @example Usage
 * ```ts
 * import { FakeDaemon } from "@katzenpost/thinclient/testing";
 * await using daemon = await FakeDaemon.start({ transport: "memory" });
 * const conn = await daemon.dialer.dial();
 * const reader = conn.readable.getReader();
 * const { value } = await reader.read(); // frame #1: connection_status_event
 * console.log(value !== undefined); // true
 * reader.releaseLock();
 * conn.close();
 * ```
 */
export class FakeDaemon implements AsyncDisposable {
  /** The transport listened on. */
  readonly transport: FakeTransport;
  /**
   * Where the daemon listens: `127.0.0.1:PORT` (tcp), the socket path
   * (unix), `ws://127.0.0.1:PORT/` (ws) or `memory`.
   */
  readonly address: string;
  /**
   * A dialer that connects to this daemon (for memory: an in-memory pipe;
   * otherwise a minimal Deno socket/WebSocket dialer). Its `address` is
   * `"<transport> <address>"`.
   */
  readonly dialer: Dialer;
  /** Fault switches; assign to them at any time. */
  readonly faults: FakeDaemonFaults;

  readonly #listener: FakeListener;
  readonly #fullForm: boolean;
  readonly #sphinx: Readonly<WireSphinxGeometry>;
  readonly #pigeonhole: Readonly<WirePigeonholeGeometry>;
  readonly #authorities: readonly FakeDirectoryAuthority[] | null;
  readonly #graceMs: number;
  readonly #mixnetDelayMs: number;
  readonly #capacity: number;
  readonly #arqDelayMs: number;
  readonly #copyDelayMs: number;
  readonly #echoDelayMs: number;
  readonly #replyEtaNs: number;
  readonly #maxQueued: number;
  readonly #now: () => number;
  readonly #rng: Rng;
  readonly #lifetime = new AbortController();
  readonly #conns = new Map<number, ConnState>();
  readonly #sessions = new Set<Session>();
  readonly #tokens = new Map<string, Session>();
  readonly #boxes = new BoxStore();
  readonly #copyResults = new Map<string, CopyResult>();
  readonly #scripts = new Map<string, ScriptEntry>();
  readonly #received: ReceivedRequest[] = [];
  readonly #cursors = new Map<string, number>();
  readonly #requestArrived = new Notifier();
  readonly #connsChanged = new Notifier();
  readonly #connectedChanged = new Notifier();
  readonly #tasks = new Set<Promise<unknown>>();
  readonly #docs = new Map<number, FakePkiDocument>();
  #doc: FakePkiDocument | null;
  #instanceToken: Uint8Array;
  #connected: boolean;
  #nextConnId = 1;
  #closing: Promise<void> | null = null;

  private constructor(
    options: FakeDaemonOptions,
    listener: FakeListener,
    rng: Rng,
  ) {
    this.#rng = rng;
    this.transport = options.transport ?? "tcp";
    this.#fullForm = options.goFullForm ?? true;
    this.#sphinx = options.sphinxGeometry ?? DEFAULT_SPHINX_GEOMETRY;
    this.#pigeonhole = options.pigeonholeGeometry ??
      DEFAULT_PIGEONHOLE_GEOMETRY;
    this.#authorities = options.directoryAuthorities === undefined
      ? buildDirectoryAuthorities()
      : options.directoryAuthorities;
    this.#graceMs = options.gracePeriodMs ?? 600_000;
    this.#mixnetDelayMs = options.mixnetDelayMs ?? 0;
    this.#capacity = options.mixnetQueueCapacity ?? 16;
    this.#arqDelayMs = options.arqDelayMs ?? 0;
    this.#copyDelayMs = options.copyDelayMs ?? 0;
    this.#echoDelayMs = options.echoDelayMs ?? 0;
    this.#replyEtaNs = options.replyEtaNs ?? 1_500_000_000;
    this.#maxQueued = options.maxQueuedReplies ?? 1000;
    this.#now = options.now ?? Date.now;
    this.#instanceToken = options.instanceToken?.slice() ?? rng.bytes(16);
    this.#connected = options.connected ?? true;
    this.#doc = options.pkiDocument === undefined
      ? (defaultDocument ??= buildPkiDocument())
      : options.pkiDocument;
    if (this.#doc !== null) this.#docs.set(this.#doc.epoch, this.#doc);
    this.faults = {
      delayBeforeHandshakeMs: 0,
      shutdownBeforeHandshake: false,
      pkiPayloadNull: false,
      raceEventBeforeTokenReply: false,
      splitWrites: false,
      coalesceWrites: false,
      ignoreClientEof: false,
      ...options.faults,
    };
    this.#listener = listener;
    this.address = listener.address;
    this.dialer = listener.dialer;
  }

  /**
   * Starts a fake daemon and begins accepting connections.
   *
   * @param options Transport, behaviour and timing options.
   * @returns The running daemon.
   * @throws {TypeError} On an unknown transport or a bad instance token.
   * @throws {Deno.errors.AddrInUse} When the port or path is taken.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * console.log(daemon.address); // "memory"
   * ```
   */
  static async start(options: FakeDaemonOptions = {}): Promise<FakeDaemon> {
    if (
      options.instanceToken !== undefined && options.instanceToken.length !== 16
    ) {
      throw new TypeError(
        `Cannot start fake daemon: instance token length ${options.instanceToken.length} is not 16`,
      );
    }
    const rng = new Rng(options.seed ?? seedCounter++);
    let daemon: FakeDaemon | null = null;
    const early: ServerSocket[] = [];
    const listener = await listen(
      options.transport ?? "tcp",
      (socket) => daemon === null ? early.push(socket) : daemon.#accept(socket),
      {
        ...(options.port !== undefined ? { port: options.port } : {}),
        ...(options.path !== undefined ? { path: options.path } : {}),
      },
    );
    daemon = new FakeDaemon(options, listener, rng);
    for (const socket of early) daemon.#accept(socket);
    return daemon;
  }

  // -------------------------------------------------------------------------
  // Observing

  /** Every frame read so far, in arrival order (all connections). */
  get received(): readonly ReceivedRequest[] {
    return this.#received;
  }

  /** The current instance token (16 bytes; changes on `restart()`). */
  get instanceToken(): Uint8Array {
    return this.#instanceToken.slice();
  }

  /** Whether the daemon claims to be connected to the mixnet. */
  get isConnected(): boolean {
    return this.#connected;
  }

  /** The current PKI document, or `null`. */
  get pkiDocument(): FakePkiDocument | null {
    return this.#doc;
  }

  /** The Sphinx geometry sent to clients. */
  get sphinxGeometry(): Readonly<WireSphinxGeometry> {
    return this.#sphinx;
  }

  /** The Pigeonhole geometry sent to clients. */
  get pigeonholeGeometry(): Readonly<WirePigeonholeGeometry> {
    return this.#pigeonhole;
  }

  /** Number of open client connections. */
  get connectionCount(): number {
    return this.#conns.size;
  }

  /** Ids of the open client connections, oldest first. */
  get connectionIds(): readonly number[] {
    return [...this.#conns.keys()];
  }

  /**
   * Waits for a request of `kind` and consumes it. Requests are consumed in
   * arrival order per kind: the first call returns the first such request
   * ever received (even if it arrived before the call), the next call the
   * second, and so on.
   *
   * @param kind Request variant, `"empty"` or `"invalid"`.
   * @param options Abort signal and timeout.
   * @returns The request.
   * @throws {Error} After `timeoutMs`, or when the daemon closes.
   *
   * @example Usage
   * ```ts ignore
   * const request = await daemon.waitForRequest("session_token");
   * console.log(request.body["client_instance_token"]);
   * ```
   */
  waitForRequest(
    kind: FakeRequestKind | "empty" | "invalid",
    options: WaitOptions = {},
  ): Promise<ReceivedRequest> {
    return this.#waitFor(
      `request "${kind}"`,
      options,
      this.#requestArrived,
      () => {
        const start = this.#cursors.get(kind) ?? 0;
        for (let i = start; i < this.#received.length; i++) {
          const r = this.#received[i];
          if (r?.kind === kind) {
            this.#cursors.set(kind, i + 1);
            return r;
          }
        }
        this.#cursors.set(kind, this.#received.length);
        return undefined;
      },
    );
  }

  /**
   * Waits until exactly `count` client connections are open (for example 0
   * after a client closed, 1 after it reconnected).
   *
   * @param count The number of connections to wait for.
   * @param options Abort signal and timeout.
   * @throws {Error} After `timeoutMs`, or when the daemon closes.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * const conn = await daemon.dialer.dial();
   * await daemon.waitForConnections(1);
   * conn.close();
   * await daemon.waitForConnections(0);
   * ```
   */
  async waitForConnections(
    count: number,
    options: WaitOptions = {},
  ): Promise<void> {
    await this.#waitFor(
      `${count} connection(s)`,
      options,
      this.#connsChanged,
      () => this.#conns.size === count ? true : undefined,
    );
  }

  /**
   * Whether a session is registered for a client instance token (connected
   * or within its grace period).
   *
   * @param clientInstanceToken The client's 16-byte token.
   * @returns True while the daemon would resume it.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * console.log(daemon.hasSession(new Uint8Array(16))); // false
   * ```
   */
  hasSession(clientInstanceToken: Uint8Array): boolean {
    const s = this.#tokens.get(toHex(clientInstanceToken));
    return s !== undefined && !s.destroyed;
  }

  /**
   * Reads a box of the fake replicas.
   *
   * @param cap A 168-byte write cap or 136-byte read cap of the stream.
   * @param index The 104-byte box index.
   * @returns The box, or `undefined` when never written.
   * @throws {RangeError} When the cap or index has the wrong length.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon, fakeKeypair } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * const pair = fakeKeypair(new Uint8Array(32));
   * daemon.putBox(pair.writeCap, pair.firstMessageIndex, new Uint8Array([1]));
   * console.log(daemon.getBox(pair.readCap, pair.firstMessageIndex)); // { tombstone: false, plaintext: … }
   * ```
   */
  getBox(cap: Uint8Array, index: Uint8Array): FakeBox | undefined {
    return this.#boxes.get(boxKey(this.#streamOfCap(cap), checkIndex(index)));
  }

  /**
   * Writes a box of the fake replicas directly, as if another client had
   * (write-once; an empty plaintext is a tombstone). Waiting reads complete.
   *
   * @param writeCap The 168-byte write cap.
   * @param index The 104-byte box index.
   * @param plaintext The content; empty = tombstone.
   * @returns True if stored (or identical/tombstoned), false if the box already held other data.
   * @throws {RangeError} When the cap or index has the wrong length.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon, fakeKeypair } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * const pair = fakeKeypair(new Uint8Array(32));
   * console.log(daemon.putBox(pair.writeCap, pair.firstMessageIndex, new Uint8Array([1]))); // true
   * ```
   */
  putBox(
    writeCap: Uint8Array,
    index: Uint8Array,
    plaintext: Uint8Array,
  ): boolean {
    if (writeCap.length !== WRITE_CAP_LENGTH) {
      throw new RangeError(
        `Cannot write box: write cap length ${writeCap.length} is not ${WRITE_CAP_LENGTH}`,
      );
    }
    const key = boxKey(streamOfWriteCap(writeCap), checkIndex(index));
    return this.#boxes.write(key, plaintext) !== "exists";
  }

  // -------------------------------------------------------------------------
  // Scripting and events

  /**
   * Overrides how requests of `kind` are answered, from now on (or for
   * `times` requests). Pass `null` to remove the script. `thin_close` cannot
   * be scripted. Mixnet kinds are scripted when they leave the FIFO.
   *
   * @param kind The request variant.
   * @param action A fixed action, a handler computing one, or `null`.
   * @param options How many requests the script applies to.
   * @throws {TypeError} For `thin_close`.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * daemon.script("new_keypair", 3, { times: 1 });
   * daemon.script("get_pki_document", { delayMs: 50 });
   * daemon.script("get_pki_document", null);
   * ```
   */
  script(
    kind: FakeRequestKind,
    action: ScriptAction | ScriptHandler | null,
    options: ScriptOptions = {},
  ): void {
    if (kind === "thin_close") {
      throw new TypeError('Cannot script request: "thin_close" has no reply');
    }
    if (action === null) {
      this.#scripts.delete(kind);
      return;
    }
    this.#scripts.set(kind, {
      action,
      remaining: options.times ?? Infinity,
    });
  }

  /**
   * Sends an event (or any daemon→client message) to every connection that
   * finished frames #1 and #2, or to one connection. Missing body fields get
   * zero values, except that a `connection_status_event` is completed from
   * the daemon's state (instance token, geometries, `is_connected`). Unknown
   * variants are sent as given.
   *
   * @param event A single-key object `{ <variant>: <body> }`.
   * @param target Which connection; all by default.
   * @throws {TypeError} When `event` does not have exactly one key.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * daemon.emit({ "shutdown_event": {} });
   * ```
   */
  emit(event: FakeEvent, target: ConnectionTarget = {}): void {
    const [variant, body] = this.#eventParts(event);
    for (const conn of this.#targets(target)) {
      if (conn.ready) this.#send(conn, variant, body);
    }
  }

  /**
   * Delivers a message to whatever connection serves a client's session.
   * While the client is away, a `message_reply_event` (or
   * `message_id_garbage_collected`) is queued (at most `maxQueuedReplies`)
   * and flushed before the `session_token_reply` on resume; anything else is
   * dropped, as kpclientd does.
   *
   * @param clientInstanceToken The client's 16-byte token.
   * @param event A single-key object `{ <variant>: <body> }`.
   * @returns False when no session has that token.
   * @throws {TypeError} When `event` does not have exactly one key.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * console.log(daemon.emitToSession(new Uint8Array(16), { "message_reply_event": {} })); // false
   * ```
   */
  emitToSession(clientInstanceToken: Uint8Array, event: FakeEvent): boolean {
    const [variant, body] = this.#eventParts(event);
    const session = this.#tokens.get(toHex(clientInstanceToken));
    if (session === undefined || session.destroyed) return false;
    this.#deliverLegacy(session, variant, body);
    return true;
  }

  /**
   * Changes the daemon's mixnet connectivity and broadcasts a
   * `connection_status_event`. While offline, the mixnet FIFOs release
   * nothing (they fill up and stall their readers).
   *
   * @param connected The new state.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * daemon.setConnected(false);
   * console.log(daemon.isConnected); // false
   * ```
   */
  setConnected(connected: boolean): void {
    this.#connected = connected;
    this.#connectedChanged.notify();
    for (const conn of this.#conns.values()) {
      if (conn.ready) {
        this.#send(conn, "connection_status_event", this.#statusBody());
      }
    }
  }

  /**
   * Replaces the current PKI document. A document is broadcast as a
   * `new_pki_document_event` (default-mode encoding, as kpclientd pushes
   * later documents); the previous one stays available to
   * `get_pki_document` by epoch. `null` means "no document" from now on
   * (nothing is broadcast).
   *
   * @param doc The new document, e.g. from {@linkcode buildPkiDocument}.
   *
   * @example Usage
   * ```ts
   * import { buildPkiDocument, FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * daemon.setPkiDocument(buildPkiDocument({ epoch: 120001 }));
   * ```
   */
  setPkiDocument(doc: FakePkiDocument | null): void {
    const previous = this.#doc;
    this.#doc = doc;
    if (doc === null) return;
    this.#docs.clear();
    if (previous !== null) this.#docs.set(previous.epoch, previous);
    this.#docs.set(doc.epoch, doc);
    for (const conn of this.#conns.values()) {
      if (conn.ready) {
        this.#send(conn, "new_pki_document_event", {
          "payload": doc.pushedPayload,
        });
      }
    }
  }

  // -------------------------------------------------------------------------
  // Lifecycle

  /**
   * Closes client connections abruptly, without `shutdown_event` (a
   * non-graceful disconnect). Sessions with a token stay resumable for the
   * grace period; the others are destroyed.
   *
   * @param target Which connection; all by default.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * daemon.drop();
   * ```
   */
  drop(target: ConnectionTarget = {}): void {
    for (const conn of this.#targets(target)) {
      this.#closeConn(conn, "disconnect");
    }
  }

  /**
   * Simulates a daemon restart on the same address: optionally sends
   * `shutdown_event`, closes every connection, forgets all sessions, tokens
   * and in-flight operations, and (by default) takes a new instance token.
   * The box store (the replicas) and copy results (the couriers) survive.
   *
   * @param options Graceful shutdown and instance token choice.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * const before = daemon.instanceToken;
   * await daemon.restart({ graceful: true });
   * console.log(before.toString() !== daemon.instanceToken.toString()); // true
   * ```
   */
  async restart(options: RestartOptions = {}): Promise<void> {
    const conns = [...this.#conns.values()];
    if (options.graceful === true) {
      for (const conn of conns) this.#send(conn, "shutdown_event", {});
      await Promise.all(conns.map((c) => this.#flush(c)));
    }
    for (const conn of conns) this.#closeConn(conn, "disconnect");
    for (const session of [...this.#sessions]) this.#destroySession(session);
    this.#tokens.clear();
    if (options.newInstanceToken ?? true) {
      this.#instanceToken = this.#rng.bytes(16);
    }
  }

  /**
   * Stops or resumes accepting connections. While stopped, dials fail with
   * "connection refused" (the listener is closed and later reopened on the
   * same address). Existing connections are not touched.
   *
   * @param accepting Whether to accept.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * await daemon.setAccepting(false);
   * await daemon.setAccepting(true);
   * ```
   */
  async setAccepting(accepting: boolean): Promise<void> {
    if (this.#closing !== null) return;
    if (accepting) await this.#listener.start();
    else await this.#listener.stop();
  }

  /**
   * Writes raw bytes to client connections, bypassing framing.
   *
   * @param bytes The bytes, written as one chunk.
   * @param target Which connection; all by default.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * daemon.sendRaw(new Uint8Array([0, 0, 0, 1, 0xa0]));
   * ```
   */
  sendRaw(bytes: Uint8Array, target: ConnectionTarget = {}): void {
    for (const conn of this.#targets(target)) {
      this.#writeChunks(conn, [bytes.slice()]);
    }
  }

  /**
   * Sends a well-framed body that is not valid CBOR.
   *
   * @param target Which connection; all by default.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * daemon.sendMalformed();
   * ```
   */
  sendMalformed(target: ConnectionTarget = {}): void {
    this.sendRaw(encodeFrame(new Uint8Array([0xa1, 0x1c, 0xff])), target);
  }

  /**
   * Sends a length prefix of 40 MiB + 1 followed by a few bytes (a client
   * must give up before allocating the body).
   *
   * @param target Which connection; all by default.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * daemon.sendOversizeFrame();
   * ```
   */
  sendOversizeFrame(target: ConnectionTarget = {}): void {
    const bytes = new Uint8Array(12);
    new DataView(bytes.buffer).setUint32(0, MAX_FRAME_SIZE + 1, false);
    this.sendRaw(bytes, target);
  }

  /**
   * Sends a frame announcing 100 body bytes but carrying 10, then closes the
   * connection (as after a crash mid-write).
   *
   * @param target Which connection; all by default.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * await daemon.sendTruncatedFrameAndClose();
   * ```
   */
  async sendTruncatedFrameAndClose(
    target: ConnectionTarget = {},
  ): Promise<void> {
    const bytes = new Uint8Array(14);
    new DataView(bytes.buffer).setUint32(0, 100, false);
    bytes.fill(0xa0, 4);
    const conns = this.#targets(target);
    for (const conn of conns) this.#writeChunks(conn, [bytes]);
    await Promise.all(conns.map((c) => this.#flush(c)));
    for (const conn of conns) this.#closeConn(conn, "disconnect");
  }

  /**
   * Stops listening, closes every connection, cancels every timer and
   * pending wait, and removes temporary files. Idempotent.
   *
   * @returns Resolves when everything is released.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * const daemon = await FakeDaemon.start({ transport: "memory" });
   * await daemon.close();
   * await daemon.close();
   * ```
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  /**
   * Same as {@linkcode FakeDaemon.close}, for `await using`.
   *
   * @returns Resolves when everything is released.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using _daemon = await FakeDaemon.start({ transport: "memory" });
   * ```
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #shutdown(): Promise<void> {
    this.#lifetime.abort(new Error("Fake daemon closed"));
    await this.#listener.stop();
    for (const conn of [...this.#conns.values()]) {
      this.#closeConn(conn, "disconnect");
    }
    for (const session of [...this.#sessions]) this.#destroySession(session);
    while (this.#tasks.size > 0) {
      await Promise.allSettled([...this.#tasks]);
    }
    await this.#listener.close();
  }

  // -------------------------------------------------------------------------
  // Internals: helpers

  #track(p: Promise<unknown>): void {
    const tracked = p.catch(() => {}).finally(() =>
      this.#tasks.delete(tracked)
    );
    this.#tasks.add(tracked);
  }

  async #waitFor<T>(
    what: string,
    options: WaitOptions,
    notifier: Notifier,
    check: () => T | undefined,
  ): Promise<T> {
    const timeoutMs = options.timeoutMs ?? 5000;
    const timeout = new AbortController();
    const timer = setTimeout(
      () =>
        timeout.abort(
          new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`),
        ),
      timeoutMs,
    );
    const signals = [timeout.signal, this.#lifetime.signal];
    if (options.signal !== undefined) signals.unshift(options.signal);
    const signal = AbortSignal.any(signals);
    try {
      while (true) {
        const hit = check();
        if (hit !== undefined) return hit;
        if (this.#lifetime.signal.aborted) {
          throw new Error(`Fake daemon closed while waiting for ${what}`);
        }
        try {
          await notifier.wait(signal);
        } catch (err) {
          if (options.signal?.aborted) throw options.signal.reason;
          if (this.#lifetime.signal.aborted && !timeout.signal.aborted) {
            throw new Error(`Fake daemon closed while waiting for ${what}`);
          }
          throw err;
        }
      }
    } finally {
      clearTimeout(timer);
    }
  }

  #streamOfCap(cap: Uint8Array): Uint8Array {
    if (cap.length === WRITE_CAP_LENGTH) return streamOfWriteCap(cap);
    if (cap.length === READ_CAP_LENGTH) return streamOfReadCap(cap);
    throw new RangeError(
      `Cannot address box: cap length ${cap.length} is neither ${WRITE_CAP_LENGTH} nor ${READ_CAP_LENGTH}`,
    );
  }

  #targets(target: ConnectionTarget): ConnState[] {
    if (target.connId === undefined) return [...this.#conns.values()];
    const conn = this.#conns.get(target.connId);
    return conn === undefined ? [] : [conn];
  }

  #eventParts(event: FakeEvent): [string, Record<string, unknown>] {
    const keys = Object.keys(event);
    if (keys.length !== 1 || keys[0] === undefined) {
      throw new TypeError(
        `Cannot emit event: expected one variant key, got ${keys.length}`,
      );
    }
    const variant = keys[0];
    const given = event[variant] ?? {};
    if (variant === "connection_status_event") {
      return [variant, { ...this.#statusBody(), ...given }];
    }
    return [
      variant,
      isResponseVariant(variant) ? responseBody(variant, given) : { ...given },
    ];
  }

  #statusBody(): Record<string, unknown> {
    return {
      "is_connected": this.#connected,
      "err": null,
      "instance_token": this.#instanceToken.slice(),
      "sphinx_geometry": orderedSphinxGeometry(this.#sphinx),
      "pigeonhole_geometry": orderedPigeonholeGeometry(this.#pigeonhole),
    };
  }

  #record(
    conn: ConnState,
    kind: ReceivedRequest["kind"],
    body: Record<string, unknown>,
    raw: Uint8Array,
    error?: string,
  ): ReceivedRequest {
    const rec: ReceivedRequest = error === undefined
      ? { kind, body, raw, connId: conn.id }
      : { kind, body, raw, connId: conn.id, error };
    this.#received.push(rec);
    this.#requestArrived.notify();
    return rec;
  }

  // -------------------------------------------------------------------------
  // Internals: writing

  #send(conn: ConnState, variant: string, body: unknown): void {
    if (conn.closed) return;
    const bodyBytes = encodeResponse(variant, body, this.#fullForm);
    const frame = encodeFrame(bodyBytes);
    if (this.faults.coalesceWrites) {
      if (conn.pendingCoalesce === null) {
        conn.pendingCoalesce = [];
        queueMicrotask(() => {
          const frames = conn.pendingCoalesce ?? [];
          conn.pendingCoalesce = null;
          if (frames.length > 0) this.#writeChunks(conn, [concatBytes(frames)]);
        });
      }
      conn.pendingCoalesce.push(frame);
      return;
    }
    if (this.faults.splitWrites) {
      const pieces: Uint8Array[] = [];
      for (let pos = 0; pos < frame.length;) {
        const n = this.#rng.int(1, 7);
        pieces.push(frame.subarray(pos, pos + n));
        pos += n;
      }
      this.#writeChunks(conn, pieces);
      return;
    }
    this.#writeChunks(
      conn,
      this.transport === "ws" ? [frame.subarray(0, 4), bodyBytes] : [frame],
    );
  }

  #writeChunks(conn: ConnState, chunks: Uint8Array[]): void {
    if (conn.closed) return;
    conn.writeChain = conn.writeChain
      .then(() => conn.closed ? undefined : conn.socket.write(chunks))
      .catch(() => this.#closeConn(conn, "disconnect"));
  }

  async #flush(conn: ConnState): Promise<void> {
    await Promise.resolve();
    await conn.writeChain;
  }

  // -------------------------------------------------------------------------
  // Internals: connections and sessions

  #newSession(): Session {
    const session: Session = {
      appId: this.#rng.bytes(16),
      token: null,
      conn: null,
      graceTimer: null,
      queued: [],
      encOps: new Map(),
      copyOps: new Map(),
      ops: new Set(),
      destroyed: false,
    };
    this.#sessions.add(session);
    return session;
  }

  #destroySession(session: Session): void {
    if (session.destroyed) return;
    session.destroyed = true;
    if (session.graceTimer !== null) clearTimeout(session.graceTimer);
    session.graceTimer = null;
    if (session.token !== null && this.#tokens.get(session.token) === session) {
      this.#tokens.delete(session.token);
    }
    for (const op of session.ops) {
      op.done = true;
      op.abort.abort(new Error("session destroyed"));
    }
    session.ops.clear();
    session.encOps.clear();
    session.copyOps.clear();
    session.queued = [];
    session.conn = null;
    this.#sessions.delete(session);
  }

  #accept(socket: ServerSocket): void {
    if (this.#lifetime.signal.aborted) {
      socket.close();
      return;
    }
    const conn: ConnState = {
      id: this.#nextConnId++,
      socket,
      session: null as unknown as Session,
      ready: false,
      closed: false,
      abort: new AbortController(),
      writeChain: Promise.resolve(),
      pendingCoalesce: null,
      queue: [],
      queueChanged: new Notifier(),
    };
    const session = this.#newSession();
    session.conn = conn;
    conn.session = session;
    this.#conns.set(conn.id, conn);
    this.#connsChanged.notify();
    this.#track(this.#serve(conn));
  }

  #closeConn(conn: ConnState, how: "thin_close" | "disconnect"): void {
    if (conn.closed) return;
    conn.closed = true;
    conn.abort.abort(new Error("connection closed"));
    conn.queue = [];
    conn.socket.close();
    this.#conns.delete(conn.id);
    this.#connsChanged.notify();
    const session = conn.session;
    if (how === "thin_close") {
      this.#destroySession(session);
      return;
    }
    if (session.conn !== conn) return;
    session.conn = null;
    this.#detach(session);
  }

  /** A session lost its connection: grace period if it has a token. */
  #detach(session: Session): void {
    if (session.token === null || this.#lifetime.signal.aborted) {
      this.#destroySession(session);
      return;
    }
    if (session.graceTimer !== null) clearTimeout(session.graceTimer);
    session.graceTimer = setTimeout(() => {
      session.graceTimer = null;
      this.#destroySession(session);
    }, this.#graceMs);
  }

  async #serve(conn: ConnState): Promise<void> {
    try {
      const signal = conn.abort.signal;
      if (this.faults.delayBeforeHandshakeMs > 0) {
        await delay(this.faults.delayBeforeHandshakeMs, signal);
      }
      if (this.faults.shutdownBeforeHandshake) {
        this.#send(conn, "shutdown_event", {});
        await this.#flush(conn);
        this.#closeConn(conn, "disconnect");
        return;
      }
      this.#send(conn, "connection_status_event", this.#statusBody());
      const doc = this.#doc;
      this.#send(conn, "new_pki_document_event", {
        "payload": doc === null || this.faults.pkiPayloadNull
          ? null
          : doc.payload,
      });
      conn.ready = true;
      this.#track(this.#dispatchLoop(conn));
      await this.#readLoop(conn);
    } catch {
      // connection closed or aborted
    } finally {
      this.#closeConn(conn, "disconnect");
    }
  }

  async #readLoop(conn: ConnState): Promise<void> {
    const reader = conn.socket.readable.getReader();
    const decoder = new FrameDecoder(MAX_FRAME_SIZE);
    try {
      while (!conn.closed) {
        const { value, done } = await reader.read();
        if (done) {
          if (this.faults.ignoreClientEof && !conn.closed) {
            const signal = conn.abort.signal;
            await new Promise((resolve) =>
              signal.addEventListener("abort", resolve, { once: true })
            );
          }
          return;
        }
        let bodies: Uint8Array[];
        try {
          bodies = decoder.push(value);
        } catch (err) {
          this.#record(
            conn,
            "invalid",
            {},
            value.slice(0, 4),
            (err as Error).message,
          );
          return;
        }
        for (const body of bodies) {
          await this.#handleFrame(conn, body);
          if (conn.closed) return;
        }
      }
    } finally {
      try {
        reader.releaseLock();
      } catch {
        // a read is still pending on a closed socket
      }
    }
  }

  async #handleFrame(conn: ConnState, raw: Uint8Array): Promise<void> {
    let req: DecodedRequest;
    try {
      req = decodeRequest(raw);
    } catch (err) {
      this.#record(conn, "invalid", {}, raw, (err as Error).message);
      this.#closeConn(conn, "disconnect");
      return;
    }
    const rec = this.#record(conn, req.kind, req.body, raw);
    switch (req.kind) {
      case "thin_close":
        this.#closeConn(conn, "thin_close");
        return;
      case "session_token":
        await this.#handleSessionToken(conn, req, rec);
        return;
      case "send_message":
      case "start_resending_encrypted_message":
      case "start_resending_copy_command":
      case "empty":
        while (conn.queue.length >= this.#capacity) {
          await conn.queueChanged.wait(conn.abort.signal);
        }
        conn.queue.push({ req, rec });
        conn.queueChanged.notify();
        return;
      default:
        await this.#handleLocal(conn, req, rec);
    }
  }

  async #dispatchLoop(conn: ConnState): Promise<void> {
    const signal = conn.abort.signal;
    while (!conn.closed) {
      if (conn.queue.length === 0) {
        await conn.queueChanged.wait(signal);
        continue;
      }
      if (!this.#connected) {
        await this.#connectedChanged.wait(signal);
        continue;
      }
      if (this.#mixnetDelayMs > 0) await delay(this.#mixnetDelayMs, signal);
      if (!this.#connected) continue;
      const item = conn.queue.shift();
      conn.queueChanged.notify();
      if (item === undefined) continue;
      const session = conn.session;
      switch (item.req.kind) {
        case "send_message":
          this.#track(this.#sendMessage(session, item.req, item.rec));
          break;
        case "start_resending_encrypted_message":
          this.#track(this.#startEncrypted(session, item.req, item.rec));
          break;
        case "start_resending_copy_command":
          this.#track(this.#startCopy(session, item.req, item.rec));
          break;
        default:
          break; // empty requests are dropped at dispatch
      }
    }
  }

  async #handleSessionToken(
    conn: ConnState,
    req: DecodedRequest,
    rec: ReceivedRequest,
  ): Promise<void> {
    const action = await this.#resolve("session_token", rec, conn.abort.signal);
    if (conn.closed) return;
    const token = toHex(req.fields["client_instance_token"] as Uint8Array);
    const existing = this.#tokens.get(token);
    let session: Session;
    let resumed: boolean;
    if (existing !== undefined && !existing.destroyed) {
      session = existing;
      resumed = true;
      if (conn.session !== session) {
        const provisional = conn.session;
        if (provisional.conn === conn) provisional.conn = null;
        this.#detach(provisional);
        const other = session.conn;
        if (other !== null && other !== conn) {
          const fresh = this.#newSession();
          fresh.conn = other;
          other.session = fresh;
        }
        if (session.graceTimer !== null) clearTimeout(session.graceTimer);
        session.graceTimer = null;
        session.conn = conn;
        conn.session = session;
      }
    } else {
      session = conn.session;
      resumed = false;
      if (
        session.token !== null && this.#tokens.get(session.token) === session
      ) {
        this.#tokens.delete(session.token);
      }
      session.token = token;
      this.#tokens.set(token, session);
    }
    for (const [variant, body] of session.queued.splice(0)) {
      this.#send(conn, variant, body);
    }
    if (this.faults.raceEventBeforeTokenReply) {
      this.#send(conn, "connection_status_event", this.#statusBody());
      if (this.#doc !== null) {
        this.#send(conn, "new_pki_document_event", {
          "payload": this.#doc.pushedPayload,
        });
      }
    }
    if (action.type === "none") return;
    const reply = { "app_id": session.appId.slice(), "resumed": resumed };
    this.#send(
      conn,
      "session_token_reply",
      responseBody(
        "session_token_reply",
        action.type === "reply" ? { ...reply, ...action.body } : reply,
      ),
    );
  }

  // -------------------------------------------------------------------------
  // Internals: scripts

  async #resolve(
    kind: string,
    rec: ReceivedRequest,
    signal: AbortSignal,
  ): Promise<Resolved> {
    const entry = this.#scripts.get(kind);
    if (entry === undefined) return { type: "default" };
    entry.remaining--;
    if (entry.remaining <= 0) this.#scripts.delete(kind);
    let action: ScriptAction;
    try {
      action = typeof entry.action === "function"
        ? await entry.action(rec)
        : entry.action;
    } catch {
      return { type: "none" };
    }
    while (typeof action === "object" && "delayMs" in action) {
      await delay(action.delayMs, signal);
      action = action.then ?? "default";
    }
    if (action === "default") return { type: "default" };
    if (action === "none") return { type: "none" };
    if (typeof action === "number") {
      return { type: "error", code: action, fields: {} };
    }
    if ("reply" in action) return { type: "reply", body: action.reply };
    return {
      type: "error",
      code: action.errorCode,
      fields: action.fields ?? {},
    };
  }

  // -------------------------------------------------------------------------
  // Internals: local requests

  async #handleLocal(
    conn: ConnState,
    req: DecodedRequest,
    rec: ReceivedRequest,
  ): Promise<void> {
    const kind = req.kind as RequestKind;
    const variant = `${kind}_reply`;
    const f = req.fields;
    const queryId = f["query_id"] ?? null;
    let action: Resolved;
    try {
      action = await this.#resolve(kind, rec, conn.abort.signal);
    } catch {
      return;
    }
    if (conn.closed || action.type === "none") return;
    const reply = (values: Record<string, unknown>) =>
      this.#send(
        conn,
        variant,
        responseBody(variant, { "query_id": queryId, ...values }),
      );
    if (action.type === "reply") return reply({ ...action.body });
    if (action.type === "error") {
      return reply({ "error_code": action.code, ...action.fields });
    }
    if (!LOCAL_KINDS.includes(kind)) return;
    const values = this.#local(kind, conn.session, f, conn);
    if (values !== null) reply(values);
  }

  /** Runs a local request; returns the reply's fields (null: already sent). */
  #local(
    kind: RequestKind,
    session: Session,
    f: Record<string, unknown>,
    conn: ConnState,
  ): Record<string, unknown> | null {
    const err = (code: number) => ({ "error_code": code });
    const max = this.#pigeonhole.MaxPlaintextPayloadLength;
    switch (kind) {
      case "new_keypair": {
        const seed = bytesOrNull(f["seed"]);
        if (seed === null || seed.length !== 32) return err(3);
        const pair = fakeKeypair(seed);
        return {
          "write_cap": pair.writeCap,
          "read_cap": pair.readCap,
          "first_message_index": pair.firstMessageIndex,
        };
      }
      case "encrypt_read":
      case "encrypt_write": {
        const isWrite = kind === "encrypt_write";
        const cap = bytesOrNull(f[isWrite ? "write_cap" : "read_cap"]);
        const index = bytesOrNull(f["message_box_index"]);
        const plaintext = bytesOrNull(f["plaintext"]);
        if (cap === null || index === null) return err(3);
        if (isWrite && (plaintext === null || plaintext.length > max)) {
          return err(3);
        }
        if (this.#doc === null) return err(4);
        const next = fakeNextIndex(index);
        if (next === null) return err(4);
        const ciphertext = encodeQuery(
          {
            op: isWrite ? "write" : "read",
            stream: isWrite ? streamOfWriteCap(cap) : streamOfReadCap(cap),
            index,
            plaintext: isWrite ? plaintext : null,
          },
          this.#rng.bytes(16),
          this.#pigeonhole.CourierQueryWriteLength,
        );
        return {
          "message_ciphertext": ciphertext,
          "envelope_descriptor": encodeOrdered({
            Epoch: Math.floor(this.#doc.epoch / 504),
            ReplicaNums: [0, 1],
            EnvelopeKey: this.#rng.bytes(32),
          }),
          "envelope_hash": blake2b256(ciphertext),
          "next_message_box_index": next,
        };
      }
      case "cancel_resending_encrypted_message":
      case "cancel_resending_copy_command": {
        const isCopy = kind === "cancel_resending_copy_command";
        const hash = bytesOrNull(
          f[isCopy ? "write_cap_hash" : "envelope_hash"],
        );
        if (f["query_id"] === null || hash === null) return err(3);
        const ops = isCopy ? session.copyOps : session.encOps;
        const key = toHex(hash);
        const op = ops.get(key);
        if (op !== undefined) {
          ops.delete(key);
          session.ops.delete(op);
          op.done = true;
          op.abort.abort(new Error("cancelled"));
          this.#send(
            conn,
            isCopy ? START_COPY : START_ENC,
            responseBody(
              isCopy ? START_COPY : START_ENC,
              isCopy ? { "query_id": op.queryId, "error_code": 24 } : {
                "query_id": op.queryId,
                "error_code": 24,
                "courier_identity_hash": op.courierHash,
                "courier_queue_id": op.courierQueue,
              },
            ),
          );
        }
        return {};
      }
      case "next_message_box_index": {
        const index = bytesOrNull(f["message_box_index"]);
        if (index === null) return err(3);
        const next = fakeNextIndex(index);
        return next === null ? err(4) : { "next_message_box_index": next };
      }
      case "get_message_box_index_counter": {
        const index = bytesOrNull(f["message_box_index"]);
        if (index === null) return err(3);
        return { "counter": fakeIndexCounter(index) };
      }
      case "get_pki_document": {
        const epoch = f["epoch"] as bigint;
        const doc = epoch === 0n
          ? this.#doc
          : this.#docs.get(Number(epoch)) ?? null;
        if (doc === null) {
          return {
            "epoch": epoch === 0n ? (this.#doc?.epoch ?? 0) : epoch,
            "error_code": 10,
          };
        }
        return { "payload": doc.certificate, "epoch": doc.epoch };
      }
      case "get_directory_authorities": {
        const list = this.#authorities;
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
      case "create_courier_envelopes_from_payload": {
        const cap = bytesOrNull(f["dest_write_cap"]);
        const start = bytesOrNull(f["dest_start_index"]);
        const payload = bytesOrNull(f["payload"]) ?? new Uint8Array();
        if (cap === null || start === null || payload.length > TEN_MIB) {
          return err(3);
        }
        if (this.#doc === null) return err(4);
        const built = this.#destinationEnvelopes(cap, start, payload);
        if (built === null) return err(4);
        const { elements } = cutElements(
          serializeEnvelopes(built.envelopes),
          f["is_start"] === true,
          true,
          f["is_last"] === true,
          max,
        );
        return { "envelopes": elements, "next_dest_index": built.next };
      }
      case "create_courier_envelopes_from_multi_payload": {
        const dests = f["destinations"] as Record<string, unknown>[] | null;
        if (dests === null || dests.length === 0) return err(3);
        for (const d of dests) {
          const payload = bytesOrNull(d["payload"]);
          if (
            d["write_cap"] === null || d["start_index"] === null ||
            (payload !== null && payload.length > TEN_MIB)
          ) return err(3);
        }
        const state = decodeBuffer(bytesOrNull(f["buffer"]));
        if (state === null) return err(3);
        if (this.#doc === null) return err(4);
        const envelopes: Uint8Array[] = [];
        const nexts: Uint8Array[] = [];
        for (const d of dests) {
          const built = this.#destinationEnvelopes(
            d["write_cap"] as Uint8Array,
            d["start_index"] as Uint8Array,
            bytesOrNull(d["payload"]) ?? new Uint8Array(),
          );
          if (built === null) return err(4);
          envelopes.push(...built.envelopes);
          nexts.push(built.next);
        }
        return this.#builderReply(
          state.pending,
          state.startPending || f["is_start"] === true,
          f["is_last"] === true,
          envelopes,
          { "next_dest_indices": nexts },
        );
      }
      case "create_courier_envelopes_from_tombstone_range": {
        const cap = bytesOrNull(f["dest_write_cap"]);
        const start = bytesOrNull(f["dest_start_index"]);
        const count = f["max_count"] as number;
        if (cap === null || start === null) return err(3);
        if (count === 0) return { "next_dest_index": start };
        if (count > MAX_TOMBSTONES) return err(3);
        const state = decodeBuffer(bytesOrNull(f["buffer"]));
        if (state === null) return err(3);
        if (this.#doc === null) return err(4);
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
              this.#pigeonhole.CourierQueryWriteLength - 1,
            ),
          );
        }
        return this.#builderReply(
          state.pending,
          state.startPending || f["is_start"] === true,
          f["is_last"] === true,
          envelopes,
          { "next_dest_index": end },
        );
      }
      case "voucher_mint": {
        const cap = bytesOrNull(f["message_write_cap"]);
        if (cap === null || cap.length !== WRITE_CAP_LENGTH) return err(3);
        const secret = this.#rng.bytes(32);
        const publicKey = voucherPublicKey(secret);
        const payload = encodeVoucherPayload(
          f["display_name"] as string,
          cap.subarray(32),
          publicKey,
        );
        const voucher = blake2b256(payload);
        const stream = voucherStream(voucher);
        return {
          "voucher": voucher,
          "voucher_payload": payload,
          "voucher_write_cap": stream.writeCap,
          "voucher_read_cap": stream.readCap,
          "voucher_secret_key": secret,
          "voucher_public_key": publicKey,
        };
      }
      case "voucher_derive_stream": {
        const voucher = bytesOrNull(f["voucher"]);
        if (voucher === null || voucher.length !== 32) return err(3);
        const stream = voucherStream(voucher);
        return {
          "voucher_write_cap": stream.writeCap,
          "voucher_read_cap": stream.readCap,
        };
      }
      case "voucher_induct": {
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
        const salt = this.#rng.bytes(32);
        const stream = voucherStream(voucher);
        return {
          "display_name": parsed.displayName,
          "mutated_message_read_cap": mutateReadCap(
            parsed.messageReadCap,
            salt,
          ),
          "sealed_reply": sealReply(parsed.publicKey, whoReply, salt),
          "voucher_write_cap": stream.writeCap,
          "voucher_read_cap": stream.readCap,
          "salt": salt,
        };
      }
      case "voucher_open": {
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
      default:
        return null;
    }
  }

  #destinationEnvelopes(
    cap: Uint8Array,
    start: Uint8Array,
    payload: Uint8Array,
  ): { envelopes: Uint8Array[]; next: Uint8Array } | null {
    const chunk = Math.max(1, this.#pigeonhole.MaxPlaintextPayloadLength - 4);
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
          this.#pigeonhole.CourierQueryWriteLength - 1,
        ),
      );
    }
    const next = fakeNextIndex(start, i);
    return next === null ? null : { envelopes, next };
  }

  #builderReply(
    pending: Uint8Array,
    startPending: boolean,
    isLast: boolean,
    envelopes: Uint8Array[],
    extra: Record<string, unknown>,
  ): Record<string, unknown> {
    const { elements, rest } = cutElements(
      concatBytes([pending, serializeEnvelopes(envelopes)]),
      startPending,
      false,
      isLast,
      this.#pigeonhole.MaxPlaintextPayloadLength,
    );
    return {
      "envelopes": elements,
      "buffer": isLast ? null : encodeBuffer(rest),
      ...extra,
    };
  }

  // -------------------------------------------------------------------------
  // Internals: mixnet requests

  #courier(): { hash: Uint8Array | null; queue: Uint8Array | null } {
    const service = this.#doc?.services.find((s) => s.capability === "courier");
    return service === undefined
      ? { hash: null, queue: null }
      : { hash: service.destinationIdHash, queue: service.recipientQueueId };
  }

  #deliverPigeonhole(session: Session, variant: string, body: unknown): void {
    const conn = session.conn;
    if (conn !== null && !session.destroyed) this.#send(conn, variant, body);
  }

  #deliverLegacy(
    session: Session,
    variant: string,
    body: Record<string, unknown>,
  ): void {
    if (session.destroyed) return;
    if (session.conn !== null) {
      this.#send(session.conn, variant, body);
      return;
    }
    const queueable = variant === "message_reply_event" ||
      variant === "message_id_garbage_collected";
    if (queueable && session.queued.length < this.#maxQueued) {
      session.queued.push([variant, body]);
    }
  }

  #registerOp(
    session: Session,
    kind: ArqOp["kind"],
    key: string | null,
    queryId: Uint8Array | null,
    courier: { hash: Uint8Array | null; queue: Uint8Array | null },
  ): ArqOp {
    const op: ArqOp = {
      kind,
      key,
      queryId,
      session,
      abort: new AbortController(),
      done: false,
      courierHash: courier.hash,
      courierQueue: courier.queue,
    };
    if (session.destroyed) {
      op.done = true;
      return op;
    }
    session.ops.add(op);
    if (key !== null) {
      (kind === "copy" ? session.copyOps : session.encOps).set(key, op);
    }
    return op;
  }

  /** Ends an operation with a reply (dropped, and the op stranded, while the client is away). */
  #finishOp(op: ArqOp, variant: string, values: Record<string, unknown>): void {
    if (op.done) return;
    op.done = true;
    const session = op.session;
    if (session.conn === null || session.destroyed) return; // stranded
    this.#forgetOp(op);
    this.#send(session.conn, variant, responseBody(variant, values));
  }

  #forgetOp(op: ArqOp): void {
    op.done = true;
    const session = op.session;
    session.ops.delete(op);
    if (op.key !== null) {
      const ops = op.kind === "copy" ? session.copyOps : session.encOps;
      if (ops.get(op.key) === op) ops.delete(op.key);
    }
  }

  async #startEncrypted(
    session: Session,
    req: DecodedRequest,
    rec: ReceivedRequest,
  ): Promise<void> {
    const f = req.fields;
    const queryId = f["query_id"] as Uint8Array | null;
    const hash = f["envelope_hash"] as Uint8Array | null;
    const valid = queryId !== null && hash !== null &&
      nonEmpty(f["message_ciphertext"]) && nonEmpty(f["envelope_descriptor"]) &&
      ((f["read_cap"] === null) !== (f["write_cap"] === null));
    const scripted = this.#scripts.has(req.kind);
    const fail = (code: number) =>
      this.#deliverPigeonhole(
        session,
        START_ENC,
        responseBody(START_ENC, { "query_id": queryId, "error_code": code }),
      );
    if (!scripted && !valid) return fail(3);
    if (!scripted && this.#doc === null) return fail(4);
    const courier = this.#courier();
    const op = this.#registerOp(
      session,
      "encrypted",
      valid ? toHex(hash) : null,
      queryId,
      courier,
    );
    const finish = (values: Record<string, unknown>) =>
      this.#finishOp(op, START_ENC, {
        "query_id": queryId,
        "courier_identity_hash": courier.hash,
        "courier_queue_id": courier.queue,
        ...values,
      });
    const signal = AbortSignal.any([op.abort.signal, this.#lifetime.signal]);
    const action = await this.#resolve(req.kind, rec, signal);
    if (op.done) return;
    switch (action.type) {
      case "none":
        this.#forgetOp(op);
        return;
      case "reply":
        return this.#finishOp(op, START_ENC, {
          "query_id": queryId,
          ...action.body,
        });
      case "error": {
        const early = action.code === 3 || action.code === 4;
        return finish({
          "error_code": action.code,
          ...(early
            ? { "courier_identity_hash": null, "courier_queue_id": null }
            : {}),
          ...action.fields,
        });
      }
    }
    if (!valid || this.#doc === null) {
      return finish({
        "error_code": valid ? 4 : 3,
        "courier_identity_hash": null,
        "courier_queue_id": null,
      });
    }
    if (this.#arqDelayMs > 0) await delay(this.#arqDelayMs, signal);
    if (op.done) return;
    const query = decodeQuery(f["message_ciphertext"] as Uint8Array);
    const isRead = f["read_cap"] !== null;
    if (query === null) {
      return finish({ "error_code": isRead ? 22 : 0 });
    }
    if (query.op !== (isRead ? "read" : "write")) {
      return finish({ "error_code": 4 });
    }
    const key = boxKey(query.stream, query.index);
    if (!isRead) {
      const outcome = this.#boxes.write(
        key,
        query.plaintext ?? new Uint8Array(),
      );
      const refuse = outcome === "exists" &&
        f["no_idempotent_box_already_exists"] === true;
      return finish({ "error_code": refuse ? 10 : 0 });
    }
    const index = bytesOrNull(f["message_box_index"]);
    if (index === null || index.length === 0) {
      return finish({ "error_code": 4 });
    }
    if (
      !bytesEqual(streamOfReadCap(f["read_cap"] as Uint8Array), query.stream) ||
      !bytesEqual(index, query.index)
    ) return finish({ "error_code": 23 });
    while (!op.done) {
      const box = this.#boxes.get(key);
      if (box !== undefined) {
        return finish(
          box.tombstone
            ? { "error_code": 11 }
            : { "plaintext": box.plaintext, "error_code": 0 },
        );
      }
      if (f["no_retry_on_box_id_not_found"] === true) {
        return finish({ "error_code": 1 });
      }
      await new Promise<void>((resolve, reject) => {
        const off = this.#boxes.onWrite(key, () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        });
        const onAbort = () => {
          off();
          reject(signal.reason);
        };
        signal.addEventListener("abort", onAbort, { once: true });
      });
    }
  }

  async #startCopy(
    session: Session,
    req: DecodedRequest,
    rec: ReceivedRequest,
  ): Promise<void> {
    const f = req.fields;
    const queryId = f["query_id"] as Uint8Array | null;
    const cap = f["write_cap"] as Uint8Array | null;
    const valid = queryId !== null && cap !== null;
    const scripted = this.#scripts.has(req.kind);
    const fail = (code: number) =>
      this.#deliverPigeonhole(
        session,
        START_COPY,
        responseBody(START_COPY, { "query_id": queryId, "error_code": code }),
      );
    if (!scripted && !valid) return fail(3);
    if (!scripted && this.#doc === null) return fail(4);
    const pinnedHash = bytesOrNull(f["courier_identity_hash"]);
    const pinnedQueue = bytesOrNull(f["courier_queue_id"]);
    const courier = pinnedHash !== null && nonEmpty(pinnedQueue)
      ? { hash: pinnedHash, queue: pinnedQueue }
      : this.#courier();
    const key = cap === null ? null : toHex(blake2b256(cap));
    const op = this.#registerOp(session, "copy", key, queryId, courier);
    const signal = AbortSignal.any([op.abort.signal, this.#lifetime.signal]);
    const action = await this.#resolve(req.kind, rec, signal);
    if (op.done) return;
    switch (action.type) {
      case "none":
        this.#forgetOp(op);
        return;
      case "reply":
        return this.#finishOp(op, START_COPY, {
          "query_id": queryId,
          ...action.body,
        });
      case "error":
        return this.#finishOp(op, START_COPY, {
          "query_id": queryId,
          "error_code": action.code,
          ...action.fields,
        });
    }
    if (cap === null || key === null || !valid || this.#doc === null) {
      return this.#finishOp(op, START_COPY, {
        "query_id": queryId,
        "error_code": valid ? 4 : 3,
      });
    }
    if (this.#copyDelayMs > 0) await delay(this.#copyDelayMs, signal);
    if (op.done) return;
    let result = this.#copyResults.get(key);
    if (result === undefined) {
      result = this.#executeCopy(cap);
      this.#copyResults.set(key, result);
    }
    this.#finishOp(op, START_COPY, {
      "query_id": queryId,
      "error_code": result.code,
      "replica_error_code": result.replica,
      "failed_envelope_index": result.failed,
    });
  }

  /** Reads the temporary stream, applies its envelopes, tombstones it. */
  #executeCopy(cap: Uint8Array): CopyResult {
    const failed = (replica: number, index = 0): CopyResult => ({
      code: 26,
      replica,
      failed: index,
    });
    const stream = streamOfWriteCap(cap);
    let index: Uint8Array | null = firstIndexOfWriteCap(cap).slice();
    const data: Uint8Array[] = [];
    const tempKeys: string[] = [];
    let final = false;
    for (let n = 0; n < MAX_COPY_BOXES && !final && index !== null; n++) {
      const key = boxKey(stream, index);
      const box = this.#boxes.get(key);
      if (box === undefined) return failed(1);
      if (box.tombstone) return failed(11);
      const element = parseElement(box.plaintext);
      if (element === null) return failed(5);
      tempKeys.push(key);
      data.push(element.data);
      final = (element.flags & FLAG_FINAL) !== 0;
      index = fakeNextIndex(index);
    }
    if (!final) return failed(1);
    const envelopes = splitEnvelopes(concatBytes(data));
    if (envelopes === null) return failed(5);
    for (const [i, bytes] of envelopes.entries()) {
      const env = decodeDestinationEnvelope(bytes);
      if (env === null) return failed(5, i + 1);
      const outcome = this.#boxes.write(
        boxKey(env.stream, env.index),
        env.plaintext ?? new Uint8Array(),
      );
      if (outcome === "exists") return failed(10, i + 1);
    }
    for (const key of tempKeys) this.#boxes.write(key, new Uint8Array());
    return { code: 0, replica: 0, failed: 0 };
  }

  async #sendMessage(
    session: Session,
    req: DecodedRequest,
    rec: ReceivedRequest,
  ): Promise<void> {
    const f = req.fields;
    const ids = { "message_id": f["id"], "surbid": f["surbid"] };
    const action = await this.#resolve(req.kind, rec, this.#lifetime.signal);
    const sentAt = Math.floor(this.#now() / 1000);
    const sent = (values: Record<string, unknown>) =>
      this.#deliverLegacy(
        session,
        "message_sent_event",
        responseBody("message_sent_event", { ...ids, ...values }),
      );
    switch (action.type) {
      case "none":
        return;
      case "reply":
        return sent({ ...action.body });
      case "error":
        return sent({
          "sent_at": sentAt,
          "reply_eta": 0,
          "err": "scripted failure",
          ...action.fields,
        });
    }
    if (f["with_surb"] !== true) return;
    const payload = bytesOrNull(f["payload"]) ?? new Uint8Array();
    const queueId = bytesOrNull(f["recipient_queue_id"]) ?? new Uint8Array();
    const destination = bytesOrNull(f["destination_id_hash"]);
    const max = this.#sphinx.UserForwardPayloadLength;
    let error: string | null = null;
    if (payload.length > max) {
      error = `message too large: ${payload.length} > ${max}`;
    } else if (destination === null) {
      error = "request.DestinationIdHash is nil";
    } else if (queueId.length === 0 || queueId.length > 32) {
      error = `invalid recipient queue ID length: ${queueId.length}`;
    } else if (this.#doc === null) {
      error = "no PKI document";
    }
    const service = destination === null
      ? undefined
      : this.#doc?.services.find((s) =>
        bytesEqual(s.destinationIdHash, destination)
      );
    if (error === null && service === undefined) {
      error = "client: recipient is nil";
    }
    if (error !== null) {
      return sent({ "sent_at": sentAt, "reply_eta": 0, "err": error });
    }
    sent({ "sent_at": sentAt, "reply_eta": this.#replyEtaNs });
    const isEcho =
      this.#doc?.services.some((s) =>
        s.capability === "echo" && destination !== null &&
        bytesEqual(s.destinationIdHash, destination) &&
        s.endpoint === fromUtf8(queueId)
      ) ?? false;
    if (!isEcho) return;
    if (this.#echoDelayMs > 0) {
      await delay(this.#echoDelayMs, this.#lifetime.signal);
    }
    // kpclientd v0.0.99 delivers the whole SURB payload: ForwardPayloadLength bytes.
    const padded = new Uint8Array(
      Math.max(this.#sphinx.ForwardPayloadLength, payload.length),
    );
    padded.set(payload);
    this.#deliverLegacy(
      session,
      "message_reply_event",
      responseBody("message_reply_event", {
        ...ids,
        "payload": padded,
        "error_code": 0,
      }),
    );
  }
}

function checkIndex(index: Uint8Array): Uint8Array {
  if (index.length !== 104) {
    throw new RangeError(
      `Cannot address box: index length ${index.length} is not 104`,
    );
  }
  return index;
}
