/**
 * Listeners of the fake daemon: TCP, Unix, WebSocket (each frame sent as two
 * binary messages, text messages closed with 1003) and an in-memory pipe.
 * Only the daemon's side lives here: clients reach the socket listeners with
 * the dialers of transport/ (TcpDialer, UnixDialer, WebSocketDialer), the
 * memory listener with its own in-memory pipe.
 *
 * @module
 */
import { within } from "../lib/_async.ts";
import type { Conn, Dialer, DialOptions } from "../lib/conn.ts";
import { ConnectionError } from "../lib/errors.ts";
import { TcpDialer, UnixDialer, WebSocketDialer } from "../transport/mod.ts";

/**
 * The transport a fake daemon listens on.
 *
 * @example Usage
 * ```ts
 * import type { FakeTransport } from "@katzenpost/thinclient/testing";
 * const transport: FakeTransport = "memory";
 * ```
 */
export type FakeTransport = "tcp" | "unix" | "ws" | "memory";

/** The daemon's end of one client connection. */
export interface ServerSocket {
  /** Bytes from the client. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Writes chunks in order; each chunk is one write (one WebSocket message). */
  write(chunks: readonly Uint8Array[]): Promise<void>;
  /** Closes the connection; idempotent. */
  close(): void;
}

/** A listening fake daemon endpoint. */
export interface FakeListener {
  /** Address as a client configures it. */
  readonly address: string;
  /** A dialer for this endpoint. */
  readonly dialer: Dialer;
  /** Stops accepting (clients get "connection refused"). */
  stop(): Promise<void>;
  /** Starts accepting again on the same address. */
  start(): Promise<void>;
  /** Stops for good and removes temporary files. */
  close(): Promise<void>;
}

/** Options of {@linkcode listen}. */
export interface ListenOptions {
  /** TCP/WS port. @default 0 (any free port) */
  port?: number;
  /**
   * Unix socket path, or `@name` for a Linux abstract socket.
   * @default a file in a new temporary directory
   */
  path?: string;
}

function noDelay(conn: Deno.Conn): void {
  if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
}

function swallow(fn: () => void): void {
  try {
    fn();
  } catch {
    // already closed
  }
}

class DenoSocket implements ServerSocket {
  readonly #conn: Deno.Conn;
  #writer: WritableStreamDefaultWriter<Uint8Array> | null = null;
  #readable: ReadableStream<Uint8Array> | null = null;
  #closed = false;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  get readable(): ReadableStream<Uint8Array> {
    // Not conn.readable: that closes the socket at the client's EOF, and the
    // daemon must decide itself when to close (FakeDaemonFaults.ignoreClientEof).
    if (this.#readable !== null) return this.#readable;
    const buffer = new Uint8Array(64 * 1024);
    this.#readable = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        let n: number | null = null;
        try {
          n = await this.#conn.read(buffer);
        } catch {
          // closed under the read: end of stream
        }
        if (n === null) controller.close();
        else controller.enqueue(buffer.slice(0, n));
      },
      cancel: () => this.close(),
    });
    return this.#readable;
  }

  async write(chunks: readonly Uint8Array[]): Promise<void> {
    if (this.#closed) throw new ConnectionError("Cannot write: socket closed");
    this.#writer ??= this.#conn.writable.getWriter();
    for (const chunk of chunks) await this.#writer.write(chunk);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    swallow(() => this.#conn.close());
  }
}

class DenoListener implements FakeListener {
  readonly address: string;
  readonly dialer: Dialer;
  readonly #open: () => Deno.Listener;
  readonly #onAccept: (socket: ServerSocket) => void;
  readonly #cleanup: () => Promise<void>;
  #listener: Deno.Listener | null = null;
  #loop: Promise<void> = Promise.resolve();

  constructor(
    address: string,
    dialer: Dialer,
    listener: Deno.Listener,
    open: () => Deno.Listener,
    onAccept: (socket: ServerSocket) => void,
    cleanup: () => Promise<void>,
  ) {
    this.address = address;
    this.dialer = dialer;
    this.#open = open;
    this.#onAccept = onAccept;
    this.#cleanup = cleanup;
    this.#run(listener);
  }

