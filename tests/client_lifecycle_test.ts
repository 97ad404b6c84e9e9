// ThinClient against the fake daemon: handshake, close/detach, abort of every
// waiting call, and a connection that breaks mid-stream.
import assert from "node:assert/strict";
import { ThinClient } from "../lib/client.ts";
import { deferred } from "../lib/_async.ts";
import {
  CancelledError,
  ClientClosedError,
  ConnectionError,
  ProtocolError,
  ThinClientError,
} from "../lib/errors.ts";
import { blake2b256 } from "../lib/hash.ts";
import type { FakeRequestKind, ScriptAction } from "../testing/mod.ts";
import {
  connectTo,
  EventLog,
  filled,
  fromUtf8,
  ManualDaemon,
  queryIdOf,
  receivedOf,
  rejectsWith,
  sleep,
  startFake,
  stateOf,
  until,
  utf8,
  within,
} from "./_helpers.ts";

// ---------------------------------------------------------------------------
// Handshake

Deno.test("ThinClient.connect() resolves only after status, document and the session token reply", async () => {
  const daemon = new ManualDaemon();
  try {
    const connecting = ThinClient.connect(daemon.dialer, { reconnect: false });
    await until(() => daemon.dials === 1, 1000, "the dial");
    await daemon.sendStatus();
    await sleep(5);
    assert.equal(daemon.requests.length, 0, "no token before the document");
    assert.equal(await stateOf(connecting), "pending");
    await daemon.sendDocument();
    await daemon.waitForRequests(1);
    const [variant, body] = daemon.requests[0]!;
    assert.equal(variant, "session_token");
    assert.equal(await stateOf(connecting), "pending", "waits for the reply");
    await daemon.send("session_token_reply", {
      "app_id": filled(16, 9),
      "resumed": false,
    });
    const client = await within(connecting, 1000, "connect");
    assert.deepEqual(body["client_instance_token"], client.instanceToken);
    assert.deepEqual(client.appId, filled(16, 9));
    assert.deepEqual(client.daemonInstanceToken, filled(16, 7));
    await client.detach();
  } finally {
    await daemon.close();
  }
});

Deno.test("ThinClient geometry and state getters are valid right after connect()", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  assert.equal(
    client.sphinxGeometry.userForwardPayloadLength,
    fake.sphinxGeometry.UserForwardPayloadLength,
  );
  assert.equal(client.sphinxGeometry.nrHops, fake.sphinxGeometry.NrHops);
  assert.equal(
    client.pigeonholeGeometry.maxPlaintextPayloadLength,
    fake.pigeonholeGeometry.MaxPlaintextPayloadLength,
  );
  assert.equal(
    client.pigeonholeGeometry.nikeName,
    fake.pigeonholeGeometry.NIKEName,
  );
  assert.equal(client.pkiDocument().epoch, BigInt(fake.pkiDocument!.epoch));
  assert.deepEqual(client.daemonInstanceToken, fake.instanceToken);
  assert.equal(client.isConnected, true);
  assert.equal(client.isDaemonReachable, true);
  assert.equal(client.isClosed, false);
  assert.equal(client.appId.length, 16);
  const token = await fake.waitForRequest("session_token");
  assert.deepEqual(token.body["client_instance_token"], client.instanceToken);
  assert.equal(client.instanceToken.length, 16);
  assert.ok(client.instanceToken.some((b) => b !== 0), "token is not zero");
});

Deno.test("ThinClient.connect() waits for a delayed session token reply", async () => {
  await using fake = await startFake();
  const gate = deferred<void>();
  fake.script("session_token", async (): Promise<ScriptAction> => {
    await gate.promise;
    return "default";
  });
  const connecting = connectTo(fake);
  await fake.waitForRequest("session_token");
  assert.equal(await stateOf(connecting), "pending");
  gate.resolve();
  await using client = await within(connecting, 1000, "connect");
  assert.equal(client.isDaemonReachable, true);
});

