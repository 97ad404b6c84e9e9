/**
 * Request correlation: the requests waiting for their replies (by query id),
 * one abort listener per caller signal, and the cancels the client sends
 * (and retries) for an aborted `start_resending_*`.
 *
 * @module
 */
import { idKey, randomIdView, toHex } from "./_bytes.ts";
import { abortReason, type Deferred, deferredUnmarked } from "./_async.ts";
import type { CallOptions, CallRecord, ReplyKindFor } from "./_options.ts";
import { MessageBoxIndex, ReadCap, WriteCap } from "./caps.ts";
import { DaemonError } from "./errors.ts";
import { blake2b256 } from "./hash.ts";
import {
  ID_LENGTH,
  type Request,
  type RequestKind,
  type Response,
  type ResponseKind,
  type ResponseOf,
} from "./protocol.ts";

/** A request that carries a query id. */
export type QueryRequest = Request & { queryId: Uint8Array };

/**
 * Turns a reply into the error its call rejects with, or `null` for a reply
 * the call resolves with. A plain function, shared by every request it
 * checks: a request costs no closure.
 */
export type ReplyCheck = (reply: Response) => Error | null;

/**
 * The {@linkcode DaemonError} a reply's non-zero `errorCode` stands for, named
 * after `operation` (by default the request kind), or `null` for code 0.
 */
export function replyError(
  reply: { kind: string; errorCode: number },
  operation?: string,
): DaemonError | null {
  return reply.errorCode === 0 ? null : new DaemonError(
    reply.errorCode,
    operation ?? reply.kind.replace(/_reply$/, ""),
  );
}

/** The usual reply check (see `ReplyCheck`): a DaemonError for any non-zero code. */
export function daemonError(reply: Response): Error | null {
  return replyError(reply as Response as { kind: string; errorCode: number });
}

/** The request kinds that carry a query id (and get a reply). */
export type QueryKind = Extract<Request, { queryId: Uint8Array }>["kind"];

/** A request of `kind` without its kind and query id, which `call` adds. */
export type Fields<K extends QueryKind> = Omit<
  Extract<Request, { kind: K }>,
  "kind" | "queryId"
>;

/** What a call needs of the session (lib/_session.ts). */
export interface Caller {
  /** Throws ClientClosedError once the client is closed. */
  assertOpen(): void;
  /** The requests waiting for replies. */
  readonly requests: Requests;
}

/** Where the requests are sent. */
export interface RequestSender {
  /** Whether a request sent now goes out (else it waits for a reconnect). */
  readonly reachable: boolean;
  /** Queues a request without waiting; a failed write is not reported. */
  send(request: Request): void;
  /** Queues a request; resolves once it has been written. */
  write(request: Request): Promise<void>;
}

interface Pending {
  request: QueryRequest;
  expect: ResponseKind;
  settle: Deferred<Response>;
  /** Run on the reply; `null` resolves with any reply. */
  check: ReplyCheck | null;
  /** Its map key (see idKey). */
  key: string;
  /** The caller's signal; while pending, the entry is in that signal's list. */
  watch: AbortWatch | null;
  prev: Pending | null;
  next: Pending | null;
  /** `performance.now()` when added; 0 when nobody records calls. */
  started: number;
  /** Re-sent after reconnecting this many times. */
  resent: number;
}

/** Receives a record of each settled request (ThinClientOptions.onCall). */
export type CallRecorder = (record: CallRecord) => void;

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

const CANCEL_RETRY_MS = 1000;
const CANCEL_MAX_ATTEMPTS = 30;

/** The query id of a request the client builds itself (no copy needed). */
export function queryId(): Uint8Array {
  return randomIdView(ID_LENGTH);
}