  #run(listener: Deno.Listener): void {
    this.#listener = listener;
    this.#loop = (async () => {
      try {
        for await (const conn of listener) {
          noDelay(conn);
          this.#onAccept(new DenoSocket(conn));
        }
      } catch {
        // listener closed
      }
    })();
  }

  async stop(): Promise<void> {
    const listener = this.#listener;
    if (listener === null) return;
    this.#listener = null;
    swallow(() => listener.close());
    await this.#loop;
  }

  async start(): Promise<void> {
    if (this.#listener !== null) return;
    await this.#cleanupSocketFile();
    this.#run(this.#open());
  }

  async #cleanupSocketFile(): Promise<void> {
    if (this.address.startsWith("/")) {
      await Deno.remove(this.address).catch(() => {});
    }
  }

  async close(): Promise<void> {
    await this.stop();
    await this.#cleanup();
  }
}

function listenTcp(
  onAccept: (socket: ServerSocket) => void,
  options: ListenOptions,
): Promise<FakeListener> {
  const first = Deno.listen({ hostname: "127.0.0.1", port: options.port ?? 0 });
  const port = (first.addr as Deno.NetAddr).port;
  const address = `127.0.0.1:${port}`;
  const dialer = new TcpDialer({ address });
  return Promise.resolve(
    new DenoListener(
      address,
      dialer,
      first,
      () => Deno.listen({ hostname: "127.0.0.1", port }),
      onAccept,
      () => Promise.resolve(),
    ),
  );
}

async function listenUnix(
  onAccept: (socket: ServerSocket) => void,
  options: ListenOptions,
): Promise<FakeListener> {
  let dir: string | null = null;
  let path = options.path;
  if (path === undefined) {
    dir = await Deno.makeTempDir({ prefix: "fake_kpclientd_" });
    path = `${dir}/kpclientd.sock`;
  }
  const socketPath = path;
  // "@name" is a Linux abstract socket, named as Go names it: a NUL byte and
  // the name, exact length (Deno binds and connects "\0name" that way).
  const abstract = socketPath.startsWith("@");
  const osPath = abstract ? `\0${socketPath.slice(1)}` : socketPath;
  const open = () =>
    Deno.listen({ transport: "unix", path: osPath }) as Deno.Listener;
  const first = open();
  const dialer = new UnixDialer({ address: socketPath });
  return new DenoListener(
    socketPath,
    dialer,
    first,
    open,
    onAccept,
    async () => {
      if (!abstract) await Deno.remove(socketPath).catch(() => {});
      if (dir !== null) {
        await Deno.remove(dir, { recursive: true }).catch(
          () => {},
        );
      }
    },
  );
}

class WsServerSocket implements ServerSocket {
  readonly readable: ReadableStream<Uint8Array>;
  readonly #socket: WebSocket;
  readonly #opened: Promise<boolean>;
  #closed = false;

  constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.binaryType = "arraybuffer";
    this.#opened = new Promise<boolean>((resolve) => {
      socket.addEventListener("open", () => resolve(true), { once: true });
      socket.addEventListener("close", () => resolve(false), { once: true });
    });
    this.readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        let done = false;
        const finish = () => {
          if (done) return;
          done = true;
          swallow(() => controller.close());
        };
        socket.addEventListener("message", (e: MessageEvent) => {
          if (done) return;
          if (typeof e.data === "string") {
            // A text message is a protocol error: close with 1003.
            this.#closeWith(1003, "text message");
            finish();
            return;
          }
          controller.enqueue(new Uint8Array(e.data as ArrayBuffer));
        });
        socket.addEventListener("close", finish);
        socket.addEventListener("error", finish);
      },
      cancel: () => this.close(),
    });
  }

  async write(chunks: readonly Uint8Array[]): Promise<void> {
    if (!await this.#opened || this.#closed) {
      throw new ConnectionError("Cannot write: websocket closed");
    }
    for (const chunk of chunks) {
      if (this.#socket.readyState !== WebSocket.OPEN) {
        throw new ConnectionError("Cannot write: websocket closed");
      }
      this.#socket.send(chunk);
    }
  }

  #closeWith(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    const socket = this.#socket;
    if (socket.readyState === WebSocket.CONNECTING) {
      socket.addEventListener(
        "open",
        () => swallow(() => socket.close(code, reason)),
        {
          once: true,
        },
      );
    } else {
      swallow(() => socket.close(code, reason));
    }
  }

  close(): void {
    this.#closeWith(1000, "");
  }
}