Deno.test("ThinClient.connect() tolerates status and document events racing the token reply", async () => {
  await using fake = await startFake({
    faults: { raceEventBeforeTokenReply: true },
  });
  await using client = await connectTo(fake);
  assert.equal(client.pkiDocument().epoch, BigInt(fake.pkiDocument!.epoch));
  assert.equal(client.isConnected, true);
  assert.equal(
    await client.getMessageBoxIndexCounter(
      (await client.newKeypair(filled(32, 1))).firstMessageIndex,
    ) > 0n,
    true,
  );
});

Deno.test("ThinClient.connect() accepts a null PKI payload in frame #2", async () => {
  await using fake = await startFake({ faults: { pkiPayloadNull: true } });
  await using client = await connectTo(fake);
  assert.throws(() => client.pkiDocument(), ThinClientError);
  assert.deepEqual(client.getServices("echo"), []);
  assert.throws(() => client.getService("echo"), ThinClientError);
  const log = new EventLog(client);
  fake.setPkiDocument(fake.pkiDocument);
  const ev = await log.next("pki_document");
  assert.equal(ev.document.epoch, BigInt(fake.pkiDocument!.epoch));
  assert.equal(client.getServices("echo").length, 1);
});

Deno.test("ThinClient.connect() tolerates repeated status events before the document", async () => {
  const daemon = new ManualDaemon();
  try {
    const connecting = ThinClient.connect(daemon.dialer, { reconnect: false });
    await until(() => daemon.dials === 1, 1000, "the dial");
    await daemon.sendStatus(false);
    await daemon.sendStatus(true, filled(16, 8));
    await daemon.sendDocument();
    await daemon.waitForRequests(1);
    await daemon.send("connection_status_event", {
      "is_connected": false,
      "err": null,
      "instance_token": filled(16, 8),
      "sphinx_geometry": null,
      "pigeonhole_geometry": null,
    });
    await daemon.send("session_token_reply", {
      "app_id": filled(16, 1),
      "resumed": false,
    });
    const client = await within(connecting, 1000, "connect");
    assert.equal(client.isConnected, false, "the last status wins");
    assert.deepEqual(client.daemonInstanceToken, filled(16, 8));
    assert.equal(client.sphinxGeometry.userForwardPayloadLength, 2000);
    await client.detach();
  } finally {
    await daemon.close();
  }
});

Deno.test("ThinClient.connect() fails with a ConnectionError when the handshake times out", async () => {
  await using fake = await startFake({
    faults: { delayBeforeHandshakeMs: 1000 },
  });
  const started = Date.now();
  await assert.rejects(
    connectTo(fake, { handshakeTimeout: 50 }),
    (err: unknown) => {
      assert.ok(err instanceof ConnectionError);
      assert.match(err.message, /no answer within 50 ms/);
      return true;
    },
  );
  assert.ok(Date.now() - started < 900, "gave up at the timeout");
});

Deno.test("ThinClient.connect() handshake timeout also bounds a dial that never completes", async () => {
  let signal: AbortSignal | undefined;
  const dialer = {
    address: "nowhere",
    dial: (options?: { signal?: AbortSignal }) =>
      new Promise<never>((_, reject) => {
        signal = options?.signal;
        signal?.addEventListener("abort", () => reject(signal!.reason), {
          once: true,
        });
      }),
  };
  await assert.rejects(
    within(
      ThinClient.connect(dialer, { handshakeTimeout: 30 }),
      1000,
      "connect",
    ),
    (err: unknown) => {
      assert.ok(err instanceof ConnectionError, String(err));
      assert.match(err.message, /'nowhere': no answer within 30 ms/);
      return true;
    },
  );
  assert.equal(
    signal?.aborted,
    true,
    "the dial was given a signal and aborted",
  );
});

