// Node >= 22 smoke test of the bundled library (run by tests/node/run.sh with
// `node --test`). The fake daemons run under Deno; their addresses come in
// the environment. Nothing here touches Deno: the transport module must pick
// its node:net implementation at run time.
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { describe, test } from "node:test";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

// The bundle's directory (deno bundle --code-splitting output).
const BUNDLE = process.env.THINCLIENT_BUNDLE_DIR === undefined
  ? new URL("../../.cache/node-smoke/", import.meta.url)
  : pathToFileURL(join(process.env.THINCLIENT_BUNDLE_DIR, "/"));
const {
  ConfigError,
  ConnectionError,
  encodeFrame,
  ProtocolError,
  ThinClient,
} = await import(new URL("mod.js", BUNDLE).href);
const { connect, loadConfig, TcpDialer, UnixDialer } = await import(
  new URL("transport/mod.js", BUNDLE).href
);

const TCP = required("FAKE_DAEMON_TCP");
const UNIX = required("FAKE_DAEMON_UNIX");
const PAYLOAD_LENGTH = Number(required("FAKE_DAEMON_PAYLOAD_LENGTH"));
const TIMEOUT_MS = 10_000;

function required(name) {
  const value = process.env[name];
  if (value === undefined || value === "") {
    throw new Error(`Cannot run Node smoke test: ${name} is not set`);
  }
  return value;
}

function options() {
  return { reconnect: false, signal: AbortSignal.timeout(TIMEOUT_MS) };
}

/** Sends `text` to the echo service and checks the (zero-padded) reply. */
async function echoRoundTrip(client, text) {
  const echo = client.getService("echo");
  const payload = new TextEncoder().encode(text);
  const reply = await client.blockingSendMessage(
    payload,
    echo.destinationIdHash,
    echo.recipientQueueId,
    { signal: AbortSignal.timeout(TIMEOUT_MS) },
  );
  assert.ok(reply instanceof Uint8Array);
  assert.ok(reply.length >= payload.length);
  assert.deepEqual(reply.subarray(0, payload.length), payload);
  assert.ok(reply.subarray(payload.length).every((b) => b === 0));
}

describe("Node smoke test", () => {
  test("runs on Node 22 or newer, without Deno", () => {
    assert.equal(typeof globalThis.Deno, "undefined");
    assert.ok(Number(process.versions.node.split(".")[0]) >= 22);
  });

  test("TcpDialer on Node completes the handshake and reports the geometry", async () => {
    const client = await ThinClient.connect(
      new TcpDialer({ address: TCP }),
      options(),
    );
    try {
      assert.equal(client.isClosed, false);
      assert.equal(
        client.sphinxGeometry.userForwardPayloadLength,
        PAYLOAD_LENGTH,
      );
      assert.equal(client.pkiDocument().epoch > 0n, true);
      const echo = client.getService("echo");
      assert.equal(echo.endpoint, "+echo");
      assert.equal(echo.destinationIdHash.length, 32);
    } finally {
      await client.close();
    }
    assert.equal(client.isClosed, true);
  });

  test("ThinClient.blockingSendMessage() over TCP on Node echoes the payload", async () => {
    const client = await ThinClient.connect(
      new TcpDialer({ address: TCP }),
      options(),
    );
    try {
      await echoRoundTrip(client, "hello from node over tcp");
    } finally {
      await client.close();
    }
  });

  test("UnixDialer on Node completes the handshake and echoes the payload", async () => {
    const client = await ThinClient.connect(
      new UnixDialer({ address: UNIX }),
      options(),
    );
    try {
      assert.equal(
        client.sphinxGeometry.userForwardPayloadLength,
        PAYLOAD_LENGTH,
      );
      await echoRoundTrip(client, "hello from node over unix");
    } finally {
      await client.close();
    }
  });

  test("connect() on Node dials a dial config and ThinClient.close() is idempotent", async () => {
    const client = await connect({ tcp: { address: TCP } }, options());
    assert.equal(
      client.sphinxGeometry.userForwardPayloadLength,
      PAYLOAD_LENGTH,
    );
    await client.close();
    await client.close();
    assert.equal(client.isClosed, true);
  });

  test("TcpDialer on Node rejects with ConnectionError when nothing listens", async () => {
    const port = await freePort();
    await assert.rejects(
      new TcpDialer({ address: `127.0.0.1:${port}` }).dial({
        signal: AbortSignal.timeout(TIMEOUT_MS),
      }),
      (err) => {
        assert.ok(err instanceof ConnectionError, String(err));
        assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
        return true;
      },
    );
  });
});

/**
 * A little CBOR writer for hostile daemons: maps (own keys, `__proto__`
 * included), text, byte strings, small unsigned integers, booleans, null.
 */
