// ThinClient's Pigeonhole API against the fake daemon's box store, and the
// mapping of every daemon error code to an error class.
import assert from "node:assert/strict";
import type { ThinClient } from "../lib/client.ts";
import { MessageBoxIndex, ReadCap, WriteCap } from "../lib/caps.ts";
import {
  CancelledError,
  CopyCommandError,
  DaemonError,
  isExpectedOutcome,
  PayloadTooLargeError,
  ReplicaError,
  replicaErrorText,
  ThinClientError,
  thinErrorText,
} from "../lib/errors.ts";
import type { Keypair } from "../lib/pigeonhole.ts";
import {
  fakeIndexCounter,
  fakeKeypair,
  fakeNextIndex,
  type FakeRequestKind,
} from "../testing/mod.ts";
import {
  connectTo,
  filled,
  fromUtf8,
  receivedOf,
  startFake,
  stateOf,
  utf8,
  within,
} from "./_helpers.ts";

type Fake = Awaited<ReturnType<typeof startFake>>;

async function write(
  client: ThinClient,
  kp: Keypair,
  index: MessageBoxIndex,
  text: string | Uint8Array,
  options: { noIdempotentBoxAlreadyExists?: boolean } = {},
): Promise<MessageBoxIndex> {
  const env = await client.encryptWrite(
    typeof text === "string" ? utf8(text) : text,
    kp.writeCap,
    index,
  );
  await client.startResendingEncryptedMessage(
    { writeCap: kp.writeCap, ...env },
    options,
  );
  return env.nextMessageBoxIndex;
}

async function read(
  client: ThinClient,
  readCap: ReadCap,
  index: MessageBoxIndex,
  options: { noRetryOnBoxIdNotFound?: boolean } = {},
): Promise<Uint8Array | null> {
  const env = await client.encryptRead(readCap, index);
  const r = await client.startResendingEncryptedMessage(
    { readCap, messageBoxIndex: index, ...env },
    options,
  );
  return r.plaintext;
}

async function replicaCode(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ReplicaError, String(err));
    return err.code;
  }
  throw new Error("expected a ReplicaError");
}

/** Writes `elements` into consecutive boxes of the temporary stream. */
async function writeElements(
  client: ThinClient,
  temp: Keypair,
  elements: Uint8Array[],
): Promise<void> {
  let index = temp.firstMessageIndex;
  for (const element of elements) {
    index = await write(client, temp, index, element);
  }
}

// ---------------------------------------------------------------------------
// Keys and indices

Deno.test("ThinClient.newKeypair() is deterministic and checks the seed length", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const seed = Uint8Array.from({ length: 32 }, (_, i) => i);
  const a = await client.newKeypair(seed);
  const b = await client.newKeypair(seed.slice());
  const expected = fakeKeypair(seed);
  assert.deepEqual(a.writeCap.bytes, expected.writeCap);
  assert.deepEqual(a.readCap.bytes, expected.readCap);
  assert.deepEqual(a.firstMessageIndex.bytes, expected.firstMessageIndex);
  assert.deepEqual(b.writeCap.bytes, a.writeCap.bytes);
  assert.ok(a.writeCap instanceof WriteCap);
  assert.ok(a.readCap instanceof ReadCap);
  assert.ok(a.firstMessageIndex instanceof MessageBoxIndex);
  const req = await fake.waitForRequest("new_keypair");
  assert.deepEqual(req.body["seed"], seed);
  const random = await client.newKeypair();
  assert.notDeepEqual(random.writeCap.bytes, a.writeCap.bytes);
  assert.equal(
    (receivedOf(fake, "new_keypair").at(-1)!.body["seed"] as Uint8Array).length,
    32,
  );
  const before = fake.received.length;
  await assert.rejects(client.newKeypair(filled(31, 1)), RangeError);
  await assert.rejects(client.newKeypair(filled(33, 1)), RangeError);
  await assert.rejects(
    client.newKeypair("x".repeat(32) as unknown as Uint8Array),
    TypeError,
  );
  assert.equal(fake.received.length, before, "nothing sent");
});

