import assert from "node:assert/strict";
import type { Conn } from "../lib/conn.ts";
import { deferred } from "../lib/_async.ts";
import { ConfigError, ConnectionError, ProtocolError } from "../lib/errors.ts";
import { encodeFrame, FrameDecoder } from "../lib/framing.ts";
import { TcpDialer, UnixDialer, WebSocketDialer } from "../transport/mod.ts";

// --- helpers ------------------------------------------------------------------

/** An echo server on a Deno listener; `close()` stops it and waits for its connections. */
function echoServer(listener: Deno.Listener): { close(): Promise<void> } {
  const tasks: Promise<void>[] = [];
  const loop = (async () => {
    for await (const conn of listener) {
      tasks.push(
        conn.readable.pipeTo(conn.writable).catch(() => {}).finally(() => {
          try {
            conn.close();
          } catch {
            // Closed by the stream already.
          }
        }),
      );
    }
  })();
  return {
    async close() {
      listener.close();
      await loop;
      await Promise.all(tasks);
    },
  };
}

/** Reads exactly `n` bytes from a reader, or fewer if the stream ends. */
async function readBytes(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  n: number,
): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let filled = 0;
  while (filled < n) {
    const { value, done } = await reader.read();
    if (done) return out.subarray(0, filled);
    out.set(value.subarray(0, n - filled), filled);
    filled += Math.min(value.length, n - filled);
  }
  return out;
}

function pattern(size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + (i >>> 8)) & 0xff;
  return out;
}

/** Writes `data` in 64 KiB chunks while reading it back; checks the echo. */
async function roundTrip(conn: Conn, data: Uint8Array): Promise<void> {
  const writer = conn.writable.getWriter();
  const reader = conn.readable.getReader();
  const writing = (async () => {
    for (let offset = 0; offset < data.length; offset += 65536) {
      await writer.write(data.slice(offset, offset + 65536));
    }
  })();
  const received = await readBytes(reader, data.length);
  await writing;
  assert.equal(received.length, data.length);
  assert.ok(received.every((b, i) => b === data[i]), "echoed bytes differ");
  writer.releaseLock();
  reader.releaseLock();
}

async function tempSocketPath(): Promise<
  { path: string; cleanup(): Promise<void> }
> {
  const dir = await Deno.makeTempDir({ prefix: "thin_transport_" });
  return {
    path: `${dir}/thin.sock`,
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

// --- TCP -----------------------------------------------------------------------

Deno.test("TcpDialer.dial() exchanges bytes both ways", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = echoServer(listener);
  const { port } = listener.addr as Deno.NetAddr;
  const dialer = new TcpDialer({ address: `127.0.0.1:${port}` });
  assert.equal(dialer.address, `tcp 127.0.0.1:${port}`);
  const conn = await dialer.dial();
  try {
    assert.equal(conn.remoteAddress, `tcp 127.0.0.1:${port}`);
    await roundTrip(conn, new TextEncoder().encode("hello daemon"));
  } finally {
    conn.close();
    await server.close();
  }
});

Deno.test("TcpDialer.dial() carries 1 MiB both ways", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = echoServer(listener);
  const { port } = listener.addr as Deno.NetAddr;
  const conn = await new TcpDialer({ address: `127.0.0.1:${port}` }).dial();
  try {
    await roundTrip(conn, pattern(1024 * 1024));
  } finally {
    conn.close();
    await server.close();
  }
});

Deno.test("TcpDialer.dial() reaches [::1] with network tcp6", async () => {
  const listener = Deno.listen({ hostname: "::1", port: 0 });
  const server = echoServer(listener);
  const { port } = listener.addr as Deno.NetAddr;
  const dialer = new TcpDialer({ address: `[::1]:${port}`, network: "tcp6" });
  assert.equal(dialer.address, `tcp6 [::1]:${port}`);
  const conn = await dialer.dial();
  try {
    await roundTrip(conn, new Uint8Array([1, 2, 3]));
  } finally {
    conn.close();
    await server.close();
  }
});

