// Shared helpers of the ThinClient unit tests: start the fake daemon, connect
// a client to it, record events, and wait with deadlines (never forever).
import assert from "node:assert/strict";
import { delay } from "../lib/_async.ts";
import { toHex } from "../lib/_bytes.ts";
import { ThinClient, type ThinClientOptions } from "../lib/client.ts";
import type { ThinClientEvent } from "../lib/events.ts";
import type { Dialer } from "../lib/conn.ts";
import { decodeCbor, encodeCbor } from "../lib/cbor.ts";
import { encodeFrame, FrameDecoder } from "../lib/framing.ts";
import {
  buildPkiDocument,
  DEFAULT_PIGEONHOLE_GEOMETRY,
  DEFAULT_SPHINX_GEOMETRY,
  FakeDaemon,
  type FakeDaemonOptions,
  type FakeRequestKind,
  type ReceivedRequest,
} from "../testing/mod.ts";
import { memoryPair, type ServerSocket } from "../testing/_transport.ts";

/** UTF-8 bytes of a string. */
export function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** A string from UTF-8 bytes. */
export function fromUtf8(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

/** `length` bytes, all `fill`. */
export function filled(length: number, fill = 0): Uint8Array {
  return new Uint8Array(length).fill(fill);
}

/** Lower-case hex of bytes. */
export const hex: (bytes: Uint8Array) => string = toHex;

/** Starts a fake daemon; in-memory unless a transport is given. */
export function startFake(
  options: FakeDaemonOptions = {},
): Promise<FakeDaemon> {
  return FakeDaemon.start({ transport: "memory", ...options });
}

/**
 * Connects a client to a fake daemon with a quick reconnect policy (20 ms
 * first delay) unless the options say otherwise.
 */
export function connectTo(
  target: FakeDaemon | Dialer,
  options: ThinClientOptions = {},
): Promise<ThinClient> {
  const dialer = target instanceof FakeDaemon ? target.dialer : target;
  return ThinClient.connect(dialer, {
    reconnect: { initialDelay: 20, maxDelay: 200 },
    handshakeTimeout: 5000,
    ...options,
  });
}

/** Sleeps; keep it short. */
export const sleep: (ms: number, signal?: AbortSignal) => Promise<void> = delay;

/** Rejects when `promise` does not settle within `ms`. */
export async function within<T>(
  promise: Promise<T>,
  ms: number,
  what = "the operation",
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)),
      ms,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Settlement of a promise after the current macrotask. */
export async function stateOf(
  promise: Promise<unknown>,
): Promise<"pending" | "fulfilled" | "rejected"> {
  let state: "pending" | "fulfilled" | "rejected" = "pending";
  promise.then(() => state = "fulfilled", () => state = "rejected");
  await sleep(0);
  return state;
}

/** Polls `check` every 5 ms until it is true, at most `ms` milliseconds. */
export async function until(
  check: () => boolean,
  ms = 10_000,
  what = "a condition",
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    }
    await sleep(5);
  }
}

/** The requests of one kind the fake has received so far. */
export function receivedOf(
  fake: FakeDaemon,
  kind: FakeRequestKind | "empty" | "invalid",
): ReceivedRequest[] {
  return fake.received.filter((r) => r.kind === kind);
}

/** The `query_id` of a received request. */
export function queryIdOf(request: ReceivedRequest): Uint8Array {
  const q = request.body["query_id"];
  assert.ok(q instanceof Uint8Array, "request has a query_id");
  return q;
}

/** Asserts a promise rejects with exactly `reason` (identity). */
export async function rejectsWith(
  promise: Promise<unknown>,
  reason: unknown,
): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.equal(err, reason);
    return true;
  });
}

type EventOf<T extends ThinClientEvent["type"]> = Extract<
  ThinClientEvent,
  { type: T }
>;

/**
 * Subscribes to a client's events and records them all; `next()` consumes
 * them per type in arrival order (like `FakeDaemon.waitForRequest`).
 */
export class EventLog {
  readonly events: ThinClientEvent[] = [];
  /** Resolves when the subscription ends. */
  readonly ended: Promise<void>;
  readonly #cursors = new Map<string, number>();
  #wake: (() => void) | null = null;