Deno.test("ThinClient.nextMessageBoxIndex() and getMessageBoxIndexCounter() handle 64-bit counters", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const kp = await client.newKeypair(filled(32, 1));
  const counter = await client.getMessageBoxIndexCounter(kp.firstMessageIndex);
  assert.equal(typeof counter, "bigint");
  assert.ok(counter > 2n ** 53n, "above Number.MAX_SAFE_INTEGER");
  assert.equal(counter, fakeIndexCounter(kp.firstMessageIndex.bytes));
  const next = await client.nextMessageBoxIndex(kp.firstMessageIndex);
  assert.deepEqual(next.bytes, fakeNextIndex(kp.firstMessageIndex.bytes));
  assert.equal(await client.getMessageBoxIndexCounter(next), counter + 1n);
  const big = kp.firstMessageIndex.bytes.slice();
  new DataView(big.buffer).setBigUint64(0, 2n ** 64n - 2n, true);
  assert.equal(
    await client.getMessageBoxIndexCounter(new MessageBoxIndex(big)),
    2n ** 64n - 2n,
  );
});

Deno.test("ThinClient Pigeonhole methods refuse wrong-length or wrong-type caps before sending", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const kp = await client.newKeypair(filled(32, 2));
  const env = await client.encryptWrite(
    utf8("x"),
    kp.writeCap,
    kp.firstMessageIndex,
  );
  const before = fake.received.length;
  assert.throws(() => new WriteCap(filled(167)), RangeError);
  assert.throws(() => new ReadCap(filled(137)), RangeError);
  assert.throws(() => new MessageBoxIndex(filled(103)), RangeError);
  assert.throws(
    () => new WriteCap("x" as unknown as Uint8Array),
    TypeError,
  );
  const asWrite = kp.readCap as unknown as WriteCap;
  const asIndex = kp.readCap as unknown as MessageBoxIndex;
  await assert.rejects(
    client.encryptWrite(utf8("x"), asWrite, kp.firstMessageIndex),
    TypeError,
  );
  await assert.rejects(
    client.encryptRead(kp.readCap, asIndex),
    TypeError,
  );
  await assert.rejects(
    client.startResendingEncryptedMessage({
      writeCap: kp.writeCap,
      ...env,
      envelopeHash: filled(31),
    }),
    RangeError,
  );
  await assert.rejects(
    client.startResendingEncryptedMessage({
      writeCap: kp.writeCap,
      readCap: kp.readCap,
      ...env,
    }),
    TypeError,
  );
  await assert.rejects(
    client.startResendingEncryptedMessage({ readCap: kp.readCap, ...env }),
    TypeError,
    "a read needs its index",
  );
  await assert.rejects(
    client.startResendingEncryptedMessage({
      writeCap: kp.writeCap,
      ...env,
      messageCiphertext: new Uint8Array(0),
    }),
    RangeError,
  );
  await assert.rejects(
    client.cancelResendingEncryptedMessage(filled(33)),
    RangeError,
  );
  await assert.rejects(
    client.startResendingCopyCommand(kp.writeCap, {
      courier: { identityHash: filled(16), queueId: utf8("courier") },
    }),
    RangeError,
  );
  await assert.rejects(
    client.createCourierEnvelopesFromTombstoneRange(
      kp.writeCap,
      kp.firstMessageIndex,
      -1,
      true,
      true,
      null,
    ),
    RangeError,
  );
  await assert.rejects(
    client.createCourierEnvelopesFromMultiPayload([], true, true, null),
    RangeError,
  );
  await assert.rejects(
    client.tombstoneRange(kp.writeCap, kp.firstMessageIndex, 1.5),
    RangeError,
  );
  await assert.rejects(
    client.request({ kind: "get_directory_authorities", queryId: filled(15) }),
    RangeError,
  );
  // A cap object whose bytes were tampered with, and raw requests with bad
  // lengths, would make the daemon drop the connection: refused locally.
  const forged = Object.create(WriteCap.prototype) as WriteCap;
  Object.defineProperty(forged, "bytes", { value: filled(10) });
  await assert.rejects(
    client.encryptWrite(utf8("x"), forged, kp.firstMessageIndex),
    RangeError,
  );
  await assert.rejects(
    client.request({
      kind: "encrypt_read",
      queryId: client.newQueryId(),
      readCap: filled(10),
      messageBoxIndex: kp.firstMessageIndex.bytes,
    }),
    /readCap: length 10 is not 136 bytes/,
  );
  await assert.rejects(
    client.request({
      kind: "create_courier_envelopes_from_multi_payload",
      queryId: client.newQueryId(),
      destinations: [{
        payload: utf8("x"),
        writeCap: kp.writeCap.bytes,
        startIndex: filled(103),
      }],
      isStart: true,
      isLast: true,
      buffer: null,
    }),
    RangeError,
  );
  assert.equal(fake.received.length, before, "nothing reached the daemon");
  assert.equal(fake.connectionCount, 1, "the connection is intact");
});

