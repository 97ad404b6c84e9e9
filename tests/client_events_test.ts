// ThinClient against the fake daemon: event subscriptions, the PKI document
// and services, and the legacy (SURB) messages.
import assert from "node:assert/strict";
import {
  ConnectionError,
  DaemonError,
  PayloadTooLargeError,
  ThinClientError,
} from "../lib/errors.ts";
import { EVENT_TYPES, type ThinClientEvent } from "../lib/events.ts";
import { buildPkiDocument } from "../testing/mod.ts";
import type { Dialer } from "../lib/conn.ts";
import {
  connectTo,
  EventLog,
  filled,
  fromUtf8,
  sleep,
  startFake,
  stateOf,
  utf8,
  within,
} from "./_helpers.ts";

// ---------------------------------------------------------------------------
// Events

Deno.test("ThinClient.events() gives a slow subscriber events_dropped while a fast one gets everything", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const fast = new EventLog(client);
  // (Each status change is also a state event: left out here.)
  const slow = client.events({
    bufferSize: 3,
    types: ["connection_status", "shutdown"],
  });
  for (let i = 0; i < 10; i++) {
    fake.emit({ "connection_status_event": { "is_connected": i % 2 === 0 } });
  }
  for (let i = 0; i < 10; i++) {
    const ev = await fast.next("connection_status");
    assert.equal(ev.isConnected, i % 2 === 0, `fast event ${i}`);
  }
  assert.equal(fast.of("events_dropped").length, 0);
  const first = await slow.next();
  assert.deepEqual(first.value, { type: "events_dropped", count: 7 });
  const rest: ThinClientEvent[] = [];
  for (let i = 0; i < 3; i++) rest.push((await slow.next()).value);
  assert.deepEqual(
    rest.map((e) => e.type === "connection_status" && e.isConnected),
    [false, true, false],
    "the newest three survive",
  );
  // Caught up: the slow subscriber gets new events directly again.
  const waiting = slow.next();
  assert.equal(await stateOf(waiting), "pending");
  fake.emit({ "shutdown_event": {} });
  assert.deepEqual((await within(waiting, 1000, "event")).value, {
    type: "shutdown",
  });
  assert.deepEqual(await slow.return!(), { value: undefined, done: true });
  assert.equal((await slow.next()).done, true);
});

Deno.test("ThinClient.events() ends when its signal aborts", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const controller = new AbortController();
  const events = client.events({ signal: controller.signal });
  const waiting = events.next();
  controller.abort();
  assert.deepEqual(await within(waiting, 1000, "iterator end"), {
    value: undefined,
    done: true,
  });
  fake.emit({ "shutdown_event": {} });
  assert.equal((await events.next()).done, true);
  const late = client.events({ signal: AbortSignal.abort() });
  assert.equal((await late.next()).done, true, "already aborted");
});

Deno.test("ThinClient.events() subscribers are independent and break unsubscribes", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const a = new EventLog(client);
  let seen = 0;
  const b = (async () => {
    for await (const ev of client.events()) {
      seen++;
      if (ev.type === "shutdown") break;
    }
  })();
  fake.emit({ "shutdown_event": {} });
  await within(b, 1000, "loop with break");
  fake.emit({ "connection_status_event": { "is_connected": false } });
  await a.next("shutdown");
  await a.next("connection_status");
  assert.equal(seen, 1);
});

Deno.test("ThinClient.events() answers next() calls made before earlier ones settle", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const events = client.events({ types: ["shutdown", "connection_status"] });
  const a = events.next();
  const b = events.next();
  const c = events.next();
  fake.emit({ "shutdown_event": {} });
  fake.emit({ "connection_status_event": { "is_connected": false } });
  const [ra, rb] = await within(Promise.all([a, b]), 1000, "two events");
  assert.equal(ra.value.type, "shutdown");
  assert.equal(rb.value.type, "connection_status");
  assert.equal(await stateOf(c), "pending");
  await client.close();
  assert.equal((await within(c, 1000, "end")).done, true);
});

Deno.test("ThinClient.events() rejects a bad bufferSize with RangeError", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  assert.throws(() => client.events({ bufferSize: 0 }), RangeError);
  assert.throws(() => client.events({ bufferSize: 1.5 }), RangeError);
});

