// The core ThinClient behaviours, run over every transport: the caller gives
// a function that starts a fake daemon on that transport and a dialer from
// transport/ that reaches it (tests/client_transports_test.ts).
//
//   clientSuite("tcp", async (options) => {
//     const fake = await FakeDaemon.start({ ...options, transport: "tcp" });
//     return { fake, dialer: new TcpDialer({ address: fake.address }) };
//   });
import assert from "node:assert/strict";
import { ThinClient, type ThinClientOptions } from "../../lib/client.ts";
import type { Dialer } from "../../lib/conn.ts";
import { ClientClosedError } from "../../lib/errors.ts";
import type { FakeDaemon, FakeDaemonOptions } from "../../testing/mod.ts";
import {
  EventLog,
  filled,
  fromUtf8,
  receivedOf,
  rejectsWith,
  sleep,
  utf8,
  within,
} from "../_helpers.ts";

/** A fake daemon and a dialer (from transport/) that reaches it. */
export interface SuiteDaemon {
  /** The fake daemon; the suite closes it. */
  fake: FakeDaemon;
  /** The dialer under test. */
  dialer: Dialer;
}

/** Starts a fake daemon on one transport. */
export type StartDaemon = (options?: FakeDaemonOptions) => Promise<SuiteDaemon>;

/** Options of {@linkcode clientSuite}. */
export interface ClientSuiteOptions {
  /** Skip the whole suite (it is then reported as ignored). */
  ignore?: boolean;
}

