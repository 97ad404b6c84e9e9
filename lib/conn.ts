/**
 * The seam between the runtime-neutral client and whatever carries its bytes.
 *
 * A {@linkcode Conn} is a full-duplex byte stream made of web streams; a
 * {@linkcode Dialer} opens one. The `transport` module implements both for TCP,
 * Unix sockets and WebSocket; applications may plug in their own.
 *
 * @module
 */

/**
 * A connected, reliable, ordered byte stream to the daemon.
 *
 * @example Usage
 * ```ts
 * import type { Conn } from "@katzenpost/thinclient";
 * function describe(conn: Conn): string {
 *   return conn.remoteAddress ?? "unknown peer";
 * }
 * ```
 */
export interface Conn {
  /**
   * Bytes from the daemon. Chunk boundaries carry no meaning. The client may
   * keep a chunk until it has decoded the frames in it: a transport must not
   * write into a chunk it has handed over.
   */
  readonly readable: ReadableStream<Uint8Array>;
  /**
   * Bytes to the daemon. Each written chunk is sent in order. Closing it ends
   * the sending side only (TCP/Unix half-close, WebSocket closing handshake):
   * `readable` stays open until the daemon closes its side. The client closes
   * it on `close()`/`detach()` and then waits (2 s at most) for that.
   */
  readonly writable: WritableStream<Uint8Array>;
  /** A human-readable peer address, used in error messages. */
  readonly remoteAddress?: string;
  /** Closes both directions. Calling it more than once is harmless. */
  close(): void;
  /**
   * Optional direct reading, for a transport that can read without a stream
   * (the Deno TCP and Unix transports can): the next bytes from the daemon,
   * or `null` once it has closed its side. A client given all three direct
   * methods uses them instead of `readable` and `writable`, which saves the
   * streams' promises on every chunk; it never uses both.
   */
  readChunk?(): Promise<Uint8Array | null>;
  /** Optional direct writing (see `readChunk`): writes all of `bytes`, in order. */
  writeChunk?(bytes: Uint8Array): Promise<void>;
  /** Optional (see `readChunk`): ends the sending side, as closing `writable` does. */
  closeWrite?(): Promise<void>;
}

/**
 * Options of {@linkcode Dialer.dial}.
 *
 * @example Usage
 * ```ts
 * import type { DialOptions } from "@katzenpost/thinclient";
 * const options: DialOptions = { signal: AbortSignal.timeout(5000) };
 * ```
 */
export interface DialOptions {
  /** Aborts the dial; the promise rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/**
 * Opens connections to the daemon. The client calls `dial` once at start and
 * again for every reconnect.
 *
 * @example Usage
 * ```ts
 * import type { Conn, Dialer } from "@katzenpost/thinclient";
 * function fixedDialer(conn: Conn): Dialer {
 *   return { address: "memory", dial: () => Promise.resolve(conn) };
 * }
 * ```
 */
export interface Dialer {
  /** The address dialled, for messages (for example `tcp 127.0.0.1:64331`). */
  readonly address: string;
  /** Opens a new connection. */
  dial(options?: DialOptions): Promise<Conn>;
}