Deno.test("ThinClient.events({ types }) delivers only those types, and they alone fill its buffer", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const all = new EventLog(client);
  const statuses = client.events({
    types: ["connection_status"],
    bufferSize: 2,
  });
  fake.emit({ "shutdown_event": {} });
  for (let i = 0; i < 3; i++) {
    fake.emit({ "connection_status_event": { "is_connected": i !== 1 } });
    fake.emit({ "shutdown_event": {} });
  }
  for (let i = 0; i < 3; i++) await all.next("connection_status");
  for (let i = 0; i < 4; i++) await all.next("shutdown");
  // Three statuses in a buffer of two: one dropped; the shutdowns took no room.
  assert.deepEqual((await statuses.next()).value, {
    type: "events_dropped",
    count: 1,
  });
  const kept: boolean[] = [];
  for (let i = 0; i < 2; i++) {
    const ev = (await statuses.next()).value;
    // The iterator's type is narrowed to connection_status | events_dropped.
    if (ev.type !== "connection_status") assert.fail(`got ${ev.type}`);
    kept.push(ev.isConnected);
  }
  assert.deepEqual(kept, [false, true]);
  assert.equal(await stateOf(statuses.next()), "pending");
  await statuses.return!();
});

Deno.test("ThinClient.events() rejects unknown or empty types with RangeError", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  assert.throws(
    () => client.events({ types: [] }),
    /types is not a non-empty array/,
  );
  assert.throws(
    // @ts-expect-error: not an event type
    () => client.events({ types: ["message_replies"] }),
    /'message_replies' is not an event type \(known: connection_status, /,
  );
});

Deno.test("ThinClient.state and state events follow the daemon's link, the connection and close", async () => {
  await using fake = await startFake();
  const client = await connectTo(fake);
  assert.equal(client.state, "connected");
  const log = new EventLog(client);
  const change = async (state: string, previous: string) => {
    const ev = await log.next("state");
    assert.deepEqual(
      [ev.previous, ev.state],
      [previous, state],
      `${previous} -> ${state}`,
    );
  };
  fake.emit({ "connection_status_event": { "is_connected": false } });
  await change("daemon_offline", "connected");
  assert.equal(client.state, "daemon_offline");
  // The same status again is no change.
  fake.emit({ "connection_status_event": { "is_connected": false } });
  fake.emit({ "connection_status_event": { "is_connected": true } });
  await change("connected", "daemon_offline");
  assert.equal(log.of("connection_status").length, 3);
  fake.drop();
  await change("reconnecting", "connected");
  await change("connected", "reconnecting");
  // Each state event follows the event that caused it.
  const order = log.events.map((e) => e.type).filter((t) =>
    t !== "connection_status" && t !== "pki_document"
  );
  assert.deepEqual(order, [
    "state",
    "state",
    "daemon_disconnected",
    "state",
    "reconnected",
    "state",
  ]);
  await client.close();
  await change("closed", "connected");
  assert.equal(client.state, "closed");
  assert.equal(log.of("state").length, 5);
});

Deno.test("ThinClient.state is closed once a lost connection is not redialled", async () => {
  await using fake = await startFake();
  const client = await connectTo(fake, { reconnect: false });
  const states = client.events({ types: ["state"] });
  fake.drop();
  assert.deepEqual((await states.next()).value, {
    type: "state",
    state: "closed",
    previous: "connected",
  });
  assert.equal((await states.next()).done, true);
  assert.equal(client.state, "closed");
  assert.ok((await client.closed()) instanceof ConnectionError);
});

Deno.test("EVENT_TYPES lists every ThinClientEvent type once", () => {
  // A Record over the union must name every type, and only those.
  const every: Record<ThinClientEvent["type"], true> = {
    "connection_status": true,
    "pki_document": true,
    "message_sent": true,
    "message_reply": true,
    "message_id_garbage_collected": true,
    "shutdown": true,
    "daemon_disconnected": true,
    "reconnected": true,
    "state": true,
    "events_dropped": true,
  };
  assert.deepEqual([...EVENT_TYPES].sort(), Object.keys(every).sort());
  assert.equal(new Set(EVENT_TYPES).size, EVENT_TYPES.length);
});