Deno.test("ThinClient.connect() waits for a daemon that is slow to send frame #1", async () => {
  await using fake = await startFake({
    faults: { delayBeforeHandshakeMs: 60 },
  });
  await using client = await connectTo(fake, { handshakeTimeout: 2000 });
  assert.equal(client.isDaemonReachable, true);
});

Deno.test("ThinClient.connect() fails with a ConnectionError when the daemon shuts down first", async () => {
  await using fake = await startFake({
    faults: { shutdownBeforeHandshake: true },
  });
  await assert.rejects(connectTo(fake), (err: unknown) => {
    assert.ok(err instanceof ConnectionError);
    assert.match(err.message, /shutting down/);
    return true;
  });
  assert.equal(receivedOf(fake, "session_token").length, 0);
});

Deno.test("ThinClient.connect() fails with a ProtocolError on a malformed first frame", async () => {
  await using fake = await startFake({
    faults: { delayBeforeHandshakeMs: 2000 },
  });
  const connecting = connectTo(fake);
  await fake.waitForConnections(1);
  fake.sendMalformed();
  await assert.rejects(within(connecting, 1000, "connect"), ProtocolError);
  assert.equal(receivedOf(fake, "session_token").length, 0);
});

Deno.test("ThinClient.connect() fails with a ProtocolError on a wrong first frame or missing geometry", async () => {
  for (
    const [variant, body, pattern] of [
      [
        "session_token_reply",
        { "app_id": filled(16), "resumed": false },
        /first frame is 'session_token_reply'/,
      ],
      ["connection_status_event", {
        "is_connected": true,
        "err": null,
        "instance_token": filled(16, 1),
        "sphinx_geometry": null,
        "pigeonhole_geometry": null,
      }, /lacks a geometry/],
    ] as const
  ) {
    const daemon = new ManualDaemon();
    try {
      const connecting = ThinClient.connect(daemon.dialer);
      await until(() => daemon.dials === 1, 1000, "the dial");
      await daemon.send(variant, body);
      await assert.rejects(
        within(connecting, 1000, "connect"),
        (err: unknown) => {
          assert.ok(err instanceof ProtocolError, String(err));
          assert.match(err.message, pattern);
          return true;
        },
      );
      assert.equal(daemon.requests.length, 0);
    } finally {
      await daemon.close();
    }
  }
});

Deno.test("ThinClient.connect() rejects with the signal's reason when aborted", async () => {
  await using fake = await startFake({
    faults: { delayBeforeHandshakeMs: 2000 },
  });
  const controller = new AbortController();
  const connecting = connectTo(fake, { signal: controller.signal });
  await fake.waitForConnections(1);
  const reason = new Error("stop connecting");
  controller.abort(reason);
  await rejectsWith(within(connecting, 1000, "connect"), reason);

  const already = AbortSignal.abort(new Error("already"));
  await rejectsWith(connectTo(fake, { signal: already }), already.reason);
});

Deno.test("ThinClient.connect() enforces maxFrameSize on the daemon's frames", async () => {
  await using fake = await startFake();
  await assert.rejects(
    connectTo(fake, { maxFrameSize: 100 }),
    (err: unknown) => {
      assert.ok(err instanceof ProtocolError, String(err));
      assert.match(err.message, /exceeds maximum 100/);
      return true;
    },
  );
  await using client = await connectTo(fake, { maxFrameSize: 1 << 20 });
  assert.equal(client.isDaemonReachable, true);
});

Deno.test("ThinClient.connect() rejects a bad instanceToken with RangeError", async () => {
  await using fake = await startFake();
  await assert.rejects(
    connectTo(fake, { instanceToken: filled(15, 1) }),
    RangeError,
  );
  await assert.rejects(
    connectTo(fake, { instanceToken: filled(16, 0) }),
    RangeError,
  );
  assert.equal(fake.connectionCount, 0);
});

Deno.test("ThinClient.connect() fails with a ConnectionError when nothing listens", async () => {
  await using fake = await startFake();
  await fake.setAccepting(false);
  await assert.rejects(connectTo(fake), ConnectionError);
});

