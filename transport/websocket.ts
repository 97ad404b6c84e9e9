/**
 * The WebSocket transport: {@linkcode WebSocketDialer} dials the daemon's
 * `[Listen.Ws]` listener with the global `WebSocket` (Deno, Node 22+ and
 * browsers). This file imports no runtime module, so browsers can load it.
 *
 * @module
 */
import type { Conn, Dialer, DialOptions } from "../lib/conn.ts";
import { validateDialConfig, type WebSocketDialConfig } from "../lib/config.ts";
import { ConnectionError, ProtocolError } from "../lib/errors.ts";
import { delay } from "../lib/_async.ts";

/** Above this many queued bytes, writes wait for the socket to drain. */
const SEND_HIGH_WATER = 1024 * 1024;
/** How often a waiting write looks at `bufferedAmount`, in milliseconds. */
const DRAIN_POLL_MS = 5;

/**
 * Dials the daemon over a WebSocket used as a plain byte pipe: binary
 * messages only, and message boundaries mean nothing (the daemon sends each
 * frame as two messages). A plain `ws://` URL must name a loopback host unless
 * `allowRemote` is set; `wss://` may go anywhere.
 *
 * Incoming messages cannot be paused (the `WebSocket` API has no
 * backpressure), so the readable stream buffers whatever arrives.
 *
 * @example Usage
 * ```ts ignore
 * import { WebSocketDialer } from "@katzenpost/thinclient/transport";
 * const dialer = new WebSocketDialer({ address: "ws://127.0.0.1:64331/" });
 * const conn = await dialer.dial({ signal: AbortSignal.timeout(5000) });
 * conn.close();
 * ```
 */
export class WebSocketDialer implements Dialer {
  /** `ws ws://127.0.0.1:64331/`. */
  readonly address: string;
  readonly #url: string;

  /**
   * Creates a dialer; nothing is opened until {@linkcode WebSocketDialer.dial}.
   *
   * @param config The URL and the remote-host permission.
   * @throws {ConfigError} When the URL is invalid, or is a plain `ws://` URL
   * to a non-loopback host without `allowRemote: true`.
   */
  constructor(config: WebSocketDialConfig) {
    const { ws } = validateDialConfig({ ws: config }) as {
      ws: WebSocketDialConfig;
    };
    this.address = `ws ${ws.address}`;
    const url = new URL(ws.address);
    if (url.protocol === "http:") url.protocol = "ws:";
    if (url.protocol === "https:") url.protocol = "wss:";
    this.#url = url.href;
  }

  /**
   * Opens a connection.
   *
   * @param options An abort signal.
   * @returns The connection.
   * @throws {ConnectionError} When the WebSocket cannot be opened (the
   * `WebSocket` API gives no detail beyond the close code).
   * @throws {unknown} `signal.reason` when the signal aborts the dial.
   *
   * @example Usage
   * ```ts ignore
   * import { WebSocketDialer } from "@katzenpost/thinclient/transport";
   * const conn = await new WebSocketDialer({ address: "ws://localhost:64331/" }).dial();
   * conn.close();
   * ```
   */
  dial(options?: DialOptions): Promise<Conn> {
    const signal = options?.signal;
    const label = this.address;
    return new Promise<Conn>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      if (typeof globalThis.WebSocket !== "function") {
        reject(
          new ConnectionError(
            `Cannot dial daemon at '${label}': this runtime has no global WebSocket (Node 22 or newer is needed)`,
          ),
        );
        return;
      }
      let ws: WebSocket;
      try {
        ws = new WebSocket(this.#url);
      } catch (err) {
        reject(
          new ConnectionError(
            `Cannot dial daemon at '${label}': ${
              err instanceof Error ? err.message : String(err)
            }`,
            { cause: err },
          ),
        );
        return;
      }
      ws.binaryType = "arraybuffer";
      const cleanup = (): void => {
        signal?.removeEventListener("abort", onAbort);
        ws.onopen = null;
        ws.onerror = null;
        ws.onclose = null;
      };
      const onAbort = (): void => {
        cleanup();
        ws.close();
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      ws.onopen = () => {
        cleanup();
        resolve(_wrapWebSocket(ws, label));
      };
      ws.onerror = (event) => {
        // Browsers and Deno follow with a close event; Node 22 does not.
        cleanup();
        const error = (event as { error?: unknown }).error;
        const detail = error instanceof Error
          ? error.message
          : (event as { message?: unknown }).message;
        reject(
          new ConnectionError(
            `Cannot dial daemon at '${label}': WebSocket handshake failed${
              typeof detail === "string" && detail !== ""
                ? `: ${detail.replace(/\.$/, "")}`
                : ""
            }`,
            { cause: error ?? event },
          ),
        );
        try {
          ws.close();
        } catch {
          // Already closing.
        }
      };
      ws.onclose = (event) => {
        cleanup();
        const reason = event.reason === "" ? "" : ` (${event.reason})`;
        reject(
          new ConnectionError(
            `Cannot dial daemon at '${label}': WebSocket closed during the handshake with code ${event.code}${reason}`,
          ),
        );
      };
    });
  }
}

