/**
 * Frames to events: applies the daemon's frames to the client's state,
 * settles waiting calls, and delivers events to the subscribers.
 *
 * @module
 */
import { idKey } from "./_bytes.ts";
import type { Deferred } from "./_async.ts";
import type { DaemonState } from "./_daemon_state.ts";
import type { Requests } from "./_requests.ts";
import { ConnectionError, ThinClientError } from "./errors.ts";
import {
  type ClientState,
  EventQueue,
  type EventsOptions,
  type ThinClientEvent,
} from "./events.ts";
import type { Response, ResponseOf } from "./protocol.ts";

/** Hands every frame of the daemon to the state, the requests and the subscribers. */
export class Dispatcher {
  /** Set by a `shutdown_event`; the session reads and resets it per connection. */
  sawShutdown = false;
  readonly #state: DaemonState;
  readonly #requests: Requests;
  readonly #subscribers = new Set<EventQueue>();
  readonly #surbWaiters = new Map<string, Deferred<Uint8Array>>();
  readonly #clientState: () => ClientState;
  /** The client state last announced. */
  #announced: ClientState;

  /** `clientState` says where the client stands (see `refreshState`). */
  constructor(
    state: DaemonState,
    requests: Requests,
    clientState: () => ClientState,
  ) {
    this.#state = state;
    this.#requests = requests;
    this.#clientState = clientState;
    this.#announced = clientState();
  }

  /** Emits a `state` event when the client state has changed since the last one. */
  refreshState(): void {
    const state = this.#clientState();
    if (state === this.#announced) return;
    const previous = this.#announced;
    this.#announced = state;
    this.emit({ type: "state", state, previous });
  }

  /** A new subscriber (see `ThinClient.events`); ended at once when `closed`. */
  subscribe(
    options: EventsOptions,
    closed: boolean,
  ): AsyncIterableIterator<ThinClientEvent> {
    // `queue` is still unset when the constructor ends the queue of an
    // already aborted signal; such a queue is never subscribed.
    let queue: EventQueue | undefined = undefined;
    queue = new EventQueue(
      options.bufferSize ?? 1024,
      () => {
        if (queue !== undefined) this.#subscribers.delete(queue);
      },
      options.signal,
      options.types,
    );
    if (closed || options.signal?.aborted === true) {
      queue.end();
    } else this.#subscribers.add(queue);
    return queue;
  }

  /** Delivers an event to every subscriber. */
  emit(event: ThinClientEvent): void {
    for (const s of this.#subscribers) s.push(event);
  }

  /** Waits for the SURB reply under `key` (see idKey). */
  addSurbWaiter(key: string, waiter: Deferred<Uint8Array>): void {
    this.#surbWaiters.set(key, waiter);
  }

  /** Stops waiting for the SURB reply under `key`. */
  removeSurbWaiter(key: string): void {
    this.#surbWaiters.delete(key);
  }

  /** Rejects every SURB reply waiter. */
  rejectSurbWaiters(reason: Error): void {
    for (const w of this.#surbWaiters.values()) w.reject(reason);
    this.#surbWaiters.clear();
  }

  /** Rejects the SURB waiters and ends every subscriber. */
  close(reason: Error): void {
    this.rejectSurbWaiters(reason);
    for (const s of [...this.#subscribers]) s.end();
  }

  /** Takes in a connection status; emits it when `emit`. */
  applyStatus(
    ev: ResponseOf<"connection_status_event">,
    emit: boolean,
  ): void {
    const state = this.#state;
    state.applyStatus(ev);
    if (!ev.isConnected && this.#surbWaiters.size > 0) {
      this.rejectSurbWaiters(
        new ConnectionError(
          "Cannot wait for reply: the daemon lost its mixnet connection",
        ),
      );
    }
    if (emit) {
      this.emit({
        type: "connection_status",
        isConnected: ev.isConnected,
        instanceToken: ev.instanceToken,
        sphinxGeometry: { ...state.sphinx! },
        pigeonholeGeometry: { ...state.pigeonhole! },
      });
    }
    this.refreshState();
  }

  /** Takes in a PKI document; emits it when `emit`. */
  applyDocument(payload: Uint8Array | null, emit: boolean): void {
    const doc = this.#state.applyDocument(payload);
    if (doc !== null && emit) {
      this.emit({ type: "pki_document", document: doc });
    }
  }

  /** Handles one frame. */
  dispatch(resp: Response): void {
    switch (resp.kind) {
      case "connection_status_event":
        this.applyStatus(resp, true);
        return;
      case "new_pki_document_event":
        this.applyDocument(resp.payload, true);
        return;
      case "shutdown_event":
        this.sawShutdown = true;
        this.emit({ type: "shutdown" });
        return;
      case "message_sent_event":
        this.#onMessageSent(resp);
        return;
      case "message_reply_event":
        this.#onMessageReply(resp);
        return;
      case "message_id_garbage_collected":
        this.emit({
          type: "message_id_garbage_collected",
          messageId: resp.messageId,
        });
        return;
      case "session_token_reply":
      case "unknown":
        return;
      default:
        this.#requests.reply(resp);
    }
  }

  #onMessageSent(resp: ResponseOf<"message_sent_event">): void {
    this.emit({
      type: "message_sent",
      messageId: resp.messageId,
      surbId: resp.surbId,
      sentAt: resp.sentAt === null ? null : new Date(resp.sentAt * 1000),
      replyEtaMs: Number(resp.replyEta / 1_000_000n),
      error: resp.err,
    });
    if (resp.err !== null && resp.surbId !== null) {
      const w = this.#takeSurbWaiter(resp.surbId);
      w?.reject(
        new ThinClientError(
          `Cannot send message: the daemon reported '${resp.err}'`,
        ),
      );
    }
  }

  #onMessageReply(resp: ResponseOf<"message_reply_event">): void {
    const payload = resp.payload ?? new Uint8Array(0);
    this.emit({
      type: "message_reply",
      messageId: resp.messageId,
      surbId: resp.surbId,
      payload,
      replyIndex: resp.replyIndex,
      errorCode: resp.errorCode,
    });
    if (resp.surbId !== null) {
      this.#takeSurbWaiter(resp.surbId)?.resolve(payload);
    }
  }

  #takeSurbWaiter(surbId: Uint8Array): Deferred<Uint8Array> | undefined {
    const key = idKey(surbId);
    const w = this.#surbWaiters.get(key);
    if (w !== undefined) this.#surbWaiters.delete(key);
    return w;
  }
}
