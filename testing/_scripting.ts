/**
 * What a test makes the fake daemon do instead of its normal behaviour: the
 * table of scripted replies per request kind, the fault switches, and the
 * shaping of events a test emits.
 *
 * @module
 */
import { delay } from "../lib/_async.ts";
import type { ReceivedRequest } from "./_types.ts";
import { isResponseVariant, responseBody } from "./_wire.ts";

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

/** A {@linkcode ScriptAction} once its handler ran and its delays passed. */
export type Resolved =
  | { type: "default" }
  | { type: "none" }
  | { type: "error"; code: number; fields: Readonly<Record<string, unknown>> }
  | { type: "reply"; body: Readonly<Record<string, unknown>> };

interface ScriptEntry {
  action: ScriptAction | ScriptHandler;
  remaining: number;
}

/** The scripts in force, by request kind. */
export class ScriptTable {
  readonly #scripts = new Map<string, ScriptEntry>();

  /**
   * Sets (or with `null` removes) the script of a kind.
   *
   * @throws {TypeError} For `thin_close`, which has no reply.
   */
  set(
    kind: string,
    action: ScriptAction | ScriptHandler | null,
    options: ScriptOptions,
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

  /** Whether a script is in force for `kind`. */
  has(kind: string): boolean {
    return this.#scripts.has(kind);
  }

  /**
   * Consumes one use of the script of `kind` (if any) for a request and
   * resolves its action: runs a handler (a rejection means no reply) and
   * waits out delays, which `signal` cuts short.
   */
  async resolve(
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
}

/** The fault switches: all off, then those given. */
export function initialFaults(
  given: Partial<FakeDaemonFaults> = {},
): FakeDaemonFaults {
  return {
    delayBeforeHandshakeMs: 0,
    shutdownBeforeHandshake: false,
    pkiPayloadNull: false,
    raceEventBeforeTokenReply: false,
    splitWrites: false,
    coalesceWrites: false,
    ignoreClientEof: false,
    ...given,
  };
}

/**
 * Splits an emitted event into its variant and a complete body: a
 * `connection_status_event` is completed from `status`, a known response
 * variant gets zero values for missing fields, anything else is sent as given.
 *
 * @throws {TypeError} When `event` does not have exactly one key.
 */
export function eventParts(
  event: FakeEvent,
  status: () => Record<string, unknown>,
): [string, Record<string, unknown>] {
  const keys = Object.keys(event);
  if (keys.length !== 1 || keys[0] === undefined) {
    throw new TypeError(
      `Cannot emit event: expected one variant key, got ${keys.length}`,
    );
  }
  const variant = keys[0];
  const given = event[variant] ?? {};
  if (variant === "connection_status_event") {
    return [variant, { ...status(), ...given }];
  }
  return [
    variant,
    isResponseVariant(variant) ? responseBody(variant, given) : { ...given },
  ];
}
