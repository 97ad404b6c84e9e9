/**
 * Option types shared by the client and the Pigeonhole types (both import
 * them from here; lib/client.ts re-exports them).
 *
 * @module
 */
import type { RequestKind, ResponseKind } from "./protocol.ts";

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