Deno.test("ThinClient connection_status events update isConnected and keep the geometry", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const log = new EventLog(client);
  fake.setConnected(false);
  const off = await log.next("connection_status");
  assert.equal(off.isConnected, false);
  assert.equal(client.isConnected, false);
  assert.deepEqual(off.instanceToken, fake.instanceToken);
  assert.equal(off.sphinxGeometry.userForwardPayloadLength, 2000);
  assert.equal(
    off.pigeonholeGeometry.maxPlaintextPayloadLength,
    fake.pigeonholeGeometry.MaxPlaintextPayloadLength,
  );
  fake.setConnected(true);
  assert.equal((await log.next("connection_status")).isConnected, true);
  assert.equal(client.isConnected, true);
});

// ---------------------------------------------------------------------------
// PKI document and services

Deno.test("ThinClient.pkiDocument() follows pushed documents and emits pki_document", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const log = new EventLog(client);
  const base = fake.pkiDocument!.epoch;
  assert.equal(client.pkiDocument().epoch, BigInt(base));
  assert.ok(client.pkiDocument().serviceNodes.length > 0);
  fake.setPkiDocument(buildPkiDocument({ epoch: base + 1 }));
  const ev = await log.next("pki_document");
  assert.equal(ev.document.epoch, BigInt(base + 1));
  assert.equal(client.pkiDocument().epoch, BigInt(base + 1));
});

Deno.test("ThinClient.pkiDocumentForEpoch() caches the last 5 epochs", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const log = new EventLog(client);
  const base = fake.pkiDocument!.epoch;
  for (let i = 1; i <= 6; i++) {
    fake.setPkiDocument(buildPkiDocument({ epoch: base + i }));
  }
  for (let i = 1; i <= 6; i++) {
    assert.equal(
      (await log.next("pki_document")).document.epoch,
      BigInt(base + i),
    );
  }
  const current = BigInt(base + 6);
  for (let i = 2; i <= 6; i++) {
    const e = BigInt(base + i);
    assert.equal(client.pkiDocumentForEpoch(e).epoch, e, `epoch +${i} kept`);
  }
  for (const evicted of [base, base + 1]) {
    assert.equal(
      client.pkiDocumentForEpoch(BigInt(evicted)).epoch,
      current,
      "evicted epochs fall back to the current document",
    );
  }
  assert.equal(client.pkiDocumentForEpoch(BigInt(base + 99)).epoch, current);
});

Deno.test("ThinClient ignores a PKI document that does not parse", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const log = new EventLog(client);
  const before = client.pkiDocument();
  fake.emit({
    "new_pki_document_event": { "payload": utf8("not a document") },
  });
  fake.emit({ "new_pki_document_event": { "payload": new Uint8Array(0) } });
  fake.emit({ "new_pki_document_event": { "payload": null } });
  fake.emit({ "shutdown_event": {} }); // a barrier: processed after the above
  await log.next("shutdown");
  assert.equal(log.of("pki_document").length, 0);
  assert.equal(client.pkiDocument(), before);
  assert.equal(client.isDaemonReachable, true);
});

Deno.test("ThinClient.getServices() and getService() find services by capability", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const expected = fake.pkiDocument!.services.find((s) =>
    s.capability === "echo"
  )!;
  const all = client.getServices("echo");
  assert.equal(all.length, 1);
  const echo = client.getService("echo");
  assert.deepEqual(echo, all[0]);
  assert.equal(echo.endpoint, "+echo");
  assert.equal(echo.nodeName, expected.nodeName);
  assert.deepEqual(echo.destinationIdHash, expected.destinationIdHash);
  assert.deepEqual(echo.recipientQueueId, utf8("+echo"));
  assert.equal(client.getService("courier").endpoint, "courier");
  assert.deepEqual(client.getServices("nope"), []);
  assert.throws(
    () => client.getService("nope"),
    (err: unknown) => {
      assert.ok(err instanceof ThinClientError);
      assert.match(err.message, /'nope'/);
      return true;
    },
  );
});