Deno.test("ThinClient.encryptWrite() refuses plaintext over maxPlaintextPayloadLength locally", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const kp = await client.newKeypair(filled(32, 3));
  const max = client.pigeonholeGeometry.maxPlaintextPayloadLength;
  const before = fake.received.length;
  await assert.rejects(
    client.encryptWrite(
      new Uint8Array(max + 1),
      kp.writeCap,
      kp.firstMessageIndex,
    ),
    (err: unknown) => {
      assert.ok(err instanceof PayloadTooLargeError);
      assert.equal(err.size, max + 1);
      assert.equal(err.limit, max);
      return true;
    },
  );
  assert.equal(fake.received.length, before);
  await write(client, kp, kp.firstMessageIndex, filled(max, 0x41));
  assert.equal(
    (await read(client, kp.readCap, kp.firstMessageIndex))!.length,
    max,
  );
});

// ---------------------------------------------------------------------------
// Reads and writes

Deno.test("ThinClient writes a box and reads it back through the daemon", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const kp = await client.newKeypair(filled(32, 4));
  const env = await client.encryptWrite(
    utf8("hello box"),
    kp.writeCap,
    kp.firstMessageIndex,
  );
  assert.equal(env.envelopeHash.length, 32);
  assert.deepEqual(
    env.nextMessageBoxIndex.bytes,
    fakeNextIndex(kp.firstMessageIndex.bytes),
  );
  const w = await client.startResendingEncryptedMessage({
    writeCap: kp.writeCap,
    ...env,
  });
  assert.equal(w.plaintext, null);
  const courier = client.getService("courier");
  assert.deepEqual(w.courierIdentityHash, courier.destinationIdHash);
  assert.deepEqual(w.courierQueueId, utf8("courier"));
  const box = fake.getBox(kp.readCap.bytes, kp.firstMessageIndex.bytes);
  assert.deepEqual(box, { tombstone: false, plaintext: utf8("hello box") });
  const startReq = await fake.waitForRequest(
    "start_resending_encrypted_message",
  );
  assert.deepEqual(startReq.body["write_cap"], kp.writeCap.bytes);
  assert.equal(startReq.body["read_cap"], null);
  assert.deepEqual(startReq.body["envelope_hash"], env.envelopeHash);
  // Read it with the read cap only (another party).
  const text = ReadCap.fromText(kp.readCap.toText());
  const got = await read(client, text, kp.firstMessageIndex);
  assert.equal(fromUtf8(got!), "hello box");
  const readReq = await fake.waitForRequest(
    "start_resending_encrypted_message",
  );
  assert.deepEqual(readReq.body["read_cap"], kp.readCap.bytes);
  assert.deepEqual(
    readReq.body["message_box_index"],
    kp.firstMessageIndex.bytes,
  );
  assert.equal(readReq.body["write_cap"], null);
  // A second box via the returned next index.
  await write(client, kp, env.nextMessageBoxIndex, "second");
  assert.equal(
    fromUtf8((await read(client, kp.readCap, env.nextMessageBoxIndex))!),
    "second",
  );
});

Deno.test("ThinClient read of an unwritten box waits until it is written", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const kp = await client.newKeypair(filled(32, 5));
  const reading = read(client, kp.readCap, kp.firstMessageIndex);
  await fake.waitForRequest("start_resending_encrypted_message");
  assert.equal(await stateOf(reading), "pending");
  await write(client, kp, kp.firstMessageIndex, "eventually");
  assert.equal(fromUtf8((await within(reading, 1000, "read"))!), "eventually");
});

