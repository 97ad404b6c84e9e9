/**
 * Connections and sessions of the fake daemon: accepting a connection, the
 * handshake (frames #1 and #2), reading and recording frames, the
 * per-connection mixnet FIFO, writing frames (with the write faults),
 * session tokens with resume and the grace period.
 *
 * @module
 */
import { abortable, delay, Notifier } from "../lib/_async.ts";
import { concatBytes, toHex } from "../lib/_bytes.ts";
import { encodeFrame, FrameDecoder, MAX_FRAME_SIZE } from "../lib/framing.ts";
import type { DaemonState } from "./_state.ts";
import type { ConnState, Session } from "./_state.ts";
import type { ServerSocket } from "./_transport.ts";
import type {
  ConnectionTarget,
  ReceivedRequest,
  WaitOptions,
} from "./_types.ts";
import {
  type DecodedRequest,
  decodeRequest,
  encodeResponse,
  responseBody,
} from "./_wire.ts";

/** A mixnet request that left a connection's FIFO, with what runs it. */
export interface MixnetJob {
  /** The hub. */
  readonly hub: SessionHub;
  /** The session of the connection that sent it, at dispatch. */
  readonly session: Session;
  /** The decoded request. */
  readonly req: DecodedRequest;
  /** Its record. */
  readonly rec: ReceivedRequest;
}

/** Where the hub hands the requests it does not handle itself. */
export interface RequestHandlers {
  /** A local request, on the connection's reader (it blocks the reader). */
  local(
    conn: ConnState,
    req: DecodedRequest,
    rec: ReceivedRequest,
  ): Promise<void>;
  /** A mixnet request leaving the FIFO (tracked, not awaited). */
  mixnet(job: MixnetJob): Promise<void>;
}

/** The connections, sessions and received requests of one fake daemon. */
export class SessionHub {
  /** The shared state. */
  readonly state: DaemonState;
  /** Open connections by id. */
  readonly conns: Map<number, ConnState> = new Map();
  /** Live sessions. */
  readonly sessions: Set<Session> = new Set();
  /** Sessions by hex client instance token. */
  readonly tokens: Map<string, Session> = new Map();
  /** Every frame read, in arrival order. */
  readonly received: ReceivedRequest[] = [];
  /** Notified when a frame was recorded. */
  readonly requestArrived: Notifier = new Notifier();
  /** Notified when a connection opened or closed. */
  readonly connsChanged: Notifier = new Notifier();
  readonly #handlers: RequestHandlers;
  #nextConnId = 1;

  /** A hub over `state`, passing requests on to `handlers`. */
  constructor(state: DaemonState, handlers: RequestHandlers) {
    this.state = state;
    this.#handlers = handlers;
  }

  /** The live session of a client instance token. */
  session(clientInstanceToken: Uint8Array): Session | undefined {
    const s = this.tokens.get(toHex(clientInstanceToken));
    return s === undefined || s.destroyed ? undefined : s;
  }

  /** The connections a target names. */
  targets(target: ConnectionTarget): ConnState[] {
    if (target.connId === undefined) return [...this.conns.values()];
    const conn = this.conns.get(target.connId);
    return conn === undefined ? [] : [conn];
  }

  /** Sends to every connection that finished the handshake. */
  broadcast(variant: string, body: () => unknown): void {
    for (const conn of this.conns.values()) {
      if (conn.ready) this.send(conn, variant, body());
    }
  }

