// ThinClient against the fake daemon: losing the daemon, redialling,
// resuming the session, and replaying requests.
import assert from "node:assert/strict";
import { ClientClosedError, ConnectionError } from "../lib/errors.ts";
import {
  connectTo,
  EventLog,
  filled,
  fromUtf8,
  queryIdOf,
  receivedOf,
  sleep,
  startFake,
  stateOf,
  until,
  utf8,
  within,
} from "./_helpers.ts";
import type { Dialer } from "../lib/conn.ts";

Deno.test("ThinClient redials after drop() and resumes its session", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const log = new EventLog(client);
  const appId = client.appId;
  fake.drop();
  const gone = await log.next("daemon_disconnected");
  assert.equal(gone.graceful, false);
  const back = await log.next("reconnected");
  assert.equal(back.resumed, true);
  assert.equal(back.instanceTokenChanged, false);
  assert.deepEqual(back.appId, appId);
  assert.deepEqual(client.appId, appId);
  const tokens = receivedOf(fake, "session_token");
  assert.equal(tokens.length, 2);
  for (const t of tokens) {
    assert.deepEqual(t.body["client_instance_token"], client.instanceToken);
  }
  assert.notEqual(tokens[0]!.connId, tokens[1]!.connId);
  assert.equal(client.isDaemonReachable, true);
  assert.equal((await client.getDirectoryAuthorities()).length, 3);
  assert.equal(log.of("shutdown").length, 0);
});

Deno.test("ThinClient reports a status change that happened while it was away", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const log = new EventLog(client);
  await fake.setAccepting(false);
  fake.drop();
  await log.next("daemon_disconnected");
  fake.setConnected(false);
  await fake.setAccepting(true);
  await log.next("reconnected");
  assert.equal(client.isConnected, false);
  const status = await log.next("connection_status");
  assert.equal(status.isConnected, false);
  assert.ok(
    log.events.indexOf(status) <
      log.events.findIndex((e) => e.type === "reconnected"),
    "the status comes before reconnected",
  );
});

Deno.test("ThinClient keeps redialling past a dial that never completes", async () => {
  await using fake = await startFake();
  let hang = false;
  let dials = 0;
  const dialer: Dialer = {
    address: "flaky",
    dial(options) {
      dials++;
      if (!hang) return fake.dialer.dial(options);
      return new Promise((_, reject) => {
        options?.signal?.addEventListener(
          "abort",
          () => reject(options.signal!.reason),
          { once: true },
        );
      });
    },
  };
  await using client = await connectTo(dialer, {
    handshakeTimeout: 40,
    reconnect: { initialDelay: 5, maxDelay: 5 },
  });
  const log = new EventLog(client);
  hang = true;
  fake.drop();
  await log.next("daemon_disconnected");
  const before = dials;
  await until(() => dials >= before + 2, 2000, "a second redial");
  hang = false;
  assert.equal((await log.next("reconnected", 2000)).resumed, true);
});

Deno.test("ThinClient re-sends pending local requests after reconnecting", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const log = new EventLog(client);
  fake.script("get_directory_authorities", "none", { times: 1 });
  fake.script("new_keypair", "none", { times: 1 });
  const authorities = client.getDirectoryAuthorities();
  const keypair = client.newKeypair(filled(32, 1));
  const first = await fake.waitForRequest("get_directory_authorities");
  await fake.waitForRequest("new_keypair");
  fake.drop();
  assert.equal((await log.next("reconnected")).resumed, true);
  assert.equal((await within(authorities, 2000, "re-sent request")).length, 3);
  assert.equal(
    (await within(keypair, 2000, "re-sent keypair")).readCap.bytes.length,
    136,
  );
  const second = await fake.waitForRequest("get_directory_authorities");
  assert.deepEqual(queryIdOf(second), queryIdOf(first), "same query id");
  assert.notEqual(second.connId, first.connId);
});

Deno.test("ThinClient sends requests made while reconnecting once it is back", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const log = new EventLog(client);
  await fake.setAccepting(false);
  fake.drop();
  await log.next("daemon_disconnected");
  assert.equal(client.isDaemonReachable, false);
  const pending = client.getDirectoryAuthorities();
  await sleep(60); // a few failed redials
  assert.equal(await stateOf(pending), "pending");
  assert.equal(receivedOf(fake, "get_directory_authorities").length, 0);
  await fake.setAccepting(true);
  assert.equal((await within(pending, 2000, "request")).length, 3);
  assert.equal((await log.next("reconnected")).resumed, true);
});