function listenWs(
  onAccept: (socket: ServerSocket) => void,
  options: ListenOptions,
): Promise<FakeListener> {
  let port = options.port ?? 0;
  const sockets = new Set<WebSocket>();
  const serve = () => {
    const ac = new AbortController();
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port,
      signal: ac.signal,
      onListen: () => {},
    }, (req) => {
      if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        return new Response("websocket only\n", { status: 426 });
      }
      const { socket, response } = Deno.upgradeWebSocket(req);
      sockets.add(socket);
      socket.addEventListener("close", () => sockets.delete(socket));
      onAccept(new WsServerSocket(socket));
      return response;
    });
    port = server.addr.port;
    return { ac, server };
  };
  let current: ReturnType<typeof serve> | null = serve();
  const url = `ws://127.0.0.1:${port}/`;
  const dialer = new WebSocketDialer({ address: url });
  const stop = async () => {
    const c = current;
    if (c === null) return;
    current = null;
    // Each socket gets a second to finish its closing handshake.
    await Promise.all([...sockets].map((s) => {
      if (s.readyState === WebSocket.CLOSED) return;
      const closed = new Promise((resolve) =>
        s.addEventListener("close", resolve, { once: true })
      );
      swallow(() => s.close(1001));
      return within(closed, 1000);
    }));
    c.ac.abort();
    await c.server.finished;
  };
  return Promise.resolve({
    address: url,
    dialer,
    stop,
    start() {
      current ??= serve();
      return Promise.resolve();
    },
    close: stop,
  });
}

/** A memory pipe: the client's Conn and the daemon's ServerSocket. */
export function memoryPair(): { client: Conn; server: ServerSocket } {
  let toServer!: ReadableStreamDefaultController<Uint8Array>;
  let toClient!: ReadableStreamDefaultController<Uint8Array>;
  let closed = false;
  let clientWriteClosed = false;
  const shutdown = () => {
    if (closed) return;
    closed = true;
    if (!clientWriteClosed) swallow(() => toServer.close());
    swallow(() => toClient.close());
  };
  const serverReadable = new ReadableStream<Uint8Array>({
    start(c) {
      toServer = c;
    },
    cancel: shutdown,
  });
  const clientReadable = new ReadableStream<Uint8Array>({
    start(c) {
      toClient = c;
    },
    cancel: shutdown,
  });
  const clientWritable = new WritableStream<Uint8Array>({
    write(chunk) {
      if (closed || clientWriteClosed) {
        throw new ConnectionError("Cannot write: connection closed");
      }
      toServer.enqueue(chunk.slice());
    },
    close() {
      if (closed || clientWriteClosed) return;
      clientWriteClosed = true;
      swallow(() => toServer.close());
    },
    abort: shutdown,
  });
  const client: Conn = {
    readable: clientReadable,
    writable: clientWritable,
    remoteAddress: "memory",
    close: shutdown,
  };
  const server: ServerSocket = {
    readable: serverReadable,
    write(chunks) {
      if (closed) {
        return Promise.reject(
          new ConnectionError("Cannot write: connection closed"),
        );
      }
      for (const chunk of chunks) toClient.enqueue(chunk.slice());
      return Promise.resolve();
    },
    close: shutdown,
  };
  return { client, server };
}

function listenMemory(
  onAccept: (socket: ServerSocket) => void,
): Promise<FakeListener> {
  let accepting = true;
  const dialer: Dialer = {
    address: "memory",
    dial(opts?: DialOptions): Promise<Conn> {
      if (opts?.signal?.aborted) return Promise.reject(opts.signal.reason);
      if (!accepting) {
        return Promise.reject(
          new ConnectionError(
            "Cannot dial daemon at 'memory': connection refused",
          ),
        );
      }
      const { client, server } = memoryPair();
      onAccept(server);
      return Promise.resolve(client);
    },
  };
  return Promise.resolve({
    address: "memory",
    dialer,
    stop() {
      accepting = false;
      return Promise.resolve();
    },
    start() {
      accepting = true;
      return Promise.resolve();
    },
    close() {
      accepting = false;
      return Promise.resolve();
    },
  });
}

/** Starts listening on a transport; `onAccept` gets each new connection. */
export function listen(
  transport: FakeTransport,
  onAccept: (socket: ServerSocket) => void,
  options: ListenOptions = {},
): Promise<FakeListener> {
  switch (transport) {
    case "tcp":
      return listenTcp(onAccept, options);
    case "unix":
      return listenUnix(onAccept, options);
    case "ws":
      return listenWs(onAccept, options);
    case "memory":
      return listenMemory(onAccept);
    default:
      return Promise.reject(
        new TypeError(
          `Cannot start fake daemon: unknown transport "${transport}"`,
        ),
      );
  }
}