Deno.test("ThinClient noRetryOnBoxIdNotFound turns an unwritten box into ReplicaError 1", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const kp = await client.newKeypair(filled(32, 6));
  const p = read(client, kp.readCap, kp.firstMessageIndex, {
    noRetryOnBoxIdNotFound: true,
  });
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ReplicaError);
    assert.equal(err.code, 1);
    assert.match(err.message, /box not found/);
    assert.equal(isExpectedOutcome(err), true);
    return true;
  });
  const req = await fake.waitForRequest("start_resending_encrypted_message");
  assert.equal(req.body["no_retry_on_box_id_not_found"], true);
  assert.equal("no_idempotent_box_already_exists" in req.body, false);
});

Deno.test("ThinClient noIdempotentBoxAlreadyExists turns a rewrite into ReplicaError 10", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const kp = await client.newKeypair(filled(32, 7));
  await write(client, kp, kp.firstMessageIndex, "first");
  // Without the flag a rewrite is reported as success (idempotent).
  await write(client, kp, kp.firstMessageIndex, "other");
  assert.equal(
    await replicaCode(
      write(client, kp, kp.firstMessageIndex, "other", {
        noIdempotentBoxAlreadyExists: true,
      }),
    ),
    10,
  );
  const reqs = receivedOf(fake, "start_resending_encrypted_message");
  assert.equal(reqs.at(-1)!.body["no_idempotent_box_already_exists"], true);
  assert.equal("no_idempotent_box_already_exists" in reqs[0]!.body, false);
  assert.equal(
    fromUtf8((await read(client, kp.readCap, kp.firstMessageIndex))!),
    "first",
  );
});

Deno.test("ThinClient.tombstoneRange() deletes boxes; reads then give ReplicaError 11", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const kp = await client.newKeypair(filled(32, 8));
  const second = await write(client, kp, kp.firstMessageIndex, "one");
  const third = await write(client, kp, second, "two");
  const range = await client.tombstoneRange(
    kp.writeCap,
    kp.firstMessageIndex,
    2,
  );
  assert.equal(range.envelopes.length, 2);
  assert.ok(range.envelopes[0]!.messageBoxIndex.equals(kp.firstMessageIndex));
  assert.ok(range.envelopes[1]!.messageBoxIndex.equals(second));
  assert.ok(range.next.equals(third));
  const writes = receivedOf(fake, "encrypt_write").slice(-2);
  for (const w of writes) {
    assert.deepEqual(w.body["plaintext"], new Uint8Array(0));
  }
  for (const env of range.envelopes) {
    await client.startResendingEncryptedMessage({
      writeCap: kp.writeCap,
      ...env,
    });
  }
  for (const index of [kp.firstMessageIndex, second]) {
    await assert.rejects(read(client, kp.readCap, index), (err: unknown) => {
      assert.ok(err instanceof ReplicaError);
      assert.equal(err.code, 11);
      assert.equal(isExpectedOutcome(err), true);
      return true;
    });
  }
});

Deno.test("ThinClient.tombstoneRange() with 0 boxes sends nothing", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const kp = await client.newKeypair(filled(32, 9));
  const before = fake.received.length;
  const range = await client.tombstoneRange(
    kp.writeCap,
    kp.firstMessageIndex,
    0,
  );
  assert.deepEqual(range.envelopes, []);
  assert.ok(range.next.equals(kp.firstMessageIndex));
  assert.equal(fake.received.length, before);
});

// ---------------------------------------------------------------------------
// Copy streams