Deno.test("ThinClient replays a pending start_resending with the same query id after a daemon restart", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const log = new EventLog(client);
  const kp = await client.newKeypair(filled(32, 2));
  const env = await client.encryptRead(kp.readCap, kp.firstMessageIndex);
  const read = client.startResendingEncryptedMessage({
    readCap: kp.readCap,
    messageBoxIndex: kp.firstMessageIndex,
    ...env,
  });
  const first = await fake.waitForRequest("start_resending_encrypted_message");
  const oldToken = fake.instanceToken;
  await fake.restart({ newInstanceToken: true });
  assert.notDeepEqual(fake.instanceToken, oldToken);
  const gone = await log.next("daemon_disconnected");
  assert.equal(gone.graceful, false);
  const back = await log.next("reconnected");
  assert.equal(back.resumed, false);
  assert.equal(back.instanceTokenChanged, true);
  assert.deepEqual(client.daemonInstanceToken, fake.instanceToken);
  const replay = await fake.waitForRequest("start_resending_encrypted_message");
  assert.deepEqual(queryIdOf(replay), queryIdOf(first));
  assert.deepEqual(replay.body["envelope_hash"], env.envelopeHash);
  assert.deepEqual(replay.body["read_cap"], kp.readCap.bytes);
  assert.equal(await stateOf(read), "pending");
  fake.putBox(kp.writeCap.bytes, kp.firstMessageIndex.bytes, utf8("written"));
  const result = await within(read, 2000, "replayed read");
  assert.equal(fromUtf8(result.plaintext!), "written");
});

Deno.test("ThinClient reports a graceful disconnect after shutdown_event", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const log = new EventLog(client);
  await fake.restart({ graceful: true, newInstanceToken: false });
  await log.next("shutdown");
  const gone = await log.next("daemon_disconnected");
  assert.equal(gone.graceful, true);
  const back = await log.next("reconnected");
  assert.equal(back.resumed, false, "a restarted daemon forgot the session");
  assert.equal(back.instanceTokenChanged, false);
  // The flag is per connection: a later crash is not graceful.
  fake.drop();
  assert.equal((await log.next("daemon_disconnected")).graceful, false);
  assert.equal((await log.next("reconnected")).resumed, true);
});

Deno.test("ThinClient.blockingSendMessage() gets a reply queued while it was away", async () => {
  await using fake = await startFake({ echoDelayMs: 30 });
  await using client = await connectTo(fake);
  const log = new EventLog(client);
  const echo = client.getService("echo");
  const pending = client.blockingSendMessage(
    utf8("queued"),
    echo.destinationIdHash,
    echo.recipientQueueId,
  );
  await fake.waitForRequest("send_message");
  await log.next("message_sent");
  await fake.setAccepting(false);
  fake.drop();
  await log.next("daemon_disconnected");
  await sleep(80); // the echo reply is produced (and queued) now
  assert.equal(await stateOf(pending), "pending");
  await fake.setAccepting(true);
  const reply = await within(pending, 2000, "queued reply");
  assert.equal(fromUtf8(reply.subarray(0, 6)), "queued");
  assert.equal((await log.next("reconnected")).resumed, true);
});

Deno.test("ThinClient.blockingSendMessage() rejects when the session is not resumed", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  fake.script("send_message", "none", { times: 1 });
  const echo = client.getService("echo");
  const pending = client.blockingSendMessage(
    utf8("lost"),
    echo.destinationIdHash,
    echo.recipientQueueId,
  );
  await fake.waitForRequest("send_message");
  await fake.restart();
  await assert.rejects(within(pending, 2000, "rejection"), (err: unknown) => {
    assert.ok(err instanceof ConnectionError);
    assert.match(err.message, /not resumed/);
    return true;
  });
});