  constructor(client: ThinClient, signal?: AbortSignal) {
    const it = client.events(signal === undefined ? {} : { signal });
    this.ended = (async () => {
      for await (const event of it) {
        this.events.push(event);
        this.#wake?.();
      }
      this.#wake?.();
    })();
  }

  /** Events of one type received so far. */
  of<T extends ThinClientEvent["type"]>(type: T): EventOf<T>[] {
    return this.events.filter((e): e is EventOf<T> => e.type === type);
  }

  /** The next not yet consumed event of `type`, waiting up to `ms`. */
  async next<T extends ThinClientEvent["type"]>(
    type: T,
    ms = 10_000,
  ): Promise<EventOf<T>> {
    const deadline = Date.now() + ms;
    while (true) {
      const start = this.#cursors.get(type) ?? 0;
      for (let i = start; i < this.events.length; i++) {
        const e = this.events[i];
        if (e?.type === type) {
          this.#cursors.set(type, i + 1);
          return e as EventOf<T>;
        }
      }
      this.#cursors.set(type, this.events.length);
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`Timed out after ${ms} ms waiting for event "${type}"`);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
      this.#wake = null;
    }
  }
}

/**
 * A hand-driven daemon on an in-memory pipe: the test sends each daemon frame
 * itself and reads every frame the client wrote, to pin down ordering.
 */
export class ManualDaemon {
  readonly dialer: Dialer;
  /** Frames the client wrote, decoded: `[variant, body]`. */
  readonly requests: [string, Record<string, unknown>][] = [];
  #server: ServerSocket | null = null;
  #wake: (() => void) | null = null;
  #pumps: Promise<void>[] = [];
  dials = 0;

  constructor() {
    this.dialer = {
      address: "manual",
      dial: (options) => {
        if (options?.signal?.aborted) {
          return Promise.reject(options.signal.reason);
        }
        const { client, server } = memoryPair();
        this.dials++;
        this.#server = server;
        this.#pumps.push(this.#pump(server));
        return Promise.resolve(client);
      },
    };
  }

  async #pump(server: ServerSocket): Promise<void> {
    const reader = server.readable.getReader();
    const decoder = new FrameDecoder();
    try {
      while (true) {
        const { value, done } = await reader.read();
        if (done) return;
        for (const body of decoder.push(value)) {
          const envelope = decodeCbor(body) as Record<string, unknown>;
          const [variant, inner] = Object.entries(envelope)[0] ?? ["?", {}];
          this.requests.push([variant, inner as Record<string, unknown>]);
          this.#wake?.();
        }
      }
    } catch {
      // closed
    } finally {
      reader.releaseLock();
    }
  }

  /** Sends one daemon frame `{ variant: body }` (single-key form). */
  send(variant: string, body: Record<string, unknown>): Promise<void> {
    return this.sendRaw(encodeFrame(encodeCbor({ [variant]: body })));
  }

  /** Sends raw bytes. */
  sendRaw(bytes: Uint8Array): Promise<void> {
    assert.ok(this.#server !== null, "a client has dialled");
    return this.#server.write([bytes]);
  }

  /** Frame #1 with the default geometries. */
  sendStatus(isConnected = true, token = filled(16, 7)): Promise<void> {
    return this.send("connection_status_event", {
      "is_connected": isConnected,
      "err": null,
      "instance_token": token,
      "sphinx_geometry": { ...DEFAULT_SPHINX_GEOMETRY },
      "pigeonhole_geometry": { ...DEFAULT_PIGEONHOLE_GEOMETRY },
    });
  }

  /** Frame #2 with a document (or `null`). */
  sendDocument(payload: Uint8Array | null = defaultDocument()): Promise<void> {
    return this.send("new_pki_document_event", { "payload": payload });
  }

  /** Waits until the client has written `count` frames in total. */
  async waitForRequests(count: number, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.requests.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`Timed out waiting for ${count} client frame(s)`);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
      this.#wake = null;
    }
  }

  /** Closes the current connection and waits for the readers to stop. */
  async close(): Promise<void> {
    this.#server?.close();
    await Promise.all(this.#pumps);
  }
}

let cachedDocument: Uint8Array | null = null;

/** The handshake payload of the fake's default PKI document. */
export function defaultDocument(): Uint8Array {
  cachedDocument ??= buildPkiDocument().payload;
  return cachedDocument;
}