Deno.test("ThinClient copies a payload through a temporary stream with a copy command", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const dest = await client.newKeypair(filled(32, 10));
  const temp = await client.newKeypair(filled(32, 11));
  const chunk = client.pigeonholeGeometry.maxPlaintextPayloadLength - 4;
  const payload = Uint8Array.from({ length: chunk + 10 }, (_, i) => i % 251);
  const built = await client.createCourierEnvelopesFromPayload(
    payload,
    dest.writeCap,
    dest.firstMessageIndex,
    true,
    true,
  );
  assert.ok(built.envelopes.length >= 2);
  const destSecond = fakeNextIndex(dest.firstMessageIndex.bytes)!;
  assert.deepEqual(built.nextDestIndex.bytes, fakeNextIndex(destSecond));
  await writeElements(client, temp, built.envelopes);
  await client.startResendingCopyCommand(temp.writeCap);
  const first = await read(client, dest.readCap, dest.firstMessageIndex);
  const second = await read(
    client,
    dest.readCap,
    new MessageBoxIndex(destSecond),
  );
  const joined = new Uint8Array([...first!, ...second!]);
  assert.deepEqual(joined, payload);
  // The temporary stream was tombstoned by the courier.
  assert.equal(
    await replicaCode(read(client, temp.readCap, temp.firstMessageIndex)),
    11,
  );
  const req = await fake.waitForRequest("start_resending_copy_command");
  assert.deepEqual(req.body["write_cap"], temp.writeCap.bytes);
  assert.equal("courier_identity_hash" in req.body, false);
});

Deno.test("ThinClient.startResendingCopyCommand() sends a courier pin", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const dest = await client.newKeypair(filled(32, 12));
  const temp = await client.newKeypair(filled(32, 13));
  const built = await client.createCourierEnvelopesFromPayload(
    utf8("pinned"),
    dest.writeCap,
    dest.firstMessageIndex,
    true,
    true,
  );
  await writeElements(client, temp, built.envelopes);
  const courier = client.getService("courier");
  await client.startResendingCopyCommand(temp.writeCap, {
    courier: {
      identityHash: courier.destinationIdHash,
      queueId: courier.recipientQueueId,
    },
  });
  const req = await fake.waitForRequest("start_resending_copy_command");
  assert.deepEqual(
    req.body["courier_identity_hash"],
    courier.destinationIdHash,
  );
  assert.deepEqual(req.body["courier_queue_id"], courier.recipientQueueId);
  assert.equal(
    fromUtf8((await read(client, dest.readCap, dest.firstMessageIndex))!),
    "pinned",
  );
});

Deno.test("ThinClient multi-payload builder carries its buffer across calls", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const a = await client.newKeypair(filled(32, 14));
  const b = await client.newKeypair(filled(32, 15));
  const temp = await client.newKeypair(filled(32, 16));
  const one = await client.createCourierEnvelopesFromMultiPayload(
    [{
      payload: utf8("to A"),
      writeCap: a.writeCap,
      startIndex: a.firstMessageIndex,
    }],
    true,
    false,
    null,
  );
  assert.ok(one.buffer instanceof Uint8Array, "a buffer while not last");
  assert.equal(one.nextDestIndices.length, 1);
  assert.deepEqual(
    one.nextDestIndices[0]!.bytes,
    fakeNextIndex(a.firstMessageIndex.bytes),
  );
  const two = await client.createCourierEnvelopesFromMultiPayload(
    [{
      payload: utf8("to B"),
      writeCap: b.writeCap,
      startIndex: b.firstMessageIndex,
    }],
    false,
    true,
    one.buffer,
  );
  assert.equal(two.buffer, null, "no buffer after the last call");
  const calls = receivedOf(fake, "create_courier_envelopes_from_multi_payload");
  assert.equal(calls[0]!.body["buffer"], null);
  assert.deepEqual(calls[1]!.body["buffer"], one.buffer);
  await writeElements(client, temp, [...one.envelopes, ...two.envelopes]);
  await client.startResendingCopyCommand(temp.writeCap);
  assert.equal(
    fromUtf8((await read(client, a.readCap, a.firstMessageIndex))!),
    "to A",
  );
  assert.equal(
    fromUtf8((await read(client, b.readCap, b.firstMessageIndex))!),
    "to B",
  );
});