Deno.test("ThinClient aborting a start while disconnected sends the cancel after reconnecting", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const log = new EventLog(client);
  const kp = await client.newKeypair(filled(32, 3));
  const env = await client.encryptRead(kp.readCap, kp.firstMessageIndex);
  const controller = new AbortController();
  const read = client.startResendingEncryptedMessage(
    { readCap: kp.readCap, messageBoxIndex: kp.firstMessageIndex, ...env },
    { signal: controller.signal },
  );
  await fake.waitForRequest("start_resending_encrypted_message");
  await fake.setAccepting(false);
  fake.drop();
  await log.next("daemon_disconnected");
  const reason = new Error("offline abort");
  controller.abort(reason);
  await assert.rejects(read, (err: unknown) => err === reason);
  assert.equal(
    receivedOf(fake, "cancel_resending_encrypted_message").length,
    0,
  );
  await fake.setAccepting(true);
  await log.next("reconnected");
  const cancel = await fake.waitForRequest(
    "cancel_resending_encrypted_message",
  );
  assert.deepEqual(cancel.body["envelope_hash"], env.envelopeHash);
  assert.equal(
    receivedOf(fake, "start_resending_encrypted_message").length,
    1,
    "an aborted start is not replayed",
  );
});

Deno.test("ThinClient with the instanceToken option resumes a detached session", async () => {
  await using fake = await startFake();
  const first = await connectTo(fake);
  const token = first.instanceToken;
  const appId = first.appId;
  assert.equal(first.resumed, false);
  await first.detach();
  await fake.waitForConnections(0);
  assert.equal(fake.hasSession(token), true);
  await using second = await connectTo(fake, { instanceToken: token });
  assert.equal(second.resumed, true);
  assert.deepEqual(second.instanceToken, token);
  assert.deepEqual(second.appId, appId, "same daemon session");
  assert.equal(receivedOf(fake, "thin_close").length, 0);
  const tokens = receivedOf(fake, "session_token");
  assert.deepEqual(tokens[1]!.body["client_instance_token"], token);
  // A new client without the token gets a new session.
  await using third = await connectTo(fake);
  assert.equal(third.resumed, false);
  assert.notDeepEqual(third.appId, appId);
});

Deno.test("ThinClient with reconnect false closes with a ConnectionError when the daemon drops", async () => {
  await using fake = await startFake();
  const client = await connectTo(fake, { reconnect: false });
  const log = new EventLog(client);
  fake.script("get_directory_authorities", "none", { times: 1 });
  const pending = client.getDirectoryAuthorities();
  await fake.waitForRequest("get_directory_authorities");
  fake.drop();
  const err = await within(client.closed(), 2000, "closed()");
  assert.ok(err instanceof ConnectionError);
  assert.match(err.message, /Lost connection/);
  await assert.rejects(pending, (e: unknown) => e === err);
  assert.equal(client.isClosed, true);
  assert.equal((await log.next("daemon_disconnected")).graceful, false);
  await within(log.ended, 1000, "events to end");
  await assert.rejects(client.getDirectoryAuthorities(), ClientClosedError);
  assert.equal(receivedOf(fake, "session_token").length, 1, "no redial");
  await client.close();
});

Deno.test("ThinClient gives up after reconnect.maxAttempts failed redials", async () => {
  await using fake = await startFake();
  const client = await connectTo(fake, {
    reconnect: { initialDelay: 10, maxDelay: 20, maxAttempts: 3 },
  });
  const log = new EventLog(client);
  fake.script("get_directory_authorities", "none", { times: 1 });
  const pending = client.getDirectoryAuthorities();
  await fake.waitForRequest("get_directory_authorities");
  await fake.setAccepting(false);
  fake.drop();
  const err = await within(client.closed(), 2000, "closed()");
  assert.ok(err instanceof ConnectionError);
  assert.match(err.message, /gave up after 3 attempts/);
  assert.ok(err.cause instanceof ConnectionError, "the last dial error");
  await assert.rejects(pending, ConnectionError);
  assert.equal(log.of("reconnected").length, 0);
  assert.equal(client.isClosed, true);
});

Deno.test("ThinClient.close() during reconnection stops redialling", async () => {
  await using fake = await startFake();
  const client = await connectTo(fake, {
    reconnect: { initialDelay: 10, maxDelay: 10 },
  });
  const log = new EventLog(client);
  await fake.setAccepting(false);
  fake.drop();
  await log.next("daemon_disconnected");
  await sleep(30);
  await client.close();
  assert.equal(await client.closed(), undefined);
  await fake.setAccepting(true);
  await sleep(40);
  assert.equal(fake.connectionCount, 0, "no redial after close");
  assert.equal(
    receivedOf(fake, "thin_close").length,
    0,
    "nothing to send it on",
  );
});
