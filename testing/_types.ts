/**
 * What the fake daemon records and how a test waits for it: the received
 * requests, connection targets and wait options.
 *
 * @module
 */
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