Deno.test("ThinClient tombstone-range builder deletes destination boxes through a copy", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const dest = await client.newKeypair(filled(32, 17));
  const temp = await client.newKeypair(filled(32, 18));
  const second = await write(client, dest, dest.firstMessageIndex, "x");
  await write(client, dest, second, "y");
  const one = await client.createCourierEnvelopesFromTombstoneRange(
    dest.writeCap,
    dest.firstMessageIndex,
    1,
    true,
    false,
    null,
  );
  assert.ok(one.nextDestIndex.equals(second));
  const two = await client.createCourierEnvelopesFromTombstoneRange(
    dest.writeCap,
    second,
    1,
    false,
    true,
    one.buffer,
  );
  assert.equal(two.buffer, null);
  await writeElements(client, temp, [...one.envelopes, ...two.envelopes]);
  await client.startResendingCopyCommand(temp.writeCap);
  for (const index of [dest.firstMessageIndex, second]) {
    assert.equal(await replicaCode(read(client, dest.readCap, index)), 11);
  }
  const zero = await client.createCourierEnvelopesFromTombstoneRange(
    dest.writeCap,
    dest.firstMessageIndex,
    0,
    true,
    true,
    null,
  );
  assert.deepEqual(zero.envelopes, []);
  assert.ok(zero.nextDestIndex.equals(dest.firstMessageIndex));
});

Deno.test("ThinClient copy onto an occupied box fails with CopyCommandError", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const dest = await client.newKeypair(filled(32, 19));
  const temp = await client.newKeypair(filled(32, 20));
  await write(client, dest, dest.firstMessageIndex, "taken");
  const built = await client.createCourierEnvelopesFromPayload(
    utf8("mine"),
    dest.writeCap,
    dest.firstMessageIndex,
    true,
    true,
  );
  await writeElements(client, temp, built.envelopes);
  await assert.rejects(
    client.startResendingCopyCommand(temp.writeCap),
    (err: unknown) => {
      assert.ok(err instanceof CopyCommandError);
      assert.ok(err instanceof DaemonError);
      assert.equal(err.code, 26);
      assert.equal(err.replicaCode, 10);
      assert.equal(err.failedEnvelopeIndex, 1n);
      assert.match(
        err.message,
        /box already exists \(failed envelope index 1\)/,
      );
      return true;
    },
  );
});

// ---------------------------------------------------------------------------
// Vouchers

Deno.test("ThinClient vouchers round trip through mint, derive, induct and open", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const joiner = await client.newKeypair(filled(32, 21));
  const minted = await client.voucherMint(joiner.writeCap, "alice");
  assert.equal(minted.voucher.length, 32);
  const derived = await client.voucherDeriveStream(minted.voucher);
  assert.deepEqual(derived.voucherReadCap.bytes, minted.voucherReadCap.bytes);
  assert.deepEqual(derived.voucherWriteCap.bytes, minted.voucherWriteCap.bytes);
  const inducted = await client.voucherInduct(
    minted.voucher,
    minted.voucherPayload,
    utf8("welcome"),
  );
  assert.equal(inducted.displayName, "alice");
  assert.deepEqual(inducted.voucherReadCap.bytes, minted.voucherReadCap.bytes);
  const opened = await client.voucherOpen(
    minted.voucherSecretKey,
    inducted.sealedReply,
    joiner.writeCap,
  );
  assert.equal(fromUtf8(opened.whoReply), "welcome");
  assert.deepEqual(opened.salt, inducted.salt);
  // The salted write cap pairs with the inductor's salted read cap: a box
  // written with one reads with the other.
  const pair: Keypair = {
    writeCap: opened.mutatedMessageWriteCap,
    readCap: inducted.mutatedMessageReadCap,
    firstMessageIndex: joiner.firstMessageIndex,
  };
  await write(client, pair, joiner.firstMessageIndex, "salted");
  assert.equal(
    fromUtf8(
      (await read(
        client,
        inducted.mutatedMessageReadCap,
        joiner.firstMessageIndex,
      ))!,
    ),
    "salted",
  );
  const mint = await fake.waitForRequest("voucher_mint");
  assert.equal(mint.body["display_name"], "alice");
});

