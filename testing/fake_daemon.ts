/**
 * A fake kpclientd: an independent, in-process implementation of the daemon
 * side of the thin protocol (docs/protocol.md), for unit tests of thin
 * clients and of applications built on them.
 *
 * This file is the public face; the parts live in _sessions.ts (connections,
 * handshake, sessions and resume), _scripting.ts (scripts and faults),
 * _local_ops.ts (local requests), _arq.ts (Pigeonhole ARQ and copy
 * commands) and _legacy.ts (`send_message` and the echo service).
 *
 * @module
 */
import { u32Be } from "../lib/_bytes.ts";
import type { Dialer } from "../lib/conn.ts";
import { encodeFrame, MAX_FRAME_SIZE } from "../lib/framing.ts";
import { startCopy, startEncrypted } from "./_arq.ts";
import { sendMessage } from "./_legacy.ts";
import { handleLocal } from "./_local_ops.ts";
import { boxKeyOfCap, type FakeBox, WRITE_CAP_LENGTH } from "./_pigeonhole.ts";
import type {
  FakePkiDocument,
  WirePigeonholeGeometry,
  WireSphinxGeometry,
} from "./_pki.ts";
import {
  eventParts,
  type FakeDaemonFaults,
  type FakeEvent,
  type ScriptAction,
  type ScriptHandler,
  type ScriptOptions,
} from "./_scripting.ts";
import { type MixnetJob, SessionHub } from "./_sessions.ts";
import { DaemonState, type FakeDaemonOptions } from "./_state.ts";
import { type FakeListener, type FakeTransport, listen } from "./_transport.ts";
import type {
  ConnectionTarget,
  FakeRequestKind,
  ReceivedRequest,
  WaitOptions,
} from "./_types.ts";
import { Rng } from "./_util.ts";

/**
 * Options of {@linkcode FakeDaemon.restart}.
 *
 * @example Usage
 * ```ts
 * import type { RestartOptions } from "@katzenpost/thinclient/testing";
 * const options: RestartOptions = { graceful: true };
 * ```
 */
export interface RestartOptions {
  /** Send `shutdown_event` to every connection before closing it. @default false */
  graceful?: boolean;
  /** Pick a new instance token (a new daemon process). @default true */
  newInstanceToken?: boolean;
}

let seedCounter = 0x5eed;

/** Runs a mixnet request that left a connection's FIFO. */
function runMixnet(job: MixnetJob): Promise<void> {
  switch (job.req.kind) {
    case "send_message":
      return sendMessage(job);
    case "start_resending_encrypted_message":
      return startEncrypted(job);
    case "start_resending_copy_command":
      return startCopy(job);
    default:
      return Promise.resolve();
  }
}

/**
 * A fake kpclientd. Start it with {@linkcode FakeDaemon.start}, point a
 * client at {@linkcode FakeDaemon.dialer} (or {@linkcode FakeDaemon.address}),
 * and dispose of it with `await using`.
 *
 * It follows docs/protocol.md: the daemon-first handshake with both
 * geometries and a realistic PKI document, session tokens with resume and a
 * grace period, Go full-form replies, the daemon's request validation, the
 * per-connection 16-slot mixnet FIFO with back-pressure, an echo service, an
 * in-memory box store with write-once/tombstone semantics, cancellation with
 * the double reply, copy commands that really execute the copy streams made
 * by its own envelope builders, and self-consistent vouchers.
 *
 * @example Usage
 * ```ts
 * import { FakeDaemon } from "@katzenpost/thinclient/testing";
 * await using daemon = await FakeDaemon.start({ transport: "memory" });
 * const conn = await daemon.dialer.dial();
 * const reader = conn.readable.getReader();
 * const { value } = await reader.read(); // frame #1: connection_status_event
 * console.log(value !== undefined); // true
 * reader.releaseLock();
 * conn.close();
 * ```
 */
export class FakeDaemon implements AsyncDisposable {
  /** The transport listened on. */
  readonly transport: FakeTransport;
  /**
   * Where the daemon listens: `127.0.0.1:PORT` (tcp), the socket path
   * (unix), `ws://127.0.0.1:PORT/` (ws) or `memory`.
   */
  readonly address: string;
  /**
   * A dialer that connects to this daemon (for memory: an in-memory pipe;
   * otherwise transport/'s `TcpDialer`, `UnixDialer` or `WebSocketDialer`).
   * Its `address` is `"<transport> <address>"`.
   */
  readonly dialer: Dialer;
  /** Fault switches; assign to them at any time. */
  readonly faults: FakeDaemonFaults;