/** Throws unless `value` is a Uint8Array of `length` bytes. */
export function checkLength(
  what: string,
  value: Uint8Array,
  length: number,
): void {
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

/** Checks the lengths of a request's caps and box indices. */
export function checkCapFields(request: Request): void {
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

/**
 * Sends a request that carries a query id and returns its reply, settled by
 * `check` (`null`: any reply resolves). Rejects, sending nothing, when the
 * client is closed, the signal is aborted, or an id, capability or box index
 * has the wrong length.
 */
export function sendRequest(
  caller: Caller,
  request: QueryRequest,
  signal: AbortSignal | undefined,
  check: ReplyCheck | null,
): Promise<Response> {
  try {
    caller.assertOpen();
    checkLength("queryId", request.queryId, ID_LENGTH);
    checkCapFields(request);
    signal?.throwIfAborted();
  } catch (err) {
    return Promise.reject(err);
  }
  return caller.requests.add(request, signal, check);
}

/**
 * The one path of the client's typed calls: gives `fields` its kind and a
 * fresh query id, sends it, and settles with the reply of the matching kind,
 * or with the error `check` makes of its error code (a DaemonError unless
 * told otherwise). The fields object becomes the request (no copy).
 */
export function call<K extends QueryKind>(
  caller: Caller,
  kind: K,
  fields: Fields<K>,
  options: CallOptions,
  check: ReplyCheck = daemonError,
): Promise<ResponseOf<ReplyKindFor<K>>> {
  const request = fields as unknown as QueryRequest;
  request.kind = kind;
  request.queryId = queryId();
  return sendRequest(caller, request, options.signal, check) as Promise<
    ResponseOf<ReplyKindFor<K>>
  >;
}

function replyKindOf(kind: RequestKind): ResponseKind {
  return `${kind}_reply` as ResponseKind;
}

/** The requests waiting for replies, and the cancels being retried. */
export class Requests {
  readonly #sender: RequestSender;
  readonly #pending = new Map<string, Pending>();
  readonly #watches = new WeakMap<AbortSignal, AbortWatch>();
  readonly #cancelling = new Map<
    string,
    { request: Request; attempts: number }
  >();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  readonly #recorder: CallRecorder | null;
  #closed = false;

  constructor(sender: RequestSender, recorder: CallRecorder | null = null) {
    this.#sender = sender;
    this.#recorder = recorder;
  }

  /**
   * Registers a checked request, sends it when the daemon is reachable, and
   * returns its reply. Rejects (sends nothing) when its query id is in use.
   */
  add(
    request: QueryRequest,
    signal: AbortSignal | undefined,
    check: ReplyCheck | null,
  ): Promise<Response> {
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
      check,
      key,
      watch: null,
      prev: null,
      next: null,
      started: this.#recorder === null ? 0 : performance.now(),
      resent: 0,
    };
    this.#pending.set(key, entry);
    if (signal !== undefined) this.#watch(signal, entry);
    if (this.#sender.reachable) this.#sender.send(request);
    return entry.settle.promise;
  }

  /** A reply with a query id arrived: settles its request. */
  reply(resp: Response & { queryId: Uint8Array | null }): void {
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
      this.#onCancelReply(key);
    }
    const p = this.#pending.get(key);
    if (p === undefined || p.expect !== resp.kind) return;
    this.#pending.delete(key);
    this.#settled(p);
    const error = p.check === null ? null : p.check(resp);
    if (error === null) p.settle.resolve(resp);
    else p.settle.reject(error);
    if (this.#recorder !== null) {
      const code = (resp as { errorCode?: unknown }).errorCode;
      this.#record(
        p,
        error === null ? "ok" : "error",
        typeof code === "number" ? code : null,
      );
    }
  }

  /** Tells the recorder how a request ended; what it throws is ignored. */
  #record(
    p: Pending,
    outcome: CallRecord["outcome"],
    code: number | null,
  ): void {
    if (this.#recorder === null) return;
    try {
      this.#recorder({
        kind: p.request.kind,
        outcome,
        durationMs: performance.now() - p.started,
        errorCode: code,
        resent: p.resent,
      });
    } catch {
      // A recorder's failure is not the call's.
    }
  }

  /**
   * After a reconnect: re-sends every request still waiting (replies made
   * while the client was away are lost) and every cancel still running.
   */
  resend(): void {
    for (const p of this.#pending.values()) {
      p.resent++;
      this.#sender.write(p.request).catch(() => {});
    }
    for (const key of this.#cancelling.keys()) this.#sendCancel(key);
  }

  /** Stops the cancel retries and rejects every waiting request. */
  close(reason: Error): void {
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#cancelling.clear();
    for (const p of this.#pending.values()) {
      this.#settled(p);
      p.settle.reject(reason);
      this.#record(p, "closed", null);
    }
    this.#pending.clear();
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
      this.#record(p, "aborted", null);
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
    if (c === undefined || this.#closed) return;
    c.attempts++;
    const fresh = { ...c.request, queryId: queryId() } as QueryRequest;
    c.request = fresh;
    if (this.#sender.reachable) this.#sender.send(fresh);
  }

  /** A cancel reply arrived: if the start's reply has not, the start may still be queued. */
  #onCancelReply(qk: string): void {
    for (const [startKey, c] of this.#cancelling) {
      if (!("queryId" in c.request) || idKey(c.request.queryId) !== qk) {
        continue;
      }
      if (c.attempts >= CANCEL_MAX_ATTEMPTS) {
        this.#cancelling.delete(startKey);
        return;
      }
      const t = setTimeout(() => {
        this.#timers.delete(t);
        this.#sendCancel(startKey);
      }, CANCEL_RETRY_MS);
      this.#timers.add(t);
      return;
    }
  }
}