// ---------------------------------------------------------------------------
// Close, detach, dispose

Deno.test("ThinClient.close() rejects pending calls with ClientClosedError", async () => {
  await using fake = await startFake();
  const client = await connectTo(fake);
  const kp = await client.newKeypair(filled(32, 3));
  fake.script("get_directory_authorities", "none");
  fake.script("send_message", "none");
  const authorities = client.getDirectoryAuthorities();
  const echo = client.getService("echo");
  const blocking = client.blockingSendMessage(
    utf8("x"),
    echo.destinationIdHash,
    echo.recipientQueueId,
  );
  const env = await client.encryptRead(kp.readCap, kp.firstMessageIndex);
  const read = client.startResendingEncryptedMessage({
    readCap: kp.readCap,
    messageBoxIndex: kp.firstMessageIndex,
    ...env,
  });
  await fake.waitForRequest("get_directory_authorities");
  await fake.waitForRequest("send_message");
  await fake.waitForRequest("start_resending_encrypted_message");
  await client.close();
  await assert.rejects(authorities, ClientClosedError);
  await assert.rejects(blocking, ClientClosedError);
  await assert.rejects(read, ClientClosedError);
  await assert.rejects(client.newKeypair(), ClientClosedError);
  await assert.rejects(client.getDirectoryAuthorities(), ClientClosedError);
  assert.equal(client.isClosed, true);
  assert.equal(client.isDaemonReachable, false);
});

Deno.test("ThinClient.close() is idempotent", async () => {
  await using fake = await startFake();
  const client = await connectTo(fake);
  const first = client.close();
  const second = client.close();
  await Promise.all([first, second]);
  await client.close();
  await client[Symbol.asyncDispose]();
  await client.detach();
  await fake.waitForConnections(0);
  assert.equal(receivedOf(fake, "thin_close").length, 1);
  assert.equal(await client.closed(), undefined);
});

Deno.test("ThinClient.close() sends thin_close and the daemon forgets the session", async () => {
  await using fake = await startFake();
  const client = await connectTo(fake);
  const token = client.instanceToken;
  assert.equal(fake.hasSession(token), true);
  await client.close();
  await fake.waitForRequest("thin_close");
  await fake.waitForConnections(0);
  assert.equal(fake.hasSession(token), false);
});

Deno.test("ThinClient.detach() closes without thin_close and keeps the daemon session", async () => {
  await using fake = await startFake();
  const client = await connectTo(fake);
  fake.script("get_directory_authorities", "none");
  const pending = client.getDirectoryAuthorities();
  await fake.waitForRequest("get_directory_authorities");
  await client.detach();
  await assert.rejects(pending, ClientClosedError);
  await fake.waitForConnections(0);
  assert.equal(receivedOf(fake, "thin_close").length, 0);
  assert.equal(fake.hasSession(client.instanceToken), true);
  assert.equal(client.isClosed, true);
  assert.equal(await client.closed(), undefined);
});

Deno.test("ThinClient.events() iterators end on close and closed() resolves", async () => {
  await using fake = await startFake();
  const client = await connectTo(fake);
  const a = client.events();
  const b = client.events();
  const waiting = a.next();
  const closed = client.closed();
  assert.equal(await stateOf(closed), "pending");
  await client.close();
  // The last event says so; then the iterators end.
  const closing = { type: "state", state: "closed", previous: "connected" };
  assert.deepEqual((await within(waiting, 1000, "state")).value, closing);
  assert.equal((await a.next()).done, true);
  assert.deepEqual((await b.next()).value, closing);
  assert.equal((await b.next()).done, true);
  assert.equal((await client.events().next()).done, true, "late subscriber");
  assert.equal(await closed, undefined);
});

Deno.test("ThinClient supports await using", async () => {
  await using fake = await startFake();
  let client: ThinClient | null = null;
  {
    await using c = await connectTo(fake);
    client = c;
    assert.equal(c.isClosed, false);
  }
  assert.equal(client.isClosed, true);
  await fake.waitForRequest("thin_close");
});