  readonly #listener: FakeListener;
  readonly #state: DaemonState;
  readonly #hub: SessionHub;
  readonly #cursors = new Map<string, number>();
  #closing: Promise<void> | null = null;

  private constructor(
    state: DaemonState,
    hub: SessionHub,
    listener: FakeListener,
  ) {
    this.transport = state.transport;
    this.faults = state.faults;
    this.#state = state;
    this.#hub = hub;
    this.#listener = listener;
    this.address = listener.address;
    this.dialer = listener.dialer;
  }

  /**
   * Starts a fake daemon and begins accepting connections.
   *
   * @param options Transport, behaviour and timing options.
   * @returns The running daemon.
   * @throws {TypeError} On an unknown transport or a bad instance token.
   * @throws {Deno.errors.AddrInUse} When the port or path is taken.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * console.log(daemon.address); // "memory"
   * ```
   */
  static async start(options: FakeDaemonOptions = {}): Promise<FakeDaemon> {
    if (
      options.instanceToken !== undefined && options.instanceToken.length !== 16
    ) {
      throw new TypeError(
        `Cannot start fake daemon: instance token length ${options.instanceToken.length} is not 16`,
      );
    }
    const state = new DaemonState(
      options,
      new Rng(options.seed ?? seedCounter++),
    );
    const hub: SessionHub = new SessionHub(state, {
      local: (conn, req, rec) => handleLocal(hub, conn, req, rec),
      mixnet: runMixnet,
    });
    const listener = await listen(
      state.transport,
      (socket) => hub.accept(socket),
      {
        ...(options.port !== undefined ? { port: options.port } : {}),
        ...(options.path !== undefined ? { path: options.path } : {}),
      },
    );
    return new FakeDaemon(state, hub, listener);
  }

  // -------------------------------------------------------------------------
  // Observing

  /** Every frame read so far, in arrival order (all connections). */
  get received(): readonly ReceivedRequest[] {
    return this.#hub.received;
  }

  /** The current instance token (16 bytes; changes on `restart()`). */
  get instanceToken(): Uint8Array {
    return this.#state.instanceToken.slice();
  }

  /** Whether the daemon claims to be connected to the mixnet. */
  get isConnected(): boolean {
    return this.#state.connected;
  }

  /** The current PKI document, or `null`. */
  get pkiDocument(): FakePkiDocument | null {
    return this.#state.doc;
  }

  /** The Sphinx geometry sent to clients. */
  get sphinxGeometry(): Readonly<WireSphinxGeometry> {
    return this.#state.sphinx;
  }

  /** The Pigeonhole geometry sent to clients. */
  get pigeonholeGeometry(): Readonly<WirePigeonholeGeometry> {
    return this.#state.pigeonhole;
  }

  /** Number of open client connections. */
  get connectionCount(): number {
    return this.#hub.conns.size;
  }

  /** Ids of the open client connections, oldest first. */
  get connectionIds(): readonly number[] {
    return [...this.#hub.conns.keys()];
  }

  /**
   * Waits for a request of `kind` and consumes it. Requests are consumed in
   * arrival order per kind: the first call returns the first such request
   * ever received (even if it arrived before the call), the next call the
   * second, and so on.
   *
   * @param kind Request variant, `"empty"` or `"invalid"`.
   * @param options Abort signal and timeout.
   * @returns The request.
   * @throws {Error} After `timeoutMs`, or when the daemon closes.
   *
   * @example Usage
   * ```ts ignore
   * const request = await daemon.waitForRequest("session_token");
   * console.log(request.body["client_instance_token"]);
   * ```
   */
  waitForRequest(
    kind: FakeRequestKind | "empty" | "invalid",
    options: WaitOptions = {},
  ): Promise<ReceivedRequest> {
    return this.#hub.waitFor(
      `request "${kind}"`,
      options,
      this.#hub.requestArrived,
      () => {
        const start = this.#cursors.get(kind) ?? 0;
        for (let i = start; i < this.#hub.received.length; i++) {
          const r = this.#hub.received[i];
          if (r?.kind === kind) {
            this.#cursors.set(kind, i + 1);
            return r;
          }
        }
        this.#cursors.set(kind, this.#hub.received.length);
        return undefined;
      },
    );
  }