/** Registers the core tests for one transport. */
export function clientSuite(
  name: string,
  startDaemon: StartDaemon,
  suiteOptions: ClientSuiteOptions = {},
): void {
  const test = (
    title: string,
    fn: (d: SuiteDaemon) => Promise<void>,
    options?: FakeDaemonOptions,
  ): void => {
    Deno.test({
      name: `ThinClient over ${name}: ${title}`,
      ignore: suiteOptions.ignore ?? false,
      fn: async () => {
        const d = await startDaemon(options);
        try {
          await fn(d);
        } finally {
          await d.fake.close();
        }
      },
    });
  };
  const connect = (
    d: SuiteDaemon,
    options: ThinClientOptions = {},
  ): Promise<ThinClient> =>
    ThinClient.connect(d.dialer, {
      reconnect: { initialDelay: 20, maxDelay: 200 },
      handshakeTimeout: 5000,
      ...options,
    });

  test("connect() completes the handshake", async (d) => {
    await using client = await connect(d);
    assert.equal(client.isDaemonReachable, true);
    assert.equal(client.isConnected, true);
    assert.equal(
      client.sphinxGeometry.userForwardPayloadLength,
      d.fake.sphinxGeometry.UserForwardPayloadLength,
    );
    assert.equal(
      client.pigeonholeGeometry.maxPlaintextPayloadLength,
      d.fake.pigeonholeGeometry.MaxPlaintextPayloadLength,
    );
    assert.equal(client.pkiDocument().epoch, BigInt(d.fake.pkiDocument!.epoch));
    assert.deepEqual(client.daemonInstanceToken, d.fake.instanceToken);
    const token = await d.fake.waitForRequest("session_token");
    assert.deepEqual(token.body["client_instance_token"], client.instanceToken);
  });

  test("blockingSendMessage() gets the echo reply", async (d) => {
    await using client = await connect(d);
    const echo = client.getService("echo");
    const reply = await client.blockingSendMessage(
      utf8("over the wire"),
      echo.destinationIdHash,
      echo.recipientQueueId,
      { signal: AbortSignal.timeout(5000) },
    );
    assert.equal(reply.length, client.sphinxGeometry.forwardPayloadLength);
    assert.equal(fromUtf8(reply.subarray(0, 13)), "over the wire");
  });

  test("a Pigeonhole box is written and read back", async (d) => {
    await using client = await connect(d);
    const kp = await client.newKeypair(filled(32, 1));
    const max = client.pigeonholeGeometry.maxPlaintextPayloadLength;
    const payload = Uint8Array.from({ length: max }, (_, i) => i % 256);
    const w = await client.encryptWrite(
      payload,
      kp.writeCap,
      kp.firstMessageIndex,
    );
    await client.startResendingEncryptedMessage({
      writeCap: kp.writeCap,
      ...w,
    });
    const r = await client.encryptRead(kp.readCap, kp.firstMessageIndex);
    const got = await client.startResendingEncryptedMessage({
      readCap: kp.readCap,
      messageBoxIndex: kp.firstMessageIndex,
      ...r,
    });
    assert.deepEqual(got.plaintext, payload);
    assert.ok(
      await client.getMessageBoxIndexCounter(w.nextMessageBoxIndex) > 2n ** 53n,
    );
  });

  test("abort of a waiting read rejects and cancels it in the daemon", async (d) => {
    await using client = await connect(d);
    const kp = await client.newKeypair(filled(32, 2));
    const env = await client.encryptRead(kp.readCap, kp.firstMessageIndex);
    const controller = new AbortController();
    const read = client.startResendingEncryptedMessage(
      { readCap: kp.readCap, messageBoxIndex: kp.firstMessageIndex, ...env },
      { signal: controller.signal },
    );
    await d.fake.waitForRequest("start_resending_encrypted_message");
    await sleep(10);
    const reason = new Error("aborted by the test");
    controller.abort(reason);
    await rejectsWith(read, reason);
    const cancel = await d.fake.waitForRequest(
      "cancel_resending_encrypted_message",
    );
    assert.deepEqual(cancel.body["envelope_hash"], env.envelopeHash);
  });

  test("close() sends thin_close, rejects pending calls and ends events", async (d) => {
    const client = await connect(d);
    const events = client.events();
    d.fake.script("get_directory_authorities", "none");
    const pending = client.getDirectoryAuthorities();
    await d.fake.waitForRequest("get_directory_authorities");
    await client.close();
    await client.close();
    await assert.rejects(pending, ClientClosedError);
    assert.deepEqual((await events.next()).value, {
      type: "state",
      state: "closed",
      previous: "connected",
    });
    assert.equal((await events.next()).done, true);
    await d.fake.waitForRequest("thin_close");
    assert.equal(d.fake.connectionCount, 0, "closed before close() resolved");
    assert.equal(receivedOf(d.fake, "thin_close").length, 1);
    assert.equal(d.fake.hasSession(client.instanceToken), false);
    assert.equal(await client.closed(), undefined);
  });

  test("a dropped connection is redialled and the session resumed", async (d) => {
    await using client = await connect(d);
    const log = new EventLog(client);
    d.fake.script("get_directory_authorities", "none", { times: 1 });
    const pending = client.getDirectoryAuthorities();
    await d.fake.waitForRequest("get_directory_authorities");
    d.fake.drop();
    assert.equal((await log.next("daemon_disconnected")).graceful, false);
    const back = await log.next("reconnected");
    assert.equal(back.resumed, true);
    assert.equal(back.instanceTokenChanged, false);
    assert.equal((await within(pending, 3000, "re-sent request")).length, 3);
  });

  test("a daemon restart is survived and a pending read replayed", async (d) => {
    await using client = await connect(d);
    const log = new EventLog(client);
    const kp = await client.newKeypair(filled(32, 3));
    const env = await client.encryptRead(kp.readCap, kp.firstMessageIndex);
    const read = client.startResendingEncryptedMessage({
      readCap: kp.readCap,
      messageBoxIndex: kp.firstMessageIndex,
      ...env,
    });
    await d.fake.waitForRequest("start_resending_encrypted_message");
    await d.fake.restart({ graceful: true });
    assert.equal((await log.next("daemon_disconnected")).graceful, true);
    const back = await log.next("reconnected");
    assert.equal(back.resumed, false);
    assert.equal(back.instanceTokenChanged, true);
    await d.fake.waitForRequest("start_resending_encrypted_message");
    d.fake.putBox(kp.writeCap.bytes, kp.firstMessageIndex.bytes, utf8("after"));
    assert.equal(
      fromUtf8((await within(read, 3000, "replayed read")).plaintext!),
      "after",
    );
  });

  test("detach() keeps the session for a client with the same instanceToken", async (d) => {
    const first = await connect(d);
    const appId = first.appId;
    await first.detach();
    // detach() resolves once the daemon has closed its side: kpclientd
    // unregisters the old connection right after that, and a resume that
    // came before it would be unregistered in its place.
    assert.equal(d.fake.connectionCount, 0);
    assert.equal(d.fake.hasSession(first.instanceToken), true);
    await using second = await connect(d, {
      instanceToken: first.instanceToken,
    });
    assert.deepEqual(second.appId, appId);
    assert.equal(second.resumed, true);
    assert.equal(receivedOf(d.fake, "thin_close").length, 0);
  });

  // A WebSocket server answers the closing handshake itself: stream sockets only.
  if (name !== "ws") {
    test(
      "detach() stops waiting after 2 s for a daemon that keeps the connection open",
      async (d) => {
        const client = await connect(d);
        const started = Date.now();
        await within(client.detach(), 5000, "detach()");
        assert.ok(Date.now() - started >= 1900, "waited for the daemon first");
        assert.equal(await client.closed(), undefined);
      },
      { faults: { ignoreClientEof: true } },
    );
  }

  test("frames split into tiny writes are reassembled", async (d) => {
    await using client = await connect(d);
    const kp = await client.newKeypair(filled(32, 4));
    assert.equal(kp.writeCap.bytes.length, 168);
    assert.equal(client.pkiDocument().epoch, BigInt(d.fake.pkiDocument!.epoch));
    assert.equal((await client.getDirectoryAuthorities()).length, 3);
  }, { faults: { splitWrites: true } });
}