// ---------------------------------------------------------------------------
// Abort of every waiting call

Deno.test("ThinClient request methods reject with the signal's reason when aborted", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const kp = await client.newKeypair(filled(32, 4));
  const minted = await client.voucherMint(kp.writeCap, "alice");
  const echo = client.getService("echo");
  const calls: [FakeRequestKind, (signal: AbortSignal) => Promise<unknown>][] =
    [
      ["new_keypair", (signal) => client.newKeypair(filled(32, 5), { signal })],
      [
        "encrypt_read",
        (signal) =>
          client.encryptRead(kp.readCap, kp.firstMessageIndex, { signal }),
      ],
      [
        "encrypt_write",
        (signal) =>
          client.encryptWrite(utf8("w"), kp.writeCap, kp.firstMessageIndex, {
            signal,
          }),
      ],
      [
        "next_message_box_index",
        (signal) =>
          client.nextMessageBoxIndex(kp.firstMessageIndex, { signal }),
      ],
      [
        "get_message_box_index_counter",
        (signal) =>
          client.getMessageBoxIndexCounter(kp.firstMessageIndex, { signal }),
      ],
      [
        "get_pki_document",
        (signal) => client.getPkiDocumentRaw(0n, { signal }),
      ],
      [
        "get_directory_authorities",
        (signal) => client.getDirectoryAuthorities({ signal }),
      ],
      [
        "create_courier_envelopes_from_payload",
        (signal) =>
          client.createCourierEnvelopesFromPayload(
            utf8("p"),
            kp.writeCap,
            kp.firstMessageIndex,
            true,
            true,
            { signal },
          ),
      ],
      [
        "create_courier_envelopes_from_multi_payload",
        (signal) =>
          client.createCourierEnvelopesFromMultiPayload(
            [{
              payload: utf8("p"),
              writeCap: kp.writeCap,
              startIndex: kp.firstMessageIndex,
            }],
            true,
            true,
            null,
            { signal },
          ),
      ],
      [
        "create_courier_envelopes_from_tombstone_range",
        (signal) =>
          client.createCourierEnvelopesFromTombstoneRange(
            kp.writeCap,
            kp.firstMessageIndex,
            2,
            true,
            true,
            null,
            { signal },
          ),
      ],
      [
        "voucher_mint",
        (signal) => client.voucherMint(kp.writeCap, "bob", { signal }),
      ],
      [
        "voucher_derive_stream",
        (signal) => client.voucherDeriveStream(minted.voucher, { signal }),
      ],
      [
        "voucher_induct",
        (signal) =>
          client.voucherInduct(
            minted.voucher,
            minted.voucherPayload,
            utf8("r"),
            {
              signal,
            },
          ),
      ],
      ["voucher_open", (signal) =>
        client.voucherOpen(
          minted.voucherSecretKey,
          utf8("sealed"),
          kp.writeCap,
          { signal },
        )],
      [
        "cancel_resending_encrypted_message",
        (signal) =>
          client.cancelResendingEncryptedMessage(filled(32, 1), { signal }),
      ],
      [
        "cancel_resending_copy_command",
        (signal) => client.cancelResendingCopyCommand(kp.writeCap, { signal }),
      ],
      ["send_message", (signal) =>
        client.blockingSendMessage(
          utf8("ping"),
          echo.destinationIdHash,
          echo.recipientQueueId,
          { signal },
        )],
    ];
  for (const [kind, call] of calls) {
    fake.script(kind, "none", { times: 1 });
    const controller = new AbortController();
    const pending = call(controller.signal);
    await fake.waitForRequest(kind);
    assert.equal(await stateOf(pending), "pending", kind);
    const reason = new Error(`abort ${kind}`);
    controller.abort(reason);
    await rejectsWith(within(pending, 1000, kind), reason);
  }
  // An already aborted signal rejects at once and sends nothing.
  const before = fake.received.length;
  const aborted = AbortSignal.abort(new Error("early"));
  await rejectsWith(
    client.getDirectoryAuthorities({ signal: aborted }),
    aborted.reason,
  );
  await rejectsWith(
    client.blockingSendMessage(
      utf8("x"),
      echo.destinationIdHash,
      echo.recipientQueueId,
      { signal: aborted },
    ),
    aborted.reason,
  );
  await rejectsWith(
    client.newKeypair(undefined, { signal: aborted }),
    aborted.reason,
  );
  assert.equal(fake.received.length, before);
  // The client still works and late replies of aborted queries were ignored.
  assert.equal((await client.getDirectoryAuthorities()).length, 3);
});