Deno.test("ThinClient.getPkiDocumentRaw() returns the signed document or code 10", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const doc = fake.pkiDocument!;
  const raw = await client.getPkiDocumentRaw();
  assert.equal(raw.epoch, BigInt(doc.epoch));
  assert.deepEqual(raw.payload, doc.certificate);
  const byEpoch = await client.getPkiDocumentRaw(BigInt(doc.epoch));
  assert.deepEqual(byEpoch.payload, doc.certificate);
  await assert.rejects(
    client.getPkiDocumentRaw(BigInt(doc.epoch + 50)),
    (err: unknown) => {
      assert.ok(err instanceof DaemonError);
      assert.equal(err.code, 10);
      assert.equal(err.operation, "get_pki_document");
      return true;
    },
  );
  const before = fake.received.length;
  await assert.rejects(client.getPkiDocumentRaw(-1n), TypeError);
  await assert.rejects(
    client.getPkiDocumentRaw(5 as unknown as bigint),
    TypeError,
  );
  assert.equal(fake.received.length, before);
});

Deno.test("ThinClient.getDirectoryAuthorities() lists the daemon's authorities", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const list = await client.getDirectoryAuthorities();
  assert.equal(list.length, 3);
  for (const a of list) {
    assert.equal(typeof a.identifier, "string");
    assert.equal(a.identityKeyHash.length, 32);
    assert.ok(a.addresses.length > 0);
  }
  await using none = await startFake({ directoryAuthorities: null });
  await using other = await connectTo(none);
  await assert.rejects(
    other.getDirectoryAuthorities(),
    (err: unknown) => err instanceof DaemonError && err.code === 10,
  );
});

// ---------------------------------------------------------------------------
// Legacy messages

Deno.test("ThinClient.sendMessage() reports message_sent then message_reply", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const log = new EventLog(client);
  const echo = client.getService("echo");
  const surbId = client.newSurbId();
  const messageId = client.newMessageId();
  await client.sendMessage(
    surbId,
    utf8("hello"),
    echo.destinationIdHash,
    echo.recipientQueueId,
    { messageId },
  );
  const req = await fake.waitForRequest("send_message");
  assert.equal(req.body["with_surb"], true);
  assert.deepEqual(req.body["surbid"], surbId);
  assert.deepEqual(req.body["id"], messageId);
  const sent = await log.next("message_sent");
  assert.deepEqual(sent.surbId, surbId);
  assert.deepEqual(sent.messageId, messageId);
  assert.equal(sent.error, null);
  assert.equal(sent.replyEtaMs, 1500);
  assert.ok(sent.sentAt instanceof Date);
  assert.ok(Math.abs(sent.sentAt.getTime() - Date.now()) < 5000);
  const reply = await log.next("message_reply");
  assert.deepEqual(reply.surbId, surbId);
  assert.deepEqual(reply.messageId, messageId);
  assert.equal(
    reply.payload.length,
    2574,
    "zero-padded SURB payload (ForwardPayloadLength)",
  );
  assert.equal(fromUtf8(reply.payload.subarray(0, 5)), "hello");
  assert.ok(reply.payload.subarray(5).every((b) => b === 0));
  assert.equal(reply.errorCode, 0);
  assert.equal(reply.replyIndex, null);
});

Deno.test("ThinClient.sendMessageWithoutReply() sends no SURB and gets no event", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const log = new EventLog(client);
  const echo = client.getService("echo");
  await client.sendMessageWithoutReply(
    utf8("fire"),
    echo.destinationIdHash,
    echo.recipientQueueId,
  );
  const req = await fake.waitForRequest("send_message");
  assert.equal(req.body["with_surb"], false);
  assert.equal(req.body["surbid"], null);
  assert.deepEqual(req.body["payload"], utf8("fire"));
  // A blocking send queued behind it: once it is answered, the first one has
  // been handled too.
  await client.blockingSendMessage(
    utf8("barrier"),
    echo.destinationIdHash,
    echo.recipientQueueId,
  );
  assert.equal(log.of("message_sent").length, 1);
  assert.equal(log.of("message_reply").length, 1);
});