Deno.test("TcpDialer.dial() resolves localhost to IPv4 with network tcp4", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = echoServer(listener);
  const { port } = listener.addr as Deno.NetAddr;
  const conn = await new TcpDialer({
    address: `localhost:${port}`,
    network: "tcp4",
  }).dial();
  try {
    await roundTrip(conn, new Uint8Array([4, 5, 6]));
  } finally {
    conn.close();
    await server.close();
  }
});

Deno.test("TcpDialer.dial() refuses an IP literal of the wrong family", async () => {
  const dialer = new TcpDialer({ address: "[::1]:64331", network: "tcp4" });
  await assert.rejects(dialer.dial(), {
    name: "ConnectionError",
    message:
      "Cannot dial daemon at 'tcp4 [::1]:64331': '::1' is not an IPv4 address",
  });
});

Deno.test("TcpDialer.dial() rejects a refused connection with ConnectionError", async () => {
  const dialer = new TcpDialer({ address: "127.0.0.1:1" });
  await assert.rejects(dialer.dial(), (err: unknown) => {
    assert.ok(err instanceof ConnectionError);
    assert.equal(
      err.message,
      "Cannot dial daemon at 'tcp 127.0.0.1:1': Connection refused",
    );
    assert.ok(err.cause instanceof Error);
    return true;
  });
});

Deno.test("TcpDialer.dial() rejects with signal.reason when aborted before dialling", async () => {
  const reason = new Error("stop");
  const dialer = new TcpDialer({ address: "127.0.0.1:1" });
  await assert.rejects(
    dialer.dial({ signal: AbortSignal.abort(reason) }),
    (err) => err === reason,
  );
});

Deno.test("TcpDialer.dial() rejects with signal.reason when aborted during the dial", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = echoServer(listener);
  const { port } = listener.addr as Deno.NetAddr;
  const controller = new AbortController();
  const reason = new Error("changed my mind");
  const dialing = new TcpDialer({ address: `127.0.0.1:${port}` }).dial({
    signal: controller.signal,
  });
  controller.abort(reason);
  try {
    await assert.rejects(dialing, (err) => err === reason);
  } finally {
    await server.close();
  }
});

Deno.test("Conn.close() is idempotent and ends a pending read", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = echoServer(listener);
  const { port } = listener.addr as Deno.NetAddr;
  const conn = await new TcpDialer({ address: `127.0.0.1:${port}` }).dial();
  const reader = conn.readable.getReader();
  const writer = conn.writable.getWriter();
  const pending = reader.read();
  conn.close();
  conn.close();
  try {
    assert.deepEqual(await pending, { value: undefined, done: true });
    await assert.rejects(writer.write(new Uint8Array([1])), ConnectionError);
  } finally {
    await server.close();
  }
});

Deno.test("Conn.readable ends when the daemon closes the connection", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  const serving = (async () => {
    const peer = await listener.accept();
    await peer.write(new Uint8Array([9, 8, 7]));
    peer.close();
  })();
  const conn = await new TcpDialer({ address: `127.0.0.1:${port}` }).dial();
  try {
    const reader = conn.readable.getReader();
    assert.deepEqual([...await readBytes(reader, 3)], [9, 8, 7]);
    assert.equal((await reader.read()).done, true);
  } finally {
    conn.close();
    await serving;
    listener.close();
  }
});

// --- Unix ----------------------------------------------------------------------------

Deno.test("UnixDialer.dial() exchanges bytes over a socket path", async () => {
  const tmp = await tempSocketPath();
  const server = echoServer(Deno.listen({ transport: "unix", path: tmp.path }));
  const dialer = new UnixDialer({ address: tmp.path });
  assert.equal(dialer.address, `unix ${tmp.path}`);
  const conn = await dialer.dial();
  try {
    await roundTrip(conn, pattern(1024 * 1024));
  } finally {
    conn.close();
    await server.close();
    await tmp.cleanup();
  }
});

Deno.test("UnixDialer.dial() rejects a missing socket with ConnectionError", async () => {
  const dialer = new UnixDialer({ address: "/nonexistent/thin.sock" });
  await assert.rejects(dialer.dial(), {
    name: "ConnectionError",
    message:
      "Cannot dial daemon at 'unix /nonexistent/thin.sock': No such file or directory",
  });
});