Deno.test("ThinClient voucher failures map to DaemonError 28 and 30", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const joiner = await client.newKeypair(filled(32, 22));
  const minted = await client.voucherMint(joiner.writeCap, "bob");
  const tampered = minted.voucherPayload.slice();
  tampered[tampered.length - 1]! ^= 1;
  await assert.rejects(
    client.voucherInduct(minted.voucher, tampered, utf8("r")),
    (err: unknown) => {
      assert.ok(err instanceof DaemonError);
      assert.equal(err.code, 28);
      assert.equal(err.operation, "voucher_induct");
      assert.match(err.message, /does not hash to the voucher/);
      return true;
    },
  );
  const inducted = await client.voucherInduct(
    minted.voucher,
    minted.voucherPayload,
    utf8("r"),
  );
  const other = await client.voucherMint(joiner.writeCap, "eve");
  await assert.rejects(
    client.voucherOpen(
      other.voucherSecretKey,
      inducted.sealedReply,
      joiner.writeCap,
    ),
    (err: unknown) => {
      assert.ok(err instanceof DaemonError);
      assert.equal(err.code, 30);
      assert.match(err.message, /could not be opened/);
      return true;
    },
  );
});

// ---------------------------------------------------------------------------
// Capabilities as text

Deno.test("ReadCap.toText() round trips and fromText() rejects damaged text", () => {
  const cap = new ReadCap(fakeKeypair(filled(32, 23)).readCap);
  const text = cap.toText();
  assert.match(text, /^kprc1[A-Za-z0-9_-]+$/);
  assert.deepEqual(ReadCap.fromText(`  ${text}\n`).bytes, cap.bytes);
  const i = 20;
  const flipped = text.slice(0, i) + (text[i] === "A" ? "B" : "A") +
    text.slice(i + 1);
  assert.throws(() => ReadCap.fromText(flipped), /checksum mismatch/);
  assert.throws(() => ReadCap.fromText(text.slice(0, -2)), TypeError);
  assert.throws(() => ReadCap.fromText("kprd1" + text.slice(5)), /kprc1/);
  assert.throws(() => ReadCap.fromText(text + "!"), TypeError);
  assert.equal(String(new WriteCap(filled(168, 1))), "WriteCap(<secret>)");
  assert.equal(
    JSON.stringify({ c: new WriteCap(filled(168, 1)) }),
    '{"c":"WriteCap(<secret>)"}',
  );
});

// ---------------------------------------------------------------------------
// Error codes

Deno.test("ThinClient maps every thin error code 1-32 to a DaemonError with code and text", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  for (let code = 1; code <= 32; code++) {
    fake.script("new_keypair", code, { times: 1 });
    await assert.rejects(client.newKeypair(filled(32, 1)), (err: unknown) => {
      assert.ok(err instanceof DaemonError, `code ${code}`);
      assert.equal(err.name, "DaemonError");
      assert.equal(err.code, code);
      assert.equal(err.operation, "new_keypair");
      assert.ok(err.message.includes(thinErrorText(code)), err.message);
      assert.ok(err.message.includes(`code ${code}`), err.message);
      assert.equal(isExpectedOutcome(err), false);
      return true;
    });
  }
  fake.script("new_keypair", 200, { times: 1 });
  await assert.rejects(
    client.newKeypair(filled(32, 1)),
    /Unknown thin client error code: 200/,
  );
  // Every other typed method checks the code too.
  const kp = await client.newKeypair(filled(32, 2));
  const checks: [FakeRequestKind, () => Promise<unknown>][] = [
    [
      "encrypt_read",
      () => client.encryptRead(kp.readCap, kp.firstMessageIndex),
    ],
    [
      "encrypt_write",
      () => client.encryptWrite(utf8("x"), kp.writeCap, kp.firstMessageIndex),
    ],
    [
      "next_message_box_index",
      () => client.nextMessageBoxIndex(kp.firstMessageIndex),
    ],
    [
      "get_message_box_index_counter",
      () => client.getMessageBoxIndexCounter(kp.firstMessageIndex),
    ],
    [
      "cancel_resending_encrypted_message",
      () => client.cancelResendingEncryptedMessage(filled(32, 1)),
    ],
    [
      "cancel_resending_copy_command",
      () => client.cancelResendingCopyCommand(kp.writeCap),
    ],
    [
      "create_courier_envelopes_from_payload",
      () =>
        client.createCourierEnvelopesFromPayload(
          utf8("x"),
          kp.writeCap,
          kp.firstMessageIndex,
          true,
          true,
        ),
    ],
    ["voucher_derive_stream", () => client.voucherDeriveStream(filled(32, 1))],
  ];
  for (const [kind, call] of checks) {
    fake.script(kind, 4, { times: 1 });
    await assert.rejects(call(), (err: unknown) => {
      assert.ok(err instanceof DaemonError, kind);
      assert.equal(err.code, 4);
      assert.equal(err.operation, kind);
      return true;
    });
  }
});