Deno.test("ThinClient aborted call ignores the reply that arrives later", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const gate = deferred<void>();
  fake.script("get_directory_authorities", async (): Promise<ScriptAction> => {
    await gate.promise;
    return "default";
  }, { times: 1 });
  const controller = new AbortController();
  const first = client.getDirectoryAuthorities({ signal: controller.signal });
  await fake.waitForRequest("get_directory_authorities");
  controller.abort(new Error("gone"));
  await assert.rejects(first, /gone/);
  const second = client.getDirectoryAuthorities();
  gate.resolve();
  assert.equal((await within(second, 1000, "second call")).length, 3);
});

Deno.test("ThinClient calls sharing a signal leave it when they settle; the rest abort together", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const controller = new AbortController();
  const signal = controller.signal;
  const done = await client.getDirectoryAuthorities({ signal });
  const gate = deferred<void>();
  fake.script("get_directory_authorities", async (): Promise<ScriptAction> => {
    await gate.promise;
    return "default";
  }, { times: 1 });
  // The fake reads no further while the first one waits; all three are
  // pending in the client.
  const first = client.getDirectoryAuthorities({ signal });
  const second = client.getDirectoryAuthorities({ signal });
  const other = new AbortController();
  const third = client.getDirectoryAuthorities({ signal: other.signal });
  await until(() => receivedOf(fake, "get_directory_authorities").length === 2);
  // Aborting another signal touches only its own call.
  other.abort(new Error("other"));
  await assert.rejects(third, /other/);
  const reason = new Error("both");
  controller.abort(reason);
  await rejectsWith(first, reason);
  await rejectsWith(second, reason);
  assert.equal(done.length, 3);
  gate.resolve();
  assert.equal((await client.getDirectoryAuthorities()).length, 3);
});

Deno.test("ThinClient.startResendingEncryptedMessage() abort sends the cancel with the envelope hash", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const kp = await client.newKeypair(filled(32, 6));
  const env = await client.encryptRead(kp.readCap, kp.firstMessageIndex);
  const controller = new AbortController();
  const read = client.startResendingEncryptedMessage(
    { readCap: kp.readCap, messageBoxIndex: kp.firstMessageIndex, ...env },
    { signal: controller.signal },
  );
  await fake.waitForRequest("start_resending_encrypted_message");
  await sleep(10); // let the fake dispatch it from its mixnet queue
  const reason = new Error("user cancelled");
  controller.abort(reason);
  await rejectsWith(read, reason);
  const cancel = await fake.waitForRequest(
    "cancel_resending_encrypted_message",
  );
  assert.deepEqual(cancel.body["envelope_hash"], env.envelopeHash);
  // The operation is gone: a later write completes nothing, and the client keeps working.
  const w = await client.encryptWrite(
    utf8("after"),
    kp.writeCap,
    kp.firstMessageIndex,
  );
  await client.startResendingEncryptedMessage({ writeCap: kp.writeCap, ...w });
  assert.equal(
    receivedOf(fake, "cancel_resending_encrypted_message").length,
    1,
  );
});

