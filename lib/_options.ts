/**
 * The client's option types: those of `ThinClient.connect` (used by the
 * session too), of every waiting call, and of reconnection. The client, the
 * session and the Pigeonhole types import them from here; lib/client.ts
 * re-exports them.
 *
 * @module
 */
import type { RequestKind, ResponseKind } from "./protocol.ts";

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
  /**
   * Called once for each request with a query id (every call but the
   * message sends) when it settles, if it got as far as being sent or
   * queued: its kind, duration and outcome, to log or measure where the time
   * goes. It gets no ids, capabilities or payloads. It runs synchronously;
   * what it throws is ignored.
   */
  onCall?: (record: CallRecord) => void;
}

/**
 * What `onCall` (see {@linkcode ThinClientOptions}) reports of one settled
 * request.
 *
 * @example Usage
 * ```ts ignore
 * const client = await ThinClient.connect(dialer, {
 *   onCall: (r) => console.log(`${r.kind} ${r.outcome} in ${r.durationMs} ms`),
 * });
 * ```
 */
export interface CallRecord {
  /** The request kind, e.g. `start_resending_encrypted_message`. */
  kind: RequestKind;
  /** How it ended: a reply (`ok` or `error`), an abort, or the client closing. */
  outcome: "ok" | "error" | "aborted" | "closed";
  /** Milliseconds from the call to its settling, offline waits included. */
  durationMs: number;
  /** The reply's error code (0 for success), or `null` without a reply. */
  errorCode: number | null;
  /** How many times the client re-sent it after reconnecting. */
  resent: number;
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
 * Reconnection policy: exponential backoff from `initialDelay` to `maxDelay`,
 * with jitter. Each wait is drawn at random between half the current delay
 * and the whole of it ("equal jitter"), so that many clients that lost the
 * same daemon do not all redial at the same instant.
 *
 * @example Usage
 * ```ts ignore
 * await ThinClient.connect(dialer, { reconnect: { initialDelay: 200, maxDelay: 5000 } });
 * ```
 */
export interface ReconnectOptions {
  /**
   * Milliseconds of the first delay: the first redial comes after a random
   * wait between half of it and all of it.
   * @default {1000}
   */
  initialDelay?: number;
  /**
   * Upper bound of the doubling delay, in milliseconds; no wait after the
   * first exceeds it (the jitter only shortens a wait).
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

/** Call options carrying `signal` when there is one. */
export function callOptions(signal: AbortSignal | undefined): CallOptions {
  return signal === undefined ? {} : { signal };
}