async function startWith(fake: Fake, client: ThinClient, code: number) {
  const kp = await client.newKeypair(filled(32, 30));
  const env = await client.encryptWrite(
    utf8("x"),
    kp.writeCap,
    kp.firstMessageIndex,
  );
  fake.script("start_resending_encrypted_message", code, { times: 1 });
  return client.startResendingEncryptedMessage({
    writeCap: kp.writeCap,
    ...env,
  });
}

Deno.test("ThinClient maps start_resending codes: 1-11 ReplicaError, 24 CancelledError, others DaemonError", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  for (let code = 1; code <= 11; code++) {
    await assert.rejects(startWith(fake, client, code), (err: unknown) => {
      assert.ok(err instanceof ReplicaError, `code ${code}: ${err}`);
      assert.equal(err.name, "ReplicaError");
      assert.equal(err.code, code);
      assert.ok(err.message.includes(replicaErrorText(code)), err.message);
      assert.equal(
        isExpectedOutcome(err),
        code === 1 || code === 10 || code === 11,
      );
      return true;
    });
  }
  await assert.rejects(startWith(fake, client, 24), (err: unknown) => {
    assert.ok(err instanceof CancelledError);
    assert.ok(err instanceof DaemonError);
    assert.equal(err.code, 24);
    assert.equal(isExpectedOutcome(err), false);
    return true;
  });
  for (const code of [12, 13, 22, 23, 25, 31, 32]) {
    await assert.rejects(startWith(fake, client, code), (err: unknown) => {
      assert.ok(err instanceof DaemonError, `code ${code}`);
      assert.ok(!(err instanceof ReplicaError));
      assert.ok(!(err instanceof CancelledError));
      assert.equal(err.code, code);
      assert.equal(err.operation, "start_resending_encrypted_message");
      assert.ok(err.message.includes(thinErrorText(code)), err.message);
      return true;
    });
  }
  assert.equal(isExpectedOutcome(new ThinClientError("x")), false);
  assert.equal(isExpectedOutcome(null), false);
});

Deno.test("ThinClient maps copy command code 26 to CopyCommandError with the replica detail", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const temp = await client.newKeypair(filled(32, 31));
  fake.script("start_resending_copy_command", {
    errorCode: 26,
    fields: {
      "replica_error_code": 9,
      "failed_envelope_index": 2n ** 60n + 3n,
    },
  }, { times: 1 });
  await assert.rejects(
    client.startResendingCopyCommand(temp.writeCap),
    (err: unknown) => {
      assert.ok(err instanceof CopyCommandError);
      assert.equal(err.code, 26);
      assert.equal(err.replicaCode, 9);
      assert.equal(err.failedEnvelopeIndex, 2n ** 60n + 3n);
      assert.match(err.message, /replication failed/);
      return true;
    },
  );
  fake.script("start_resending_copy_command", 26, { times: 1 });
  await assert.rejects(
    client.startResendingCopyCommand(temp.writeCap),
    (err: unknown) => {
      assert.ok(err instanceof CopyCommandError);
      assert.equal(err.replicaCode, 0);
      assert.equal(err.failedEnvelopeIndex, 0n);
      assert.match(err.message, /no replica reply/);
      return true;
    },
  );
  for (
    const [code, type] of [[24, CancelledError], [4, DaemonError]] as const
  ) {
    fake.script("start_resending_copy_command", code, { times: 1 });
    await assert.rejects(
      client.startResendingCopyCommand(temp.writeCap),
      (err: unknown) => {
        assert.ok(err instanceof type);
        assert.ok(!(err instanceof CopyCommandError));
        assert.equal((err as DaemonError).code, code);
        return true;
      },
    );
  }
});