Deno.test("ThinClient.startResendingCopyCommand() abort sends the cancel with BLAKE2b-256 of the cap", async () => {
  await using fake = await startFake({ copyDelayMs: 5000 });
  await using client = await connectTo(fake);
  const temp = await client.newKeypair(filled(32, 7));
  const controller = new AbortController();
  const copy = client.startResendingCopyCommand(temp.writeCap, {
    signal: controller.signal,
  });
  await fake.waitForRequest("start_resending_copy_command");
  await sleep(10);
  const reason = new Error("stop copy");
  controller.abort(reason);
  await rejectsWith(copy, reason);
  const cancel = await fake.waitForRequest("cancel_resending_copy_command");
  assert.deepEqual(
    cancel.body["write_cap_hash"],
    blake2b256(temp.writeCap.bytes),
  );
  assert.deepEqual(cancel.body["write_cap_hash"], temp.writeCap.hash());
});

Deno.test("ThinClient.cancelResendingEncryptedMessage() handles the daemon's double reply", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const kp = await client.newKeypair(filled(32, 8));
  const env = await client.encryptRead(kp.readCap, kp.firstMessageIndex);
  const read = client.startResendingEncryptedMessage({
    readCap: kp.readCap,
    messageBoxIndex: kp.firstMessageIndex,
    ...env,
  });
  await fake.waitForRequest("start_resending_encrypted_message");
  await sleep(10);
  await within(
    client.cancelResendingEncryptedMessage(env.envelopeHash),
    1000,
    "cancel",
  );
  await assert.rejects(read, (err: unknown) => {
    assert.ok(err instanceof CancelledError);
    assert.equal(err.code, 24);
    return true;
  });
  // Nothing running: the cancel still succeeds (single reply).
  await client.cancelResendingEncryptedMessage(env.envelopeHash);
  assert.equal(
    receivedOf(fake, "cancel_resending_encrypted_message").length,
    2,
  );
});

Deno.test("ThinClient.cancelResendingCopyCommand() makes the running copy reject with CancelledError", async () => {
  await using fake = await startFake({ copyDelayMs: 5000 });
  await using client = await connectTo(fake);
  const temp = await client.newKeypair(filled(32, 9));
  const copy = client.startResendingCopyCommand(temp.writeCap);
  await fake.waitForRequest("start_resending_copy_command");
  await sleep(10);
  await client.cancelResendingCopyCommand(temp.writeCap);
  await assert.rejects(copy, CancelledError);
  const cancel = await fake.waitForRequest("cancel_resending_copy_command");
  assert.deepEqual(cancel.body["write_cap_hash"], temp.writeCap.hash());
});

Deno.test("ThinClient retries a cancel that overtook its still-queued start", async () => {
  await using fake = await startFake({ mixnetDelayMs: 300 });
  await using client = await connectTo(fake);
  const kp = await client.newKeypair(filled(32, 10));
  const env = await client.encryptRead(kp.readCap, kp.firstMessageIndex);
  const controller = new AbortController();
  const read = client.startResendingEncryptedMessage(
    { readCap: kp.readCap, messageBoxIndex: kp.firstMessageIndex, ...env },
    { signal: controller.signal },
  );
  const start = await fake.waitForRequest("start_resending_encrypted_message");
  controller.abort(new Error("too late"));
  await assert.rejects(read, /too late/);
  // The first cancel reaches the daemon while the start is still queued
  // (nothing to cancel); the client must try again once the start runs.
  const first = await fake.waitForRequest(
    "cancel_resending_encrypted_message",
  );
  const second = await fake.waitForRequest(
    "cancel_resending_encrypted_message",
    { timeoutMs: 10_000 },
  );
  for (const c of [first, second]) {
    assert.deepEqual(c.body["envelope_hash"], env.envelopeHash);
  }
  assert.notDeepEqual(queryIdOf(first), queryIdOf(second));
  assert.notDeepEqual(queryIdOf(first), queryIdOf(start));
  // The second cancel found the operation (code-24 reply, then cancel
  // reply): the client stops retrying.
  await sleep(1200);
  assert.equal(
    receivedOf(fake, "cancel_resending_encrypted_message").length,
    2,
  );
  // The box stays unread: a write now must not wake a cancelled read.
  fake.putBox(kp.writeCap.bytes, kp.firstMessageIndex.bytes, utf8("late"));
  assert.equal(
    fromUtf8(
      (await client.startResendingEncryptedMessage({
        readCap: kp.readCap,
        messageBoxIndex: kp.firstMessageIndex,
        ...await client.encryptRead(kp.readCap, kp.firstMessageIndex),
      })).plaintext!,
    ),
    "late",
  );
});

