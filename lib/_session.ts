/**
 * One client's session with kpclientd: dialling, the handshake, the read
 * loop, redialling with backoff, the write chain and the shutdown. It owns
 * the other parts of the client (daemon state, requests, dispatcher) and
 * hands them every frame it reads.
 *
 * @module
 */
import { randomBytes, toHex } from "./_bytes.ts";
import { abortReason, deferred, delay, within } from "./_async.ts";
import { Backoff, type BackoffPolicy, backoffPolicy } from "./_backoff.ts";
import { DaemonState } from "./_daemon_state.ts";
import { Dispatcher } from "./_dispatch.ts";
import type { ThinClientOptions } from "./_options.ts";
import { checkLength, Requests } from "./_requests.ts";
import type { Conn, Dialer } from "./conn.ts";
import type { ClientState } from "./events.ts";
import {
  ClientClosedError,
  ConnectionError,
  ProtocolError,
  ThinClientError,
} from "./errors.ts";
import {
  type _ChunkSource,
  _FrameReader,
  _FrameWriter,
  _sealFrame,
  _streamSource,
  FrameDecoder,
  HANDSHAKE_MAX_FRAME_SIZE,
  MAX_FRAME_SIZE,
} from "./framing.ts";
import {
  _encodeRequest,
  decodeFrameBody,
  ID_LENGTH,
  type Request,
  type Response,
} from "./protocol.ts";

/**
 * How long close()/detach() wait for the daemon to close its side after ours.
 * kpclientd (v0.0.99) unregisters a closed connection's app ID only after it
 * closes the socket; a client that resumes the same token before that would
 * have its new connection unregistered and its replies queued for nobody.
 */
const DAEMON_CLOSE_WAIT_MS = 2000;

function frameSizeOption(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(
      `Cannot use ${name}: '${value}' is not a positive integer`,
    );
  }
  return value;
}

/** How the client writes to a connection. */
interface Sink {
  write(chunk: Uint8Array): Promise<void>;
  /** Ends the sending side (half-close). */
  closeWrite(): Promise<void>;
  release(): void;
}

function hasDirectIo(conn: Conn): boolean {
  return conn.readChunk !== undefined && conn.writeChunk !== undefined &&
    conn.closeWrite !== undefined;
}

/** Reads the connection directly when it can (see Conn.readChunk), else its stream. */
function connSource(conn: Conn): _ChunkSource {
  if (!hasDirectIo(conn)) return _streamSource(conn.readable);
  return { read: () => conn.readChunk!(), release: () => {} };
}

/** Writes the connection directly when it can, else through its stream. */
function connSink(conn: Conn): Sink {
  if (hasDirectIo(conn)) {
    return {
      write: (chunk) => conn.writeChunk!(chunk),
      closeWrite: () => conn.closeWrite!(),
      release: () => {},
    };
  }
  const writer = conn.writable.getWriter();
  return {
    write: (chunk) => writer.write(chunk),
    closeWrite: () => writer.close(),
    release: () => writer.releaseLock(),
  };
}

function closeQuietly(conn: Conn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}

interface Handshake {
  frames: _FrameReader;
  resumed: boolean;
  appId: Uint8Array;
}

/** The connection to the daemon and the parts of the client fed by it. */
export class Session {
  /** What the daemon last reported. */
  readonly state: DaemonState = new DaemonState();
  /** The requests waiting for replies. */
  readonly requests: Requests;
  /** Frames to state, replies and events. */
  readonly dispatcher: Dispatcher;
  /** The client instance token. */
  readonly instanceToken: Uint8Array;
  /** Whether the client is connected, redialling, or closed for good. */
  status: "connected" | "reconnecting" | "closed" = "connected";

  readonly #dialer: Dialer;
  readonly #reconnect: BackoffPolicy | null;
  readonly #handshakeTimeout: number;
  readonly #maxFrameSize: number;
  readonly #handshakeMaxFrameSize: number;
  readonly #lifetime = new AbortController();
  readonly #closedResult = deferred<void | Error>();
  #closing: Promise<void> | null = null;

  #conn: Conn | null = null;
  #sink: Sink | null = null;
  #frameWriter: _FrameWriter | null = null;
  /** Settles when the read loop of the current connection has ended. */
  #readEnded: Promise<void> | null = null;