  /**
   * Waits until `check` returns a value, re-checking when `notifier` fires.
   *
   * @throws {Error} After `timeoutMs`, or when the daemon closes.
   */
  async waitFor<T>(
    what: string,
    options: WaitOptions,
    notifier: Notifier,
    check: () => T | undefined,
  ): Promise<T> {
    const lifetime = this.state.lifetime.signal;
    const timeoutMs = options.timeoutMs ?? 5000;
    const timeout = new AbortController();
    const timer = setTimeout(
      () =>
        timeout.abort(
          new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`),
        ),
      timeoutMs,
    );
    const signals = [timeout.signal, lifetime];
    if (options.signal !== undefined) signals.unshift(options.signal);
    const signal = AbortSignal.any(signals);
    const closed = () =>
      new Error(`Fake daemon closed while waiting for ${what}`);
    try {
      while (true) {
        const hit = check();
        if (hit !== undefined) return hit;
        if (lifetime.aborted) throw closed();
        try {
          await notifier.wait(signal);
        } catch (err) {
          if (options.signal?.aborted) throw options.signal.reason;
          if (lifetime.aborted && !timeout.signal.aborted) throw closed();
          throw err;
        }
      }
    } finally {
      clearTimeout(timer);
    }
  }

  // -------------------------------------------------------------------------
  // Writing

  /** Sends one message, shaped by the write faults. */
  send(conn: ConnState, variant: string, body: unknown): void {
    if (conn.closed) return;
    const { faults, rng } = this.state;
    const bodyBytes = encodeResponse(variant, body, this.state.fullForm);
    const frame = encodeFrame(bodyBytes);
    if (faults.coalesceWrites) {
      if (conn.pendingCoalesce === null) {
        conn.pendingCoalesce = [];
        queueMicrotask(() => {
          const frames = conn.pendingCoalesce ?? [];
          conn.pendingCoalesce = null;
          if (frames.length > 0) this.writeChunks(conn, [concatBytes(frames)]);
        });
      }
      conn.pendingCoalesce.push(frame);
      return;
    }
    if (faults.splitWrites) {
      const pieces: Uint8Array[] = [];
      for (let pos = 0; pos < frame.length;) {
        const n = rng.int(1, 7);
        pieces.push(frame.subarray(pos, pos + n));
        pos += n;
      }
      this.writeChunks(conn, pieces);
      return;
    }
    this.writeChunks(
      conn,
      this.state.transport === "ws"
        ? [frame.subarray(0, 4), bodyBytes]
        : [frame],
    );
  }

  /** Queues raw chunks; a failed write closes the connection. */
  writeChunks(conn: ConnState, chunks: Uint8Array[]): void {
    if (conn.closed) return;
    conn.writeChain = conn.writeChain
      .then(() => conn.closed ? undefined : conn.socket.write(chunks))
      .catch(() => this.closeConn(conn, "disconnect"));
  }

  /** Resolves when everything queued so far was written. */
  async flush(conn: ConnState): Promise<void> {
    await Promise.resolve();
    await conn.writeChain;
  }

  /**
   * Delivers a legacy message to the session's connection. While the client
   * is away, replies and garbage-collection notices are kept (up to
   * `maxQueuedReplies`) for the resume; anything else is dropped.
   */
  deliverOrQueue(
    session: Session,
    variant: string,
    body: Record<string, unknown>,
  ): void {
    if (session.destroyed) return;
    if (session.conn !== null) {
      this.send(session.conn, variant, body);
      return;
    }
    const queueable = variant === "message_reply_event" ||
      variant === "message_id_garbage_collected";
    if (queueable && session.queued.length < this.state.maxQueued) {
      session.queued.push([variant, body]);
    }
  }

  /** Sends to the connection serving a session, if any. */
  deliver(session: Session, variant: string, body: unknown): void {
    const conn = session.conn;
    if (conn !== null && !session.destroyed) this.send(conn, variant, body);
  }

  // -------------------------------------------------------------------------
  // Connections and sessions

  #newSession(): Session {
    const session: Session = {
      appId: this.state.rng.bytes(16),
      token: null,
      conn: null,
      graceTimer: null,
      queued: [],
      encOps: new Map(),
      copyOps: new Map(),
      ops: new Set(),
      destroyed: false,
    };
    this.sessions.add(session);
    return session;
  }

  /** Ends a session and its operations. */
  destroySession(session: Session): void {
    if (session.destroyed) return;
    session.destroyed = true;
    if (session.graceTimer !== null) clearTimeout(session.graceTimer);
    session.graceTimer = null;
    if (session.token !== null && this.tokens.get(session.token) === session) {
      this.tokens.delete(session.token);
    }
    for (const op of session.ops) {
      op.done = true;
      op.abort.abort(new Error("session destroyed"));
    }
    session.ops.clear();
    session.encOps.clear();
    session.copyOps.clear();
    session.queued = [];
    session.conn = null;
    this.sessions.delete(session);
  }

  /** Takes a new connection and serves it. */
  accept(socket: ServerSocket): void {
    if (this.state.closed) {
      socket.close();
      return;
    }
    const conn: ConnState = {
      id: this.#nextConnId++,
      socket,
      session: null as unknown as Session,
      ready: false,
      closed: false,
      abort: new AbortController(),
      writeChain: Promise.resolve(),
      pendingCoalesce: null,
      queue: [],
      queueChanged: new Notifier(),
    };
    const session = this.#newSession();
    session.conn = conn;
    conn.session = session;
    this.conns.set(conn.id, conn);
    this.connsChanged.notify();
    this.state.track(this.#serve(conn));
  }

  /**
   * Closes a connection. After `thin_close` its session ends; after a
   * disconnect a session with a token enters its grace period.
   */
  closeConn(conn: ConnState, how: "thin_close" | "disconnect"): void {
    if (conn.closed) return;
    conn.closed = true;
    conn.abort.abort(new Error("connection closed"));
    conn.queue = [];
    conn.socket.close();
    this.conns.delete(conn.id);
    this.connsChanged.notify();
    const session = conn.session;
    if (how === "thin_close") {
      this.destroySession(session);
      return;
    }
    if (session.conn !== conn) return;
    session.conn = null;
    this.#detach(session);
  }

  /**
   * Closes connections (all by default) without `shutdown_event`, then
   * forgets every session and token, as a daemon restart does.
   */
  closeAll(conns: readonly ConnState[] = [...this.conns.values()]): void {
    for (const conn of conns) this.closeConn(conn, "disconnect");
    for (const session of [...this.sessions]) this.destroySession(session);
    this.tokens.clear();
  }

  /** A session lost its connection: grace period if it has a token. */
  #detach(session: Session): void {
    if (session.token === null || this.state.closed) {
      this.destroySession(session);
      return;
    }
    if (session.graceTimer !== null) clearTimeout(session.graceTimer);
    session.graceTimer = setTimeout(() => {
      session.graceTimer = null;
      this.destroySession(session);
    }, this.state.graceMs);
  }

  async #serve(conn: ConnState): Promise<void> {
    const { faults } = this.state;
    try {
      const signal = conn.abort.signal;
      if (faults.delayBeforeHandshakeMs > 0) {
        await delay(faults.delayBeforeHandshakeMs, signal);
      }
      if (faults.shutdownBeforeHandshake) {
        this.send(conn, "shutdown_event", {});
        await this.flush(conn);
        this.closeConn(conn, "disconnect");
        return;
      }
      this.send(conn, "connection_status_event", this.state.statusBody());
      const doc = this.state.doc;
      this.send(conn, "new_pki_document_event", {
        "payload": doc === null || faults.pkiPayloadNull ? null : doc.payload,
      });
      conn.ready = true;
      this.state.track(this.#dispatchLoop(conn));
      await this.#readLoop(conn);
    } catch {
      // connection closed or aborted
    } finally {
      this.closeConn(conn, "disconnect");
    }
  }

  #record(
    conn: ConnState,
    kind: ReceivedRequest["kind"],
    body: Record<string, unknown>,
    raw: Uint8Array,
    error?: string,
  ): ReceivedRequest {
    const rec: ReceivedRequest = error === undefined
      ? { kind, body, raw, connId: conn.id }
      : { kind, body, raw, connId: conn.id, error };
    this.received.push(rec);
    this.requestArrived.notify();
    return rec;
  }

  async #readLoop(conn: ConnState): Promise<void> {
    const reader = conn.socket.readable.getReader();
    const decoder = new FrameDecoder(MAX_FRAME_SIZE);
    try {
      while (!conn.closed) {
        const { value, done } = await reader.read();
        if (done) {
          if (this.state.faults.ignoreClientEof && !conn.closed) {
            // stay until the daemon closes the connection
            await abortable(new Promise(() => {}), conn.abort.signal)
              .catch(() => {});
          }
          return;
        }
        let bodies: Uint8Array[];
        try {
          bodies = decoder.push(value);
        } catch (err) {
          const message = (err as Error).message;
          this.#record(conn, "invalid", {}, value.slice(0, 4), message);
          return;
        }
        for (const body of bodies) {
          await this.#handleFrame(conn, body);
          if (conn.closed) return;
        }
      }
    } finally {
      try {
        reader.releaseLock();
      } catch {
        // a read is still pending on a closed socket
      }
    }
  }

  async #handleFrame(conn: ConnState, raw: Uint8Array): Promise<void> {
    let req: DecodedRequest;
    try {
      req = decodeRequest(raw);
    } catch (err) {
      this.#record(conn, "invalid", {}, raw, (err as Error).message);
      this.closeConn(conn, "disconnect");
      return;
    }
    const rec = this.#record(conn, req.kind, req.body, raw);
    switch (req.kind) {
      case "thin_close":
        this.closeConn(conn, "thin_close");
        return;
      case "session_token":
        await this.#handleSessionToken(conn, req, rec);
        return;
      case "send_message":
      case "start_resending_encrypted_message":
      case "start_resending_copy_command":
      case "empty":
        while (conn.queue.length >= this.state.capacity) {
          await conn.queueChanged.wait(conn.abort.signal);
        }
        conn.queue.push({ req, rec });
        conn.queueChanged.notify();
        return;
      default:
        await this.#handlers.local(conn, req, rec);
    }
  }

  async #dispatchLoop(conn: ConnState): Promise<void> {
    const state = this.state;
    const signal = conn.abort.signal;
    while (!conn.closed) {
      if (conn.queue.length === 0) {
        await conn.queueChanged.wait(signal);
        continue;
      }
      if (!state.connected) {
        await state.connectedChanged.wait(signal);
        continue;
      }
      if (state.mixnetDelayMs > 0) await delay(state.mixnetDelayMs, signal);
      if (!state.connected) continue;
      const item = conn.queue.shift();
      conn.queueChanged.notify();
      // empty requests are dropped at dispatch
      if (item === undefined || item.req.kind === "empty") continue;
      const { req, rec } = item;
      state.track(
        this.#handlers.mixnet({ hub: this, session: conn.session, req, rec }),
      );
    }
  }

  async #handleSessionToken(
    conn: ConnState,
    req: DecodedRequest,
    rec: ReceivedRequest,
  ): Promise<void> {
    const state = this.state;
    const action = await state.scripts.resolve(
      "session_token",
      rec,
      conn.abort.signal,
    );
    if (conn.closed) return;
    const token = toHex(req.fields["client_instance_token"] as Uint8Array);
    const existing = this.tokens.get(token);
    const resumed = existing !== undefined && !existing.destroyed;
    const session = resumed
      ? this.#resume(conn, existing)
      : this.#register(conn, token);
    for (const [variant, body] of session.queued.splice(0)) {
      this.send(conn, variant, body);
    }
    if (state.faults.raceEventBeforeTokenReply) {
      this.send(conn, "connection_status_event", state.statusBody());
      if (state.doc !== null) {
        this.send(conn, "new_pki_document_event", {
          "payload": state.doc.pushedPayload,
        });
      }
    }
    if (action.type === "none") return;
    const reply = { "app_id": session.appId.slice(), "resumed": resumed };
    this.send(
      conn,
      "session_token_reply",
      responseBody(
        "session_token_reply",
        action.type === "reply" ? { ...reply, ...action.body } : reply,
      ),
    );
  }

  /** Moves `conn` onto an existing session (a resume). */
  #resume(conn: ConnState, session: Session): Session {
    if (conn.session === session) return session;
    const provisional = conn.session;
    if (provisional.conn === conn) provisional.conn = null;
    this.#detach(provisional);
    const other = session.conn;
    if (other !== null && other !== conn) {
      const fresh = this.#newSession();
      fresh.conn = other;
      other.session = fresh;
    }
    if (session.graceTimer !== null) clearTimeout(session.graceTimer);
    session.graceTimer = null;
    session.conn = conn;
    conn.session = session;
    return session;
  }

  /** Gives the connection's own session a token (a new session). */
  #register(conn: ConnState, token: string): Session {
    const session = conn.session;
    if (session.token !== null && this.tokens.get(session.token) === session) {
      this.tokens.delete(session.token);
    }
    session.token = token;
    this.tokens.set(token, session);
    return session;
  }
}