// ---------------------------------------------------------------------------
// Broken connections

for (
  const [label, breakIt] of [
    [
      "closes mid-frame",
      (f: Awaited<ReturnType<typeof startFake>>) =>
        f.sendTruncatedFrameAndClose(),
    ],
    [
      "sends an oversize frame",
      (f: Awaited<ReturnType<typeof startFake>>) => f.sendOversizeFrame(),
    ],
    [
      "sends malformed CBOR",
      (f: Awaited<ReturnType<typeof startFake>>) => f.sendMalformed(),
    ],
  ] as const
) {
  Deno.test(`ThinClient reconnects when the daemon ${label}`, async () => {
    await using fake = await startFake({ transport: "tcp" });
    await using client = await connectTo(fake);
    const log = new EventLog(client);
    fake.script("get_directory_authorities", "none", { times: 1 });
    const pending = client.getDirectoryAuthorities();
    await fake.waitForRequest("get_directory_authorities");
    await breakIt(fake);
    const gone = await log.next("daemon_disconnected");
    assert.equal(gone.graceful, false);
    assert.ok(gone.error instanceof ProtocolError, String(gone.error));
    const back = await log.next("reconnected");
    assert.equal(back.resumed, true);
    assert.equal((await within(pending, 2000, "re-sent request")).length, 3);
    assert.equal(receivedOf(fake, "session_token").length, 2);
  });

  Deno.test(`ThinClient without reconnect closes with a ProtocolError cause when the daemon ${label}`, async () => {
    await using fake = await startFake({ transport: "tcp" });
    const client = await connectTo(fake, { reconnect: false });
    fake.script("get_directory_authorities", "none", { times: 1 });
    const pending = client.getDirectoryAuthorities();
    await fake.waitForRequest("get_directory_authorities");
    await breakIt(fake);
    const err = await within(client.closed(), 2000, "closed()");
    assert.ok(err instanceof ConnectionError, String(err));
    assert.ok(err.cause instanceof ProtocolError, String(err.cause));
    await assert.rejects(pending, ConnectionError);
    assert.equal(client.isClosed, true);
    await client.close();
  });
}

Deno.test("ThinClient works with split and coalesced daemon writes", async () => {
  for (const faults of [{ splitWrites: true }, { coalesceWrites: true }]) {
    await using fake = await startFake({ transport: "tcp", faults });
    await using client = await connectTo(fake);
    const kp = await client.newKeypair(filled(32, 11));
    const w = await client.encryptWrite(
      utf8("pieces"),
      kp.writeCap,
      kp.firstMessageIndex,
    );
    await client.startResendingEncryptedMessage({
      writeCap: kp.writeCap,
      ...w,
    });
    const r = await client.encryptRead(kp.readCap, kp.firstMessageIndex);
    const [read, authorities, counter] = await Promise.all([
      client.startResendingEncryptedMessage({
        readCap: kp.readCap,
        messageBoxIndex: kp.firstMessageIndex,
        ...r,
      }),
      client.getDirectoryAuthorities(),
      client.getMessageBoxIndexCounter(kp.firstMessageIndex),
    ]);
    assert.equal(fromUtf8(read.plaintext!), "pieces");
    assert.equal(authorities.length, 3);
    assert.equal(typeof counter, "bigint");
  }
});