function _wrapWebSocket(ws: WebSocket, label: string): Conn {
  let closed = false;
  let closing = false;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const endReadable = (error?: Error): void => {
    try {
      if (error === undefined) controller.close();
      else controller.error(error);
    } catch {
      // Already closed or errored.
    }
  };
  const close = (): void => {
    if (closed) return;
    closed = true;
    try {
      ws.close(1000);
    } catch {
      // Closing is best effort.
    }
    endReadable();
  };
  const readable = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
    cancel() {
      close();
    },
  });
  ws.onmessage = (event: MessageEvent) => {
    if (closed) return;
    const data: unknown = event.data;
    if (data instanceof ArrayBuffer) {
      if (data.byteLength > 0) controller.enqueue(new Uint8Array(data));
      return;
    }
    // A text message breaks the protocol: the daemon's side would close with 1003.
    endReadable(
      new ProtocolError(
        `Cannot read from daemon at '${label}': received a ${
          typeof data === "string" ? "text" : "non-binary"
        } WebSocket message`,
      ),
    );
    close();
  };
  ws.onerror = (event: Event) => {
    // Browsers and Deno follow with a close event, Node 22 may not: end here.
    if (closed) return;
    closed = true;
    const error = (event as { error?: unknown }).error;
    endReadable(
      new ConnectionError(
        `Cannot read from daemon at '${label}': WebSocket failed${
          error instanceof Error ? `: ${error.message}` : ""
        }`,
        { cause: error ?? event },
      ),
    );
    try {
      ws.close();
    } catch {
      // Already closing.
    }
  };
  ws.onclose = (event: CloseEvent) => {
    const wasClosed = closed;
    closed = true;
    if (wasClosed || event.code === 1000 || event.code === 1001) {
      endReadable();
      return;
    }
    const reason = event.reason === "" ? "" : ` (${event.reason})`;
    endReadable(
      new ConnectionError(
        `Cannot read from daemon at '${label}': WebSocket closed with code ${event.code}${reason}`,
      ),
    );
  };
  const writeClosed = (): ConnectionError =>
    new ConnectionError(
      `Cannot write to daemon at '${label}': connection closed`,
    );
  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      if (closed || closing || ws.readyState !== WebSocket.OPEN) {
        throw writeClosed();
      }
      // A view on a SharedArrayBuffer cannot be sent; copy it then.
      ws.send(
        chunk.buffer instanceof ArrayBuffer
          ? chunk as Uint8Array<ArrayBuffer>
          : chunk.slice(),
      );
      while (ws.bufferedAmount > SEND_HIGH_WATER) {
        await delay(DRAIN_POLL_MS);
        if (closed || ws.readyState !== WebSocket.OPEN) throw writeClosed();
      }
    },
    close() {
      // A WebSocket cannot half-close: start the closing handshake instead.
      // The readable ends when the daemon's side has closed.
      if (closed || closing) return;
      closing = true;
      try {
        ws.close(1000);
      } catch {
        // Closing is best effort.
      }
    },
    abort() {
      close();
    },
  });
  return { readable, writable, remoteAddress: label, close };
}
