/**
 * Events a {@linkcode ThinClient} delivers to its subscribers, and the
 * bounded per-subscriber queue behind `client.events()`.
 *
 * @module
 */
import type { PkiDocument } from "./pki.ts";
import type { PigeonholeGeometry, SphinxGeometry } from "./protocol.ts";

/**
 * Everything a client reports, as a discriminated union on `type`.
 *
 * - `connection_status`: the daemon's link to the mixnet changed (or was repeated).
 * - `pki_document`: the daemon has a new consensus document.
 * - `message_sent`: a `sendMessage` with a SURB left the daemon (or failed: `error`).
 * - `message_reply`: a SURB reply arrived.
 * - `message_id_garbage_collected`: defined by the protocol, not sent by v0.0.99.
 * - `shutdown`: the daemon announced it is stopping.
 * - `daemon_disconnected`: the local connection to the daemon was lost.
 * - `reconnected`: the connection is back; `resumed` tells whether the daemon kept the session.
 * - `state`: `client.state` changed (see {@linkcode ClientState}).
 * - `events_dropped`: this subscriber fell behind and `count` events were dropped for it.
 *
 * @example Usage
 * ```ts ignore
 * for await (const event of client.events()) {
 *   if (event.type === "message_reply") console.log(event.payload);
 * }
 * ```
 */
export type ThinClientEvent =
  | {
    type: "connection_status";
    isConnected: boolean;
    instanceToken: Uint8Array;
    sphinxGeometry: SphinxGeometry;
    pigeonholeGeometry: PigeonholeGeometry;
  }
  | { type: "pki_document"; document: PkiDocument }
  | {
    type: "message_sent";
    messageId: Uint8Array | null;
    surbId: Uint8Array | null;
    sentAt: Date | null;
    replyEtaMs: number;
    error: string | null;
  }
  | {
    type: "message_reply";
    messageId: Uint8Array | null;
    surbId: Uint8Array | null;
    payload: Uint8Array;
    replyIndex: number | null;
    errorCode: number;
  }
  | { type: "message_id_garbage_collected"; messageId: Uint8Array | null }
  | { type: "shutdown" }
  | { type: "daemon_disconnected"; graceful: boolean; error: Error | null }
  | {
    type: "reconnected";
    resumed: boolean;
    instanceTokenChanged: boolean;
    appId: Uint8Array;
  }
  | { type: "state"; state: ClientState; previous: ClientState }
  | { type: "events_dropped"; count: number };

/**
 * Where a client stands, as `client.state` says and `state` events announce:
 *
 * - `connected`: the connection to the daemon is up and the daemon is on the
 *   mixnet.
 * - `daemon_offline`: the connection is up but the daemon has lost the
 *   mixnet: local calls work, mixnet traffic waits or fails.
 * - `reconnecting`: the connection to the daemon was lost; the client redials
 *   with backoff and will re-send what is waiting.
 * - `closed`: closed, detached, or given up; `client.closed()` tells why.
 *
 * @example Usage
 * ```ts ignore
 * for await (const ev of client.events({ types: ["state"] })) {
 *   if (ev.type === "state") console.log(`${ev.previous} -> ${ev.state}`);
 * }
 * ```
 */
export type ClientState =
  | "connected"
  | "daemon_offline"
  | "reconnecting"
  | "closed";

/**
 * The `type` of every {@linkcode ThinClientEvent}, in the order listed there.
 *
 * @example Usage
 * ```ts
 * import { EVENT_TYPES } from "@katzenpost/thinclient";
 * console.log(EVENT_TYPES.includes("message_reply")); // true
 * ```
 */
export const EVENT_TYPES: readonly ThinClientEvent["type"][] = Object.freeze(
  [
    "connection_status",
    "pki_document",
    "message_sent",
    "message_reply",
    "message_id_garbage_collected",
    "shutdown",
    "daemon_disconnected",
    "reconnected",
    "state",
    "events_dropped",
  ] as const satisfies readonly ThinClientEvent["type"][],
);

/**
 * The events a subscriber to the types `T` receives: those, and
 * `events_dropped`, which every subscriber gets when it falls behind.
 *
 * @example Usage
 * ```ts
 * import type { EventOf } from "@katzenpost/thinclient";
 * type Replies = EventOf<"message_reply">; // message_reply | events_dropped
 * ```
 */