Deno.test("UnixDialer.dial() reaches a Go-style exact-length abstract socket", {
  ignore: Deno.build.os !== "linux",
}, async () => {
  const name = `thin_test_${crypto.randomUUID().slice(0, 8)}`;
  const server = echoServer(
    Deno.listen({ transport: "unix", path: `\0${name}` }),
  );
  try {
    // Deno.listen binds '\0name' with the exact length, as Go and Python do
    // (`ss -xl` shows '@name'); the next test shows the dialer does not pad.
    const conn = await new UnixDialer({ address: `@${name}` }).dial();
    try {
      await roundTrip(conn, new TextEncoder().encode("abstract"));
    } finally {
      conn.close();
    }
  } finally {
    await server.close();
  }
});

Deno.test("UnixDialer.dial() does not reach a NUL-padded abstract name", {
  ignore: Deno.build.os !== "linux",
}, async () => {
  // Node 20 names abstract sockets this way (padded to 108 bytes); it is a
  // different socket from Go's '@name', so the dial must be refused.
  const name = `thin_test_${crypto.randomUUID().slice(0, 8)}`;
  const padded = `\0${name}`.padEnd(108, "\0");
  const listener = Deno.listen({ transport: "unix", path: padded });
  try {
    await assert.rejects(new UnixDialer({ address: `@${name}` }).dial(), {
      name: "ConnectionError",
      message: `Cannot dial daemon at 'unix @${name}': Connection refused`,
    });
  } finally {
    listener.close();
  }
});

Deno.test("TcpDialer.dial() aborted at any point rejects with signal.reason or succeeds", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = echoServer(listener);
  const { port } = listener.addr as Deno.NetAddr;
  const dialer = new TcpDialer({ address: `127.0.0.1:${port}` });
  try {
    for (let ticks = 0; ticks < 30; ticks++) {
      const controller = new AbortController();
      const reason = new Error(`abort after ${ticks} ticks`);
      const dialing = dialer.dial({ signal: controller.signal });
      for (let i = 0; i < ticks; i++) await Promise.resolve();
      controller.abort(reason);
      try {
        (await dialing).close();
      } catch (err) {
        assert.equal(err, reason);
      }
    }
  } finally {
    await server.close();
  }
});

Deno.test("UnixDialer.dial() rejects with signal.reason when aborted", async () => {
  const tmp = await tempSocketPath();
  const server = echoServer(Deno.listen({ transport: "unix", path: tmp.path }));
  const reason = new Error("stop");
  try {
    const dialer = new UnixDialer({ address: tmp.path });
    await assert.rejects(
      dialer.dial({ signal: AbortSignal.abort(reason) }),
      (e) => e === reason,
    );
    const controller = new AbortController();
    const dialing = dialer.dial({ signal: controller.signal });
    controller.abort(reason);
    await assert.rejects(dialing, (e) => e === reason);
  } finally {
    await server.close();
    await tmp.cleanup();
  }
});

// --- WebSocket ------------------------------------------------------------------------

interface WsServer {
  port: number;
  /** Resolves with the server side of the next upgraded socket. */
  nextSocket(): Promise<WebSocket>;
  close(): Promise<void>;
}

/**
 * A WebSocket server. By default it echoes, sending each received message back
 * as two messages (4 bytes, then the rest) the way kpclientd writes a frame.
 */
