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
const { ConnectionError, ThinClient } = await import(
  new URL("mod.js", BUNDLE).href
);
const { connect, TcpDialer, UnixDialer } = await import(
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