Deno.test("ThinClient.blockingSendMessage() returns the echo reply", async () => {
  await using fake = await startFake({ echoDelayMs: 20 });
  await using client = await connectTo(fake);
  const echo = client.getService("echo");
  const reply = await client.blockingSendMessage(
    utf8("ping"),
    echo.destinationIdHash,
    echo.recipientQueueId,
    { signal: AbortSignal.timeout(10_000) },
  );
  assert.equal(reply.length, 2574);
  assert.equal(fromUtf8(reply.subarray(0, 4)), "ping");
  const req = await fake.waitForRequest("send_message");
  assert.equal(req.body["with_surb"], true);
  assert.equal((req.body["surbid"] as Uint8Array).length, 16);
});

Deno.test("ThinClient.blockingSendMessage() completes only on its own SURB id", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  fake.script("send_message", "none", { times: 1 });
  const echo = client.getService("echo");
  const pending = client.blockingSendMessage(
    utf8("mine"),
    echo.destinationIdHash,
    echo.recipientQueueId,
  );
  const req = await fake.waitForRequest("send_message");
  const log = new EventLog(client);
  fake.emit({
    "message_reply_event": {
      "surbid": filled(16, 0xee),
      "payload": utf8("no"),
    },
  });
  fake.emit({
    "message_sent_event": {
      "surbid": filled(16, 0xee),
      "sent_at": null,
      "reply_eta": 0,
      "err": "not yours",
    },
  });
  await log.next("message_sent");
  assert.equal(await stateOf(pending), "pending");
  fake.emit({
    "message_reply_event": {
      "surbid": req.body["surbid"],
      "payload": utf8("yes"),
    },
  });
  assert.equal(fromUtf8(await within(pending, 1000, "reply")), "yes");
});

Deno.test("ThinClient send methods refuse a payload over userForwardPayloadLength locally", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const echo = client.getService("echo");
  const big = new Uint8Array(
    client.sphinxGeometry.userForwardPayloadLength + 1,
  );
  const before = fake.received.length;
  const check = (err: unknown) => {
    assert.ok(err instanceof PayloadTooLargeError);
    assert.equal(err.size, 2001);
    assert.equal(err.limit, 2000);
    return true;
  };
  await assert.rejects(
    client.sendMessage(
      client.newSurbId(),
      big,
      echo.destinationIdHash,
      echo.recipientQueueId,
    ),
    check,
  );
  await assert.rejects(
    client.sendMessageWithoutReply(
      big,
      echo.destinationIdHash,
      echo.recipientQueueId,
    ),
    check,
  );
  await assert.rejects(
    client.blockingSendMessage(
      big,
      echo.destinationIdHash,
      echo.recipientQueueId,
    ),
    check,
  );
  // Exactly the limit is fine.
  const max = new Uint8Array(2000);
  const reply = await client.blockingSendMessage(
    max,
    echo.destinationIdHash,
    echo.recipientQueueId,
  );
  assert.equal(reply.length, 2574);
  assert.equal(fake.received.length, before + 1);
});

Deno.test("ThinClient send methods check ids and lengths before sending", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const echo = client.getService("echo");
  const before = fake.received.length;
  const x = utf8("x");
  await assert.rejects(
    client.sendMessage(
      filled(15, 1),
      x,
      echo.destinationIdHash,
      echo.recipientQueueId,
    ),
    RangeError,
  );
  await assert.rejects(
    client.sendMessage(
      client.newSurbId(),
      x,
      echo.destinationIdHash,
      echo.recipientQueueId,
      {
        messageId: filled(17, 1),
      },
    ),
    RangeError,
  );
  await assert.rejects(
    client.sendMessageWithoutReply(x, filled(31, 1), echo.recipientQueueId),
    RangeError,
  );
  await assert.rejects(
    client.sendMessageWithoutReply(
      x,
      echo.destinationIdHash,
      new Uint8Array(0),
    ),
    RangeError,
  );
  await assert.rejects(
    client.blockingSendMessage(x, echo.destinationIdHash, filled(33, 0x61)),
    RangeError,
  );
  await assert.rejects(
    client.sendMessageWithoutReply(
      "text" as unknown as Uint8Array,
      echo.destinationIdHash,
      echo.recipientQueueId,
    ),
    TypeError,
  );
  assert.equal(fake.received.length, before);
});

