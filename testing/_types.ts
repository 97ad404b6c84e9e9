/**
 * The public types of the fake daemon: what it records, how it is scripted,
 * its fault switches and its options.
 *
 * @module
 */
import type {
  FakeDirectoryAuthority,
  FakePkiDocument,
  WirePigeonholeGeometry,
  WireSphinxGeometry,
} from "./_pki.ts";
import type { FakeTransport } from "./_transport.ts";
import type { RequestKind } from "./_wire.ts";

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