function wsServer(
  options: { echo?: boolean; beforeUpgrade?: Promise<void> } = {},
): WsServer {
  const sockets: WebSocket[] = [];
  const waiting: ((s: WebSocket) => void)[] = [];
  const closedSockets: Promise<void>[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      if (options.beforeUpgrade !== undefined) await options.beforeUpgrade;
      if (request.headers.get("upgrade") !== "websocket") {
        return new Response("not a websocket", { status: 404 });
      }
      const { socket, response } = Deno.upgradeWebSocket(request);
      socket.binaryType = "arraybuffer";
      const closed = deferred<void>();
      closedSockets.push(closed.promise);
      socket.addEventListener("close", () => closed.resolve());
      if (options.echo !== false) {
        socket.addEventListener("message", (event) => {
          const bytes = new Uint8Array(event.data as ArrayBuffer);
          const cut = Math.min(4, bytes.length);
          socket.send(bytes.slice(0, cut));
          if (bytes.length > cut) socket.send(bytes.slice(cut));
        });
      }
      const waiter = waiting.shift();
      if (waiter !== undefined) waiter(socket);
      else sockets.push(socket);
      return response;
    },
  );
  return {
    port: server.addr.port,
    nextSocket() {
      const socket = sockets.shift();
      if (socket !== undefined) return Promise.resolve(socket);
      return new Promise((resolve) => waiting.push(resolve));
    },
    async close() {
      await Promise.all(closedSockets);
      await server.shutdown();
    },
  };
}

Deno.test("WebSocketDialer.dial() exchanges bytes with split messages", async () => {
  const server = wsServer();
  const address = `ws://127.0.0.1:${server.port}/`;
  const dialer = new WebSocketDialer({ address });
  assert.equal(dialer.address, `ws ${address}`);
  const conn = await dialer.dial();
  try {
    await roundTrip(conn, new TextEncoder().encode("hello over websocket"));
  } finally {
    conn.close();
    await server.close();
  }
});

Deno.test("WebSocketDialer.dial() carries 1 MiB both ways", async () => {
  const server = wsServer();
  const conn = await new WebSocketDialer({
    address: `ws://127.0.0.1:${server.port}/`,
  }).dial();
  try {
    await roundTrip(conn, pattern(1024 * 1024));
  } finally {
    conn.close();
    await server.close();
  }
});

Deno.test("WebSocketDialer ignores message boundaries when reading frames", async () => {
  const server = wsServer({ echo: false });
  const conn = await new WebSocketDialer({
    address: `ws://localhost:${server.port}/`,
  }).dial();
  try {
    const peer = await server.nextSocket();
    const a = encodeFrame(new Uint8Array([0xa1, 0x61, 0x01]));
    const b = encodeFrame(new Uint8Array([0xa0]));
    // Prefix and body apart (as the daemon sends), then one message with the
    // end of one frame and the start of the next, then the rest.
    peer.send(a.slice(0, 4));
    peer.send(a.slice(4));
    peer.send(Uint8Array.of(...a, ...b.slice(0, 2)));
    peer.send(b.slice(2));
    const decoder = new FrameDecoder();
    const frames: Uint8Array[] = [];
    const reader = conn.readable.getReader();
    while (frames.length < 3) {
      const { value, done } = await reader.read();
      assert.equal(done, false);
      frames.push(...decoder.push(value!));
    }
    assert.deepEqual(frames.map((f) => [...f]), [[0xa1, 0x61, 0x01], [
      0xa1,
      0x61,
      0x01,
    ], [0xa0]]);
  } finally {
    conn.close();
    await server.close();
  }
});

Deno.test("WebSocketDialer sends binary messages only", async () => {
  const server = wsServer({ echo: false });
  const conn = await new WebSocketDialer({
    address: `ws://127.0.0.1:${server.port}/`,
  }).dial();
  try {
    const peer = await server.nextSocket();
    const got = deferred<unknown>();
    peer.addEventListener("message", (event) => got.resolve(event.data), {
      once: true,
    });
    const writer = conn.writable.getWriter();
    await writer.write(new Uint8Array([0, 0, 0, 1, 0xa0]));
    const data = await got.promise;
    assert.ok(data instanceof ArrayBuffer);
    assert.deepEqual([...new Uint8Array(data)], [0, 0, 0, 1, 0xa0]);
    writer.releaseLock();
  } finally {
    conn.close();
    await server.close();
  }
});

Deno.test("WebSocket Conn.close() is idempotent and ends the readable", async () => {
  const server = wsServer();
  const conn = await new WebSocketDialer({
    address: `ws://127.0.0.1:${server.port}/`,
  }).dial();
  const reader = conn.readable.getReader();
  const writer = conn.writable.getWriter();
  const pending = reader.read();
  conn.close();
  conn.close();
  try {
    assert.deepEqual(await pending, { value: undefined, done: true });
    await assert.rejects(writer.write(new Uint8Array([1])), ConnectionError);
  } finally {
    await server.close();
  }
});