Deno.test("ThinClient send methods refuse while the daemon is offline", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const log = new EventLog(client);
  fake.setConnected(false);
  await log.next("connection_status");
  const echo = client.getService("echo");
  const before = fake.received.length;
  const offline = (err: unknown) => {
    assert.ok(err instanceof ConnectionError);
    assert.match(err.message, /offline/);
    return true;
  };
  await assert.rejects(
    client.sendMessage(
      client.newSurbId(),
      utf8("x"),
      echo.destinationIdHash,
      echo.recipientQueueId,
    ),
    offline,
  );
  await assert.rejects(
    client.sendMessageWithoutReply(
      utf8("x"),
      echo.destinationIdHash,
      echo.recipientQueueId,
    ),
    offline,
  );
  await assert.rejects(
    client.blockingSendMessage(
      utf8("x"),
      echo.destinationIdHash,
      echo.recipientQueueId,
    ),
    offline,
  );
  assert.equal(fake.received.length, before);
  // Local operations still work offline.
  await client.newKeypair(filled(32, 1));
});

Deno.test("ThinClient.blockingSendMessage() rejects when the daemon goes offline", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  fake.script("send_message", "none", { times: 1 });
  const echo = client.getService("echo");
  const pending = client.blockingSendMessage(
    utf8("x"),
    echo.destinationIdHash,
    echo.recipientQueueId,
  );
  await fake.waitForRequest("send_message");
  assert.equal(await stateOf(pending), "pending");
  fake.setConnected(false);
  await assert.rejects(within(pending, 1000, "rejection"), (err: unknown) => {
    assert.ok(err instanceof ConnectionError);
    assert.match(err.message, /lost its mixnet connection/);
    return true;
  });
});

Deno.test("ThinClient.blockingSendMessage() rejects when message_sent reports an error", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const log = new EventLog(client);
  fake.script("send_message", { errorCode: 1, fields: { "err": "no route" } }, {
    times: 1,
  });
  const echo = client.getService("echo");
  await assert.rejects(
    client.blockingSendMessage(
      utf8("x"),
      echo.destinationIdHash,
      echo.recipientQueueId,
    ),
    (err: unknown) => {
      assert.ok(err instanceof ThinClientError);
      assert.match(err.message, /'no route'/);
      return true;
    },
  );
  const sent = await log.next("message_sent");
  assert.equal(sent.error, "no route");
  assert.equal(sent.replyEtaMs, 0);
});

Deno.test("ThinClient.sendMessage() to an unknown destination reports the daemon's error event", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const log = new EventLog(client);
  const surbId = client.newSurbId();
  await client.sendMessage(surbId, utf8("x"), filled(32, 3), utf8("+nobody"));
  const sent = await log.next("message_sent");
  assert.deepEqual(sent.surbId, surbId);
  assert.ok(sent.error !== null && sent.error.length > 0);
});

Deno.test("ThinClient.blockingSendMessage() aborted while its frame is still being written rejects once, with no stray rejection", async () => {
  await using fake = await startFake();
  // Every write takes 30 ms, so the abort lands before the send completes.
  let slow = false;
  const dialer: Dialer = {
    address: fake.dialer.address,
    async dial(options) {
      const conn = await fake.dialer.dial(options);
      const writer = conn.writable.getWriter();
      const writable = new WritableStream<Uint8Array>({
        async write(chunk) {
          if (slow) await sleep(30);
          await writer.write(chunk);
        },
        close: () => writer.close(),
        abort: (reason) => writer.abort(reason),
      });
      return {
        ...conn,
        readable: conn.readable,
        writable,
        close: () => conn.close(),
      };
    },
  };
  await using client = await connectTo(dialer);
  const echo = client.getService("echo");
  slow = true;
  const ctl = new AbortController();
  const pending = client.blockingSendMessage(
    utf8("aborted"),
    echo.destinationIdHash,
    echo.recipientQueueId,
    { signal: ctl.signal },
  );
  const reason = new Error("user gave up");
  ctl.abort(reason);
  const outcome = assert.rejects(pending, (err) => err === reason);
  // A stray unhandled rejection would fail this test as an uncaught error.
  await sleep(60);
  await outcome;
  const reply = await client.blockingSendMessage(
    utf8("still fine"),
    echo.destinationIdHash,
    echo.recipientQueueId,
  );
  assert.equal(fromUtf8(reply.subarray(0, 10)), "still fine");
});