  /** Checks the options; dials nothing yet (see `connect`). */
  constructor(dialer: Dialer, options: ThinClientOptions) {
    this.#dialer = dialer;
    if (options.instanceToken !== undefined) {
      checkLength("instanceToken", options.instanceToken, ID_LENGTH);
      if (options.instanceToken.every((b) => b === 0)) {
        throw new RangeError("Cannot use instanceToken: it is all zero bytes");
      }
      this.instanceToken = options.instanceToken.slice();
    } else {
      this.instanceToken = randomBytes(ID_LENGTH);
    }
    this.#reconnect = backoffPolicy(options.reconnect);
    this.#handshakeTimeout = options.handshakeTimeout ?? 60_000;
    this.#maxFrameSize = frameSizeOption(
      "maxFrameSize",
      options.maxFrameSize ?? MAX_FRAME_SIZE,
    );
    this.#handshakeMaxFrameSize = Math.min(
      this.#maxFrameSize,
      frameSizeOption(
        "handshakeMaxFrameSize",
        options.handshakeMaxFrameSize ?? HANDSHAKE_MAX_FRAME_SIZE,
      ),
    );
    if (options.onCall !== undefined && typeof options.onCall !== "function") {
      throw new TypeError("Cannot use onCall: it is not a function");
    }
    this.requests = new Requests(this, options.onCall ?? null);
    this.dispatcher = new Dispatcher(
      this.state,
      this.requests,
      () => this.clientState,
    );
  }

  /** The dialer's address, for messages. */
  get address(): string {
    return this.#dialer.address;
  }

  /** Where the client stands (see ClientState). */
  get clientState(): ClientState {
    if (this.status !== "connected") return this.status;
    return this.state.isConnected ? "connected" : "daemon_offline";
  }

  /** Whether the local connection to the daemon is up. */
  get reachable(): boolean {
    return this.status === "connected" && this.#conn !== null;
  }

  /** Resolves with the closing error, if any, once closed. */
  closed(): Promise<void | Error> {
    return this.#closedResult.promise;
  }

  /** Throws ClientClosedError once closed. */
  assertOpen(): void {
    if (this.status === "closed") throw new ClientClosedError();
  }

  /** The first dial and handshake; on failure the session is closed. */
  async connect(signal: AbortSignal | undefined): Promise<void> {
    const lifetime = this.#lifetime.signal;
    const sig = signal === undefined
      ? lifetime
      : AbortSignal.any([signal, lifetime]);
    try {
      const hs = await this.#dialAndHandshake(sig);
      this.#readEnded = this.#readLoop(hs.frames);
    } catch (err) {
      this.status = "closed";
      this.#lifetime.abort();
      this.#closedResult.resolve(
        err instanceof Error ? err : new Error(String(err)),
      );
      throw err;
    }
  }

  /**
   * Closes for good (idempotent): sends `thin_close` when `sendClose`, lets
   * the daemon close its side (2 s at most), then rejects whatever waits
   * with `error` (or a ClientClosedError) and ends the subscribers.
   */
  shutdown(sendClose: boolean, error: Error | undefined): Promise<void> {
    if (this.#closing !== null) return this.#closing;
    this.status = "closed";
    this.dispatcher.refreshState();
    this.#lifetime.abort(new ClientClosedError());
    this.#closing = (async () => {
      if (this.#conn !== null) {
        await within(
          (async () => {
            if (sendClose) {
              await this.write({ kind: "thin_close" }).catch(() => {});
            }
            await this.#letDaemonClose();
          })(),
          DAEMON_CLOSE_WAIT_MS,
        );
      }
      this.#dropConn();
      const reason = error ?? new ClientClosedError();
      this.requests.close(reason);
      this.dispatcher.close(reason);
      this.#closedResult.resolve(error);
    })();
    return this.#closing;
  }

  /**
   * Queues a request without waiting. A failed write needs no handling here:
   * the reader notices the broken connection, and pending requests are
   * re-sent after reconnecting.
   */
  send(request: Request): void {
    try {
      void this.#queue(request);
    } catch {
      // As for a failed write.
    }
  }

  /** Queues a request and waits until it has been written. */
  async write(request: Request): Promise<void> {
    const written = this.#queue(request);
    try {
      await written;
    } catch (err) {
      throw new ConnectionError(
        `Cannot write to daemon at '${this.#dialer.address}': connection failed`,
        { cause: err },
      );
    }
  }

  /**
   * Encodes a request into a frame and queues it on the connection.
   *
   * @returns When it has been written.
   * @throws {RangeError} When the frame is too large.
   * @throws {ConnectionError} When there is no connection.
   */
  #queue(request: Request): Promise<void> {
    const frame = _sealFrame(_encodeRequest(request, 4));
    const frames = this.#frameWriter;
    if (frames === null) {
      throw new ConnectionError(
        `Cannot write to daemon at '${this.#dialer.address}': not connected`,
      );
    }
    return frames.write(frame);
  }

  /**
   * Ends our sending side and waits until the daemon has closed its side, so
   * the daemon is done with this connection before close()/detach() resolve.
   */
  async #letDaemonClose(): Promise<void> {
    const sink = this.#sink;
    const frames = this.#frameWriter;
    const readEnded = this.#readEnded;
    if (sink === null || frames === null || readEnded === null) return;
    await frames.idle();
    await sink.closeWrite().catch(() => {});
    await readEnded;
  }

  #dropConn(): void {
    const conn = this.#conn;
    this.#conn = null;
    const sink = this.#sink;
    this.#sink = null;
    this.#frameWriter = null;
    this.#readEnded = null;
    sink?.release();
    if (conn !== null) closeQuietly(conn);
  }

  /** Dials, runs the handshake, installs the connection. */
  async #dialAndHandshake(signal: AbortSignal): Promise<Handshake> {
    signal.throwIfAborted();
    const address = this.#dialer.address;
    // The timeout covers the dial too: a dial that never completes must not
    // stall connect() or the reconnect loop.
    const timeoutCtl = new AbortController();
    const timer = setTimeout(
      () =>
        timeoutCtl.abort(
          new ConnectionError(
            `Cannot complete handshake with daemon at '${address}': no answer within ${this.#handshakeTimeout} ms`,
          ),
        ),
      this.#handshakeTimeout,
    );
    const hsSignal = AbortSignal.any([signal, timeoutCtl.signal]);
    let conn: Conn;
    try {
      conn = await this.#dialer.dial({ signal: hsSignal });
    } catch (err) {
      clearTimeout(timer);
      if (hsSignal.aborted) throw abortReason(hsSignal);
      if (err instanceof ThinClientError) throw err;
      throw new ConnectionError(`Cannot dial daemon at '${address}'`, {
        cause: err,
      });
    }
    if (hsSignal.aborted) {
      // A dialer that ignored the signal: its late connection is not used.
      clearTimeout(timer);
      closeQuietly(conn);
      throw abortReason(hsSignal);
    }
    // Until the session token is sent, only the status and the PKI document
    // may arrive: a small limit keeps a wrong peer from costing 40 MiB.
    // Bodies are views of the chunks read: each is decoded (its byte strings
    // copied out) before the next read.
    const decoder = new FrameDecoder(this.#handshakeMaxFrameSize);
    const frames = new _FrameReader(connSource(conn), decoder, false);
    const onAbort = (): void => closeQuietly(conn);
    hsSignal.addEventListener("abort", onAbort, { once: true });
    const next = async (): Promise<Response> => {
      let body: Uint8Array | null;
      try {
        body = await frames.next();
      } catch (err) {
        if (hsSignal.aborted) throw abortReason(hsSignal);
        if (
          err instanceof ProtocolError &&
          decoder.maxFrameSize < this.#maxFrameSize &&
          err.message.includes("exceeds maximum")
        ) {
          throw new ProtocolError(
            `Cannot complete handshake with daemon at '${address}': ${err.message} before the session token (raise the handshakeMaxFrameSize option if the daemon's PKI document is that large)`,
            { cause: err },
          );
        }
        if (err instanceof ThinClientError) throw err;
        throw new ConnectionError(
          `Cannot complete handshake with daemon at '${address}': connection failed`,
          { cause: err },
        );
      }
      if (hsSignal.aborted) throw abortReason(hsSignal);
      if (body === null) {
        throw new ConnectionError(
          `Cannot complete handshake with daemon at '${address}': connection closed by the daemon`,
        );
      }
      return decodeFrameBody(body, false);
    };
    const state = this.state;
    const dispatcher = this.dispatcher;
    try {
      const first = await next();
      if (first.kind === "shutdown_event") {
        throw new ConnectionError(
          `Cannot complete handshake with daemon at '${address}': the daemon is shutting down`,
        );
      }
      if (first.kind !== "connection_status_event") {
        throw new ProtocolError(
          `Cannot complete handshake: first frame is '${first.kind}', expected 'connection_status_event'`,
        );
      }
      if (first.sphinxGeometry === null || first.pigeonholeGeometry === null) {
        throw new ProtocolError(
          "Cannot complete handshake: connection_status_event lacks a geometry (incompatible daemon)",
        );
      }
      // On a reconnect the status may have changed while we were away.
      dispatcher.applyStatus(first, state.sphinx !== null);
      let second = await next();
      while (second.kind === "connection_status_event") {
        dispatcher.applyStatus(second, true);
        second = await next();
      }
      if (second.kind !== "new_pki_document_event") {
        throw new ProtocolError(
          `Cannot complete handshake: second frame is '${second.kind}', expected 'new_pki_document_event'`,
        );
      }
      dispatcher.applyDocument(second.payload, state.document !== null);
      // Install the connection so replies flushed before the token reply are dispatched.
      this.#conn = conn;
      const sink = connSink(conn);
      this.#sink = sink;
      this.#frameWriter = new _FrameWriter(sink.write);
      dispatcher.sawShutdown = false;
      // Replies queued for a resumed session may follow: any size from now.
      decoder.maxFrameSize = this.#maxFrameSize;
      await this.write({
        kind: "session_token",
        clientInstanceToken: this.instanceToken,
      });
      while (true) {
        const resp = await next();
        if (resp.kind === "session_token_reply") {
          state.appId = resp.appId;
          state.resumed = resp.resumed;
          return { frames, resumed: resp.resumed, appId: resp.appId };
        }
        dispatcher.dispatch(resp);
      }
    } catch (err) {
      if (this.#conn === conn) this.#dropConn();
      else onAbort();
      throw err;
    } finally {
      clearTimeout(timer);
      hsSignal.removeEventListener("abort", onAbort);
    }
  }

  async #readLoop(frames: _FrameReader): Promise<void> {
    const dispatcher = this.dispatcher;
    let error: Error | null = null;
    try {
      // Every frame of a chunk is dispatched at once; only an empty reader waits.
      for (;;) {
        const body = frames.take();
        if (body === undefined) {
          if (!(await frames.fill())) break;
          continue;
        }
        // While close()/detach() drain the connection, frames are dropped.
        if (this.status === "closed") continue;
        dispatcher.dispatch(decodeFrameBody(body, false));
      }
    } catch (err) {
      error = err instanceof Error ? err : new Error(String(err));
    }
    try {
      frames.release();
    } catch {
      // Nothing left to release.
    }
    if (this.status === "closed") return;
    this.#onDisconnect(error);
  }

  #onDisconnect(error: Error | null): void {
    const graceful = this.dispatcher.sawShutdown;
    this.#dropConn();
    this.dispatcher.emit({ type: "daemon_disconnected", graceful, error });
    if (this.#reconnect === null) {
      void this.shutdown(
        false,
        new ConnectionError(
          `Lost connection to daemon at '${this.#dialer.address}'`,
          { cause: error ?? undefined },
        ),
      );
      return;
    }
    this.status = "reconnecting";
    this.dispatcher.refreshState();
    void this.#reconnectLoop(this.#reconnect);
  }

  async #reconnectLoop(policy: BackoffPolicy): Promise<void> {
    const backoff = new Backoff(policy);
    let attempts = 0;
    let lastError: unknown = null;
    const signal = this.#lifetime.signal;
    while (!signal.aborted) {
      if (attempts >= policy.maxAttempts) {
        void this.shutdown(
          false,
          new ConnectionError(
            `Cannot reconnect to daemon at '${this.#dialer.address}': gave up after ${attempts} attempts`,
            { cause: lastError },
          ),
        );
        return;
      }
      await delay(backoff.next(), signal).catch(() => {});
      if (signal.aborted) return;
      attempts++;
      const before = this.state.daemonToken;
      try {
        const hs = await this.#dialAndHandshake(signal);
        if (this.status === "closed") return;
        this.status = "connected";
        this.#reconnected(hs, toHex(before) !== toHex(this.state.daemonToken));
        return;
      } catch (err) {
        lastError = err;
        if (signal.aborted) return;
      }
    }
  }

  #reconnected(hs: Handshake, tokenChanged: boolean): void {
    const dispatcher = this.dispatcher;
    if (!hs.resumed) {
      dispatcher.rejectSurbWaiters(
        new ConnectionError(
          "Lost the reply: the daemon session was not resumed after reconnecting",
        ),
      );
    }
    dispatcher.emit({
      type: "reconnected",
      resumed: hs.resumed,
      instanceTokenChanged: tokenChanged,
      appId: hs.appId,
    });
    dispatcher.refreshState();
    // Re-send everything still waiting: replies produced while we were away are lost.
    this.requests.resend();
    this.#readEnded = this.#readLoop(hs.frames);
  }
}