function cbor(value) {
  const out = [];
  const head = (major, n) => {
    if (n < 24) out.push((major << 5) | n);
    else if (n < 256) out.push((major << 5) | 24, n);
    else if (n < 65536) out.push((major << 5) | 25, n >> 8, n & 255);
    else {
      out.push((major << 5) | 26, n >>> 24, (n >> 16) & 255, (n >> 8) & 255);
      out.push(n & 255);
    }
  };
  const write = (v) => {
    if (v === null) out.push(0xf6);
    else if (v === true) out.push(0xf5);
    else if (v === false) out.push(0xf4);
    else if (typeof v === "number") head(0, v);
    else if (typeof v === "string") {
      const b = new TextEncoder().encode(v);
      head(3, b.length);
      out.push(...b);
    } else if (v instanceof Uint8Array) {
      head(2, v.length);
      out.push(...v);
    } else {
      const keys = Object.getOwnPropertyNames(v);
      head(5, keys.length);
      for (const k of keys) {
        write(k);
        write(v[k]);
      }
    }
  };
  write(value);
  return new Uint8Array(out);
}

/** An object whose own key "__proto__" holds `value` (not its prototype). */
function withProto(value, rest = {}) {
  const o = { ...rest };
  Object.defineProperty(o, "__proto__", { value, enumerable: true });
  return o;
}

/** Frames #1 and #2 and the token reply, then `then(socket)`. */
function handshake(socket, then) {
  socket.write(encodeFrame(cbor({
    connection_status_event: {
      is_connected: true,
      instance_token: new Uint8Array(16).fill(1),
      sphinx_geometry: {},
      pigeonhole_geometry: {},
    },
  })));
  socket.write(
    encodeFrame(cbor({ new_pki_document_event: { payload: null } })),
  );
  socket.once("data", () => {
    socket.write(encodeFrame(cbor({
      session_token_reply: { app_id: new Uint8Array(16).fill(2) },
    })));
    setTimeout(() => then(socket), 20);
  });
}

/** A hostile daemon on 127.0.0.1; closed when `fn` settles. */
async function hostile(onConnection, fn) {
  const server = createServer(onConnection);
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    return await fn(
      new TcpDialer({
        address: `127.0.0.1:${server.address().port}`,
      }),
    );
  } finally {
    server.close();
  }
}

describe("Node smoke test: a hostile daemon", () => {
  test("__proto__ keys in daemon maps are plain keys: typed error, no pollution", async () => {
    const envelope = withProto({
      connection_status_event: { is_connected: 1 },
    });
    await hostile(
      (s) => s.write(encodeFrame(cbor(envelope))),
      (dialer) =>
        assert.rejects(ThinClient.connect(dialer, options()), (err) => {
          assert.ok(err instanceof ProtocolError, String(err));
          assert.match(err.message, /first frame is 'unknown'/);
          return true;
        }),
    );
    const body = withProto({ x: 1 }, { app_id: new Uint8Array(16) });
    await hostile(
      (s) =>
        handshake(s, (socket) => {
          socket.write(encodeFrame(cbor({ session_token_reply: body })));
          socket.write(encodeFrame(new Uint8Array([0xff])));
        }),
      async (dialer) => {
        const client = await ThinClient.connect(dialer, options());
        const err = await client.closed();
        assert.ok(err instanceof ConnectionError, String(err));
        assert.ok(err.cause instanceof ProtocolError);
      },
    );
    assert.equal(({}).connection_status_event, undefined);
    assert.equal(({}).x, undefined);
  });

  test("a reset from the daemon is a ConnectionError with its code, never an uncaught error", async () => {
    const uncaught = [];
    const record = (e) => uncaught.push(e);
    process.on("uncaughtException", record);
    try {
      await hostile(
        (s) => s.resetAndDestroy(),
        (dialer) =>
          assert.rejects(ThinClient.connect(dialer, options()), (err) => {
            assert.ok(err instanceof ConnectionError, String(err));
            assert.match(err.message, /Connection reset by peer/);
            assert.equal(err.cause?.code, "ECONNRESET");
            return true;
          }),
      );
      await hostile(
        (s) => handshake(s, (socket) => socket.resetAndDestroy()),
        async (dialer) => {
          const client = await ThinClient.connect(dialer, options());
          const err = await client.closed();
          assert.ok(err instanceof ConnectionError, String(err));
          assert.match(err.cause?.message ?? "", /Connection reset by peer/);
          await client.close();
        },
      );
      assert.deepEqual(uncaught, []);
    } finally {
      process.off("uncaughtException", record);
    }
  });

  test("a 40 MiB frame of empty maps is refused without materialising it", async () => {
    const n = 40 * 1024 * 1024 - 5;
    const body = new Uint8Array(5 + n).fill(0xa0);
    body.set([0x9a, n >>> 24, (n >> 16) & 255, (n >> 8) & 255, n & 255]);
    const rss = process.memoryUsage().rss;
    await hostile(
      (s) => handshake(s, (socket) => socket.write(encodeFrame(body))),
      async (dialer) => {
        const client = await ThinClient.connect(dialer, options());
        const err = await client.closed();
        assert.ok(err instanceof ConnectionError, String(err));
        assert.match(
          err.cause?.message ?? "",
          /more than 65536 array elements/,
        );
      },
    );
    const extra = process.memoryUsage().rss - rss;
    assert.ok(extra < 400 * 1024 * 1024, `RSS grew by ${extra} bytes`);
  });

  test("loadConfig() on Node reads at most 64 KiB of a file", async () => {
    await assert.rejects(loadConfig("/dev/zero"), (err) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.match(err.message, /larger than 65536 bytes/);
      return true;
    });
  });
});

/** A TCP port that was free a moment ago. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}