  /**
   * Waits until exactly `count` client connections are open (for example 0
   * after a client closed, 1 after it reconnected).
   *
   * @param count The number of connections to wait for.
   * @param options Abort signal and timeout.
   * @throws {Error} After `timeoutMs`, or when the daemon closes.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * const conn = await daemon.dialer.dial();
   * await daemon.waitForConnections(1);
   * conn.close();
   * await daemon.waitForConnections(0);
   * ```
   */
  async waitForConnections(
    count: number,
    options: WaitOptions = {},
  ): Promise<void> {
    await this.#hub.waitFor(
      `${count} connection(s)`,
      options,
      this.#hub.connsChanged,
      () => this.#hub.conns.size === count ? true : undefined,
    );
  }

  /**
   * Whether a session is registered for a client instance token (connected
   * or within its grace period).
   *
   * @param clientInstanceToken The client's 16-byte token.
   * @returns True while the daemon would resume it.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * console.log(daemon.hasSession(new Uint8Array(16))); // false
   * ```
   */
  hasSession(clientInstanceToken: Uint8Array): boolean {
    return this.#hub.session(clientInstanceToken) !== undefined;
  }

  /**
   * Reads a box of the fake replicas.
   *
   * @param cap A 168-byte write cap or 136-byte read cap of the stream.
   * @param index The 104-byte box index.
   * @returns The box, or `undefined` when never written.
   * @throws {RangeError} When the cap or index has the wrong length.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon, fakeKeypair } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * const pair = fakeKeypair(new Uint8Array(32));
   * daemon.putBox(pair.writeCap, pair.firstMessageIndex, new Uint8Array([1]));
   * console.log(daemon.getBox(pair.readCap, pair.firstMessageIndex)); // { tombstone: false, plaintext: … }
   * ```
   */
  getBox(cap: Uint8Array, index: Uint8Array): FakeBox | undefined {
    return this.#state.boxes.get(boxKeyOfCap(cap, index));
  }

  /**
   * Writes a box of the fake replicas directly, as if another client had
   * (write-once; an empty plaintext is a tombstone). Waiting reads complete.
   *
   * @param writeCap The 168-byte write cap.
   * @param index The 104-byte box index.
   * @param plaintext The content; empty = tombstone.
   * @returns True if stored (or identical/tombstoned), false if the box already held other data.
   * @throws {RangeError} When the cap or index has the wrong length.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon, fakeKeypair } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * const pair = fakeKeypair(new Uint8Array(32));
   * console.log(daemon.putBox(pair.writeCap, pair.firstMessageIndex, new Uint8Array([1]))); // true
   * ```
   */
  putBox(
    writeCap: Uint8Array,
    index: Uint8Array,
    plaintext: Uint8Array,
  ): boolean {
    if (writeCap.length !== WRITE_CAP_LENGTH) {
      throw new RangeError(
        `Cannot write box: write cap length ${writeCap.length} is not ${WRITE_CAP_LENGTH}`,
      );
    }
    const key = boxKeyOfCap(writeCap, index);
    return this.#state.boxes.write(key, plaintext) !== "exists";
  }

  // -------------------------------------------------------------------------
  // Scripting and events

  /**
   * Overrides how requests of `kind` are answered, from now on (or for
   * `times` requests). Pass `null` to remove the script. `thin_close` cannot
   * be scripted. Mixnet kinds are scripted when they leave the FIFO.
   *
   * @param kind The request variant.
   * @param action A fixed action, a handler computing one, or `null`.
   * @param options How many requests the script applies to.
   * @throws {TypeError} For `thin_close`.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * daemon.script("new_keypair", 3, { times: 1 });
   * daemon.script("get_pki_document", { delayMs: 50 });
   * daemon.script("get_pki_document", null);
   * ```
   */
  script(
    kind: FakeRequestKind,
    action: ScriptAction | ScriptHandler | null,
    options: ScriptOptions = {},
  ): void {
    this.#state.scripts.set(kind, action, options);
  }

  /**
   * Sends an event (or any daemon→client message) to every connection that
   * finished frames #1 and #2, or to one connection. Missing body fields get
   * zero values, except that a `connection_status_event` is completed from
   * the daemon's state (instance token, geometries, `is_connected`). Unknown
   * variants are sent as given.
   *
   * @param event A single-key object `{ <variant>: <body> }`.
   * @param target Which connection; all by default.
   * @throws {TypeError} When `event` does not have exactly one key.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * daemon.emit({ "shutdown_event": {} });
   * ```
   */
  emit(event: FakeEvent, target: ConnectionTarget = {}): void {
    const [variant, body] = eventParts(event, () => this.#state.statusBody());
    for (const conn of this.#hub.targets(target)) {
      if (conn.ready) this.#hub.send(conn, variant, body);
    }
  }

  /**
   * Delivers a message to whatever connection serves a client's session.
   * While the client is away, a `message_reply_event` (or
   * `message_id_garbage_collected`) is queued (at most `maxQueuedReplies`)
   * and flushed before the `session_token_reply` on resume; anything else is
   * dropped, as kpclientd does.
   *
   * @param clientInstanceToken The client's 16-byte token.
   * @param event A single-key object `{ <variant>: <body> }`.
   * @returns False when no session has that token.
   * @throws {TypeError} When `event` does not have exactly one key.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * console.log(daemon.emitToSession(new Uint8Array(16), { "message_reply_event": {} })); // false
   * ```
   */
  emitToSession(clientInstanceToken: Uint8Array, event: FakeEvent): boolean {
    const [variant, body] = eventParts(event, () => this.#state.statusBody());
    const session = this.#hub.session(clientInstanceToken);
    if (session === undefined) return false;
    this.#hub.deliverOrQueue(session, variant, body);
    return true;
  }

  /**
   * Changes the daemon's mixnet connectivity and broadcasts a
   * `connection_status_event`. While offline, the mixnet FIFOs release
   * nothing (they fill up and stall their readers).
   *
   * @param connected The new state.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * daemon.setConnected(false);
   * console.log(daemon.isConnected); // false
   * ```
   */
  setConnected(connected: boolean): void {
    this.#state.connected = connected;
    this.#state.connectedChanged.notify();
    this.#hub.broadcast(
      "connection_status_event",
      () => this.#state.statusBody(),
    );
  }

  /**
   * Replaces the current PKI document. A document is broadcast as a
   * `new_pki_document_event` (default-mode encoding, as kpclientd pushes
   * later documents); the previous one stays available to
   * `get_pki_document` by epoch. `null` means "no document" from now on
   * (nothing is broadcast).
   *
   * @param doc The new document, e.g. from {@linkcode buildPkiDocument}.
   *
   * @example Usage
   * ```ts
   * import { buildPkiDocument, FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * daemon.setPkiDocument(buildPkiDocument({ epoch: 120001 }));
   * ```
   */
  setPkiDocument(doc: FakePkiDocument | null): void {
    const previous = this.#state.doc;
    this.#state.doc = doc;
    if (doc === null) return;
    this.#state.docs.clear();
    if (previous !== null) this.#state.docs.set(previous.epoch, previous);
    this.#state.docs.set(doc.epoch, doc);
    this.#hub.broadcast("new_pki_document_event", () => ({
      "payload": doc.pushedPayload,
    }));
  }

  // -------------------------------------------------------------------------
  // Lifecycle

  /**
   * Closes client connections abruptly, without `shutdown_event` (a
   * non-graceful disconnect). Sessions with a token stay resumable for the
   * grace period; the others are destroyed.
   *
   * @param target Which connection; all by default.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * daemon.drop();
   * ```
   */
  drop(target: ConnectionTarget = {}): void {
    for (const conn of this.#hub.targets(target)) {
      this.#hub.closeConn(conn, "disconnect");
    }
  }

  /**
   * Simulates a daemon restart on the same address: optionally sends
   * `shutdown_event`, closes every connection, forgets all sessions, tokens
   * and in-flight operations, and (by default) takes a new instance token.
   * The box store (the replicas) and copy results (the couriers) survive.
   *
   * @param options Graceful shutdown and instance token choice.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * const before = daemon.instanceToken;
   * await daemon.restart({ graceful: true });
   * console.log(before.toString() !== daemon.instanceToken.toString()); // true
   * ```
   */
  async restart(options: RestartOptions = {}): Promise<void> {
    const conns = [...this.#hub.conns.values()];
    if (options.graceful === true) {
      for (const conn of conns) this.#hub.send(conn, "shutdown_event", {});
      await Promise.all(conns.map((c) => this.#hub.flush(c)));
    }
    this.#hub.closeAll(conns);
    if (options.newInstanceToken ?? true) {
      this.#state.instanceToken = this.#state.rng.bytes(16);
    }
  }

  /**
   * Stops or resumes accepting connections. While stopped, dials fail with
   * "connection refused" (the listener is closed and later reopened on the
   * same address). Existing connections are not touched.
   *
   * @param accepting Whether to accept.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * await daemon.setAccepting(false);
   * await daemon.setAccepting(true);
   * ```
   */
  async setAccepting(accepting: boolean): Promise<void> {
    if (this.#closing !== null) return;
    if (accepting) await this.#listener.start();
    else await this.#listener.stop();
  }

  /**
   * Writes raw bytes to client connections, bypassing framing.
   *
   * @param bytes The bytes, written as one chunk.
   * @param target Which connection; all by default.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * daemon.sendRaw(new Uint8Array([0, 0, 0, 1, 0xa0]));
   * ```
   */
  sendRaw(bytes: Uint8Array, target: ConnectionTarget = {}): void {
    for (const conn of this.#hub.targets(target)) {
      this.#hub.writeChunks(conn, [bytes.slice()]);
    }
  }

  /**
   * Sends a well-framed body that is not valid CBOR.
   *
   * @param target Which connection; all by default.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * daemon.sendMalformed();
   * ```
   */
  sendMalformed(target: ConnectionTarget = {}): void {
    this.sendRaw(encodeFrame(new Uint8Array([0xa1, 0x1c, 0xff])), target);
  }

  /**
   * Sends a length prefix of 40 MiB + 1 followed by a few bytes (a client
   * must give up before allocating the body).
   *
   * @param target Which connection; all by default.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * daemon.sendOversizeFrame();
   * ```
   */
  sendOversizeFrame(target: ConnectionTarget = {}): void {
    const bytes = new Uint8Array(12);
    bytes.set(u32Be(MAX_FRAME_SIZE + 1));
    this.sendRaw(bytes, target);
  }

  /**
   * Sends a frame announcing 100 body bytes but carrying 10, then closes the
   * connection (as after a crash mid-write).
   *
   * @param target Which connection; all by default.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using daemon = await FakeDaemon.start({ transport: "memory" });
   * await daemon.sendTruncatedFrameAndClose();
   * ```
   */
  async sendTruncatedFrameAndClose(
    target: ConnectionTarget = {},
  ): Promise<void> {
    const bytes = new Uint8Array(14);
    bytes.set(u32Be(100));
    bytes.fill(0xa0, 4);
    const conns = this.#hub.targets(target);
    for (const conn of conns) this.#hub.writeChunks(conn, [bytes]);
    await Promise.all(conns.map((c) => this.#hub.flush(c)));
    for (const conn of conns) this.#hub.closeConn(conn, "disconnect");
  }

  /**
   * Stops listening, closes every connection, cancels every timer and
   * pending wait, and removes temporary files. Idempotent.
   *
   * @returns Resolves when everything is released.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * const daemon = await FakeDaemon.start({ transport: "memory" });
   * await daemon.close();
   * await daemon.close();
   * ```
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  /**
   * Same as {@linkcode FakeDaemon.close}, for `await using`.
   *
   * @returns Resolves when everything is released.
   *
   * @example Usage
   * ```ts
   * import { FakeDaemon } from "@katzenpost/thinclient/testing";
   * await using _daemon = await FakeDaemon.start({ transport: "memory" });
   * ```
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #shutdown(): Promise<void> {
    this.#state.lifetime.abort(new Error("Fake daemon closed"));
    await this.#listener.stop();
    this.#hub.closeAll();
    const tasks = this.#state.tasks;
    while (tasks.size > 0) await Promise.allSettled([...tasks]);
    await this.#listener.close();
  }
}