Deno.test("WebSocket Conn.readable ends when the daemon closes normally", async () => {
  const server = wsServer({ echo: false });
  const conn = await new WebSocketDialer({
    address: `ws://127.0.0.1:${server.port}/`,
  }).dial();
  try {
    const peer = await server.nextSocket();
    peer.send(new Uint8Array([1, 2]));
    peer.close(1000);
    const reader = conn.readable.getReader();
    assert.deepEqual([...await readBytes(reader, 2)], [1, 2]);
    assert.equal((await reader.read()).done, true);
  } finally {
    conn.close();
    await server.close();
  }
});

Deno.test("WebSocket Conn.readable fails on a text message", async () => {
  const server = wsServer({ echo: false });
  const conn = await new WebSocketDialer({
    address: `ws://127.0.0.1:${server.port}/`,
  }).dial();
  try {
    const peer = await server.nextSocket();
    peer.send("not bytes");
    await assert.rejects(conn.readable.getReader().read(), (err: unknown) => {
      assert.ok(err instanceof ProtocolError);
      assert.match(err.message, /received a text WebSocket message$/);
      return true;
    });
  } finally {
    conn.close();
    await server.close();
  }
});

Deno.test("WebSocketDialer.dial() rejects with signal.reason when aborted during the handshake", async () => {
  const release = deferred<void>();
  const server = wsServer({ beforeUpgrade: release.promise });
  const controller = new AbortController();
  const reason = new Error("too slow");
  const dialing = new WebSocketDialer({
    address: `ws://127.0.0.1:${server.port}/`,
  }).dial({
    signal: controller.signal,
  });
  setTimeout(() => controller.abort(reason), 20);
  try {
    await assert.rejects(dialing, (err) => err === reason);
  } finally {
    release.resolve();
    await server.close();
  }
});

Deno.test("WebSocketDialer.dial() rejects with signal.reason when aborted before dialling", async () => {
  const reason = new Error("stop");
  const dialer = new WebSocketDialer({ address: "ws://127.0.0.1:1/" });
  await assert.rejects(
    dialer.dial({ signal: AbortSignal.abort(reason) }),
    (e) => e === reason,
  );
});

Deno.test("WebSocketDialer.dial() rejects a refused connection with ConnectionError", async () => {
  const port = freePort();
  const dialer = new WebSocketDialer({ address: `ws://127.0.0.1:${port}/` });
  await assert.rejects(dialer.dial(), (err: unknown) => {
    assert.ok(err instanceof ConnectionError);
    assert.match(
      err.message,
      new RegExp(`^Cannot dial daemon at 'ws ws://127\\.0\\.0\\.1:${port}/': `),
    );
    return true;
  });
});

Deno.test("WebSocketDialer.dial() rejects a failed upgrade with ConnectionError", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response("no", { status: 404 }),
  );
  try {
    const dialer = new WebSocketDialer({
      address: `ws://127.0.0.1:${server.addr.port}/`,
    });
    await assert.rejects(dialer.dial(), ConnectionError);
  } finally {
    await server.shutdown();
  }
});

Deno.test("WebSocketDialer refuses plain ws:// to a non-loopback host", () => {
  assert.throws(
    () => new WebSocketDialer({ address: "ws://192.0.2.7:64331/" }),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.key, "ws.address");
      assert.match(err.message, /non-loopback host '192\.0\.2\.7'/);
      return true;
    },
  );
  // Allowed when asked for, and wss:// is always allowed; nothing is dialled here.
  new WebSocketDialer({ address: "ws://192.0.2.7:64331/", allowRemote: true });
  new WebSocketDialer({ address: "wss://daemon.example/" });
});

Deno.test("transport/websocket.ts imports no runtime module", async () => {
  const source = await Deno.readTextFile(
    new URL("../transport/websocket.ts", import.meta.url),
  );
  assert.doesNotMatch(source, /from "node:|import\("node:|\bDeno\./);
});