export type EventOf<T extends ThinClientEvent["type"]> = Extract<
  ThinClientEvent,
  { type: T | "events_dropped" }
>;

/**
 * Options of `client.events()`; `T` is inferred from `types`.
 *
 * @example Usage
 * ```ts ignore
 * const controller = new AbortController();
 * const events = client.events({ signal: controller.signal, bufferSize: 64 });
 * ```
 */
export interface EventsOptions<
  T extends ThinClientEvent["type"] = ThinClientEvent["type"],
> {
  /** Ends the iterator when aborted. */
  signal?: AbortSignal;
  /**
   * Only these event types (plus `events_dropped`) are delivered, and only
   * they take room in the buffer.
   * @default {every type}
   */
  types?: readonly T[];
  /**
   * Most events buffered for this subscriber; when it is full the oldest are
   * dropped and an `events_dropped` event tells how many.
   * @default {1024}
   */
  bufferSize?: number;
}

/** Checks `types`: a set of known types, or `null` for all of them. */
function typeFilter(
  types: readonly string[] | undefined,
): ReadonlySet<string> | null {
  if (types === undefined) return null;
  if (!Array.isArray(types) || types.length === 0) {
    throw new RangeError(
      "Cannot subscribe: types is not a non-empty array of event types (omit it for every type)",
    );
  }
  for (const t of types) {
    if (!(EVENT_TYPES as readonly unknown[]).includes(t)) {
      throw new RangeError(
        `Cannot subscribe: '${t}' is not an event type (known: ${
          EVENT_TYPES.join(", ")
        })`,
      );
    }
  }
  return new Set(types);
}

/** One subscriber's bounded queue. Never blocks the producer. */
export class EventQueue implements AsyncIterableIterator<ThinClientEvent> {
  readonly #buffer: ThinClientEvent[] = [];
  readonly #max: number;
  readonly #types: ReadonlySet<string> | null;
  #dropped = 0;
  #done = false;
  // Every pending next() call, oldest first (callers may call next() again
  // before the previous promise settles).
  readonly #waiters: ((r: IteratorResult<ThinClientEvent>) => void)[] = [];
  readonly #onEnd: () => void;
  readonly #signal: AbortSignal | undefined;
  readonly #abort = (): void => {
    this.end();
  };

  constructor(
    max: number,
    onEnd: () => void,
    signal?: AbortSignal,
    types?: readonly string[],
  ) {
    if (!Number.isInteger(max) || max < 1) {
      throw new RangeError(
        `Cannot subscribe: bufferSize '${max}' is not a positive integer`,
      );
    }
    this.#max = max;
    this.#types = typeFilter(types);
    this.#onEnd = onEnd;
    this.#signal = signal;
    signal?.addEventListener("abort", this.#abort, { once: true });
    if (signal?.aborted) this.end();
  }

  /** Adds an event; drops the oldest when full. */
  push(event: ThinClientEvent): void {
    if (this.#done) return;
    if (this.#types !== null && !this.#types.has(event.type)) return;
    const waiter = this.#dropped === 0 ? this.#waiters.shift() : undefined;
    if (waiter !== undefined) {
      waiter({ value: event, done: false });
      return;
    }
    if (this.#buffer.length >= this.#max) {
      this.#buffer.shift();
      this.#dropped++;
    }
    this.#buffer.push(event);
  }

  /** Ends the iterator after the buffered events. */
  end(): void {
    if (this.#done) return;
    this.#done = true;
    this.#signal?.removeEventListener("abort", this.#abort);
    this.#onEnd();
    for (const w of this.#waiters.splice(0)) {
      w({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<ThinClientEvent>> {
    if (this.#dropped > 0) {
      const count = this.#dropped;
      this.#dropped = 0;
      return Promise.resolve({
        value: { type: "events_dropped", count },
        done: false,
      });
    }
    const event = this.#buffer.shift();
    if (event !== undefined) {
      return Promise.resolve({ value: event, done: false });
    }
    if (this.#done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => {
      this.#waiters.push(resolve);
    });
  }

  return(): Promise<IteratorResult<ThinClientEvent>> {
    this.#buffer.length = 0;
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<ThinClientEvent> {
    return this;
  }
}
