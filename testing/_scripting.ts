/**
 * What a test makes the fake daemon do instead of its normal behaviour: the
 * table of scripted replies per request kind, the fault switches, and the
 * shaping of events a test emits.
 *
 * @module
 */
import { delay } from "../lib/_async.ts";
import type {
  FakeDaemonFaults,
  FakeEvent,
  ReceivedRequest,
  ScriptAction,
  ScriptHandler,
  ScriptOptions,
} from "./_types.ts";
import { isResponseVariant, responseBody } from "./_wire.ts";

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
