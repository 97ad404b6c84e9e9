// The box-level middle layer (lib/boxes.ts, lib/copy_stream.ts) and the
// share text (lib/caps.ts) against the fake daemon's box store.
import assert from "node:assert/strict";
import {
  isConflict,
  readBox,
  writeBox,
  writeBoxes,
  type WriteCursor,
} from "../lib/boxes.ts";
import {
  formatShareText,
  MessageBoxIndex,
  parseShareText,
  ReadCap,
} from "../lib/caps.ts";
import {
  createCopyStream,
  sendCopyStream,
  uploadCopyStream,
} from "../lib/copy_stream.ts";
import {
  CopyCommandError,
  ReplicaError,
  ReplicaErrorCode,
} from "../lib/errors.ts";
import {
  fakeNextIndex,
  type ReceivedRequest,
  type ScriptAction,
} from "../testing/mod.ts";
import { connectTo, filled, sleep, startFake, utf8 } from "./_helpers.ts";

function isWrite(r: ReceivedRequest): boolean {
  return r.kind === "start_resending_encrypted_message" &&
    r.body["write_cap"] instanceof Uint8Array;
}

function nextOf(index: MessageBoxIndex, steps = 1): MessageBoxIndex {
  return new MessageBoxIndex(fakeNextIndex(index.bytes, steps)!);
}

Deno.test("readBox() tells data, tombstone and empty boxes apart", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const kp = await client.newKeypair(filled(32, 1));
  const first = kp.firstMessageIndex;
  const empty = await readBox(client, kp.readCap, first, { noRetry: true });
  assert.equal(empty.kind, "empty");
  assert.ok(empty.next.equals(nextOf(first)));

  const next = await writeBox(client, kp.writeCap, first, utf8("hello"));
  assert.ok(next.equals(nextOf(first)));
  const data = await readBox(client, kp.readCap, first);
  assert.equal(data.kind, "data");
  assert.deepEqual(data.kind === "data" && data.plaintext, utf8("hello"));

  await writeBox(client, kp.writeCap, next, new Uint8Array(0)); // tombstone
  const gone = await readBox(client, kp.readCap, next, { noRetry: true });
  assert.equal(gone.kind, "tombstone");
  assert.ok(gone.next.equals(nextOf(first, 2)));
});

Deno.test("readBox() waits for an unwritten box with fresh no-retry reads, every pollMs", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const kp = await client.newKeypair(filled(32, 4));
  const at = kp.firstMessageIndex;
  const isRead = (r: ReceivedRequest) =>
    r.kind === "start_resending_encrypted_message" && !isWrite(r);
  const waiting = readBox(client, kp.readCap, at, { pollMs: 20 });
  const deadline = Date.now() + 5000;
  while (fake.received.filter(isRead).length < 3) {
    assert.ok(Date.now() < deadline, "readBox() did not read again");
    await sleep(5);
  }
  await writeBox(client, kp.writeCap, at, utf8("late"));
  const box = await waiting;
  assert.deepEqual(box.kind === "data" && box.plaintext, utf8("late"));
  const reads = fake.received.filter(isRead);
  assert.ok(reads.length >= 4, `${reads.length} reads`);
  // Each read is its own envelope, and none leaves the waiting to the daemon.
  assert.ok(
    reads.every((r) => r.body["no_retry_on_box_id_not_found"] === true),
  );
  const hashes = new Set(reads.map((r) => String(r.body["envelope_hash"])));
  assert.equal(hashes.size, reads.length);
});

Deno.test("readBox() stops waiting on abort, and refuses a bad pollMs", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const kp = await client.newKeypair(filled(32, 5));
  const reason = new Error("stop waiting");
  const controller = new AbortController();
  const waiting = readBox(client, kp.readCap, kp.firstMessageIndex, {
    pollMs: 60_000,
    signal: controller.signal,
  });
  await fake.waitForRequest("start_resending_encrypted_message");
  await sleep(20); // now between two reads
  controller.abort(reason);
  await assert.rejects(waiting, (err) => err === reason);
  for (const pollMs of [0, -1, Number.NaN, Infinity]) {
    await assert.rejects(
      readBox(client, kp.readCap, kp.firstMessageIndex, { pollMs }),
      RangeError,
    );
  }
});

Deno.test("readBox() rethrows replica failures other than not found and tombstone", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const kp = await client.newKeypair(filled(32, 2));
  fake.script("start_resending_encrypted_message", 7, { times: 1 });
  await assert.rejects(
    readBox(client, kp.readCap, kp.firstMessageIndex, { noRetry: true }),
    (err) => err instanceof ReplicaError && err.code === 7,
  );
});

Deno.test("writeBox() with confirm reports a conflict; without, the flag is not sent", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const kp = await client.newKeypair(filled(32, 3));
  const at = kp.firstMessageIndex;
  await writeBox(client, kp.writeCap, at, utf8("one"));
  assert.notEqual(
    fake.received.findLast(isWrite)!.body["no_idempotent_box_already_exists"],
    true,
  );
  // The same bytes again: an idempotent success, even confirmed.
  await writeBox(client, kp.writeCap, at, utf8("one"), { confirm: true });
  assert.equal(
    fake.received.findLast(isWrite)!.body["no_idempotent_box_already_exists"],
    true,
  );
  const err = await writeBox(client, kp.writeCap, at, utf8("two"), {
    confirm: true,
  }).then(() => null, (e) => e);
  assert.ok(err instanceof ReplicaError);
  assert.equal(isConflict(err), true);
});

Deno.test("isConflict() matches box-exists replica and copy errors only", () => {
  const exists = ReplicaErrorCode.BoxAlreadyExists;
  assert.equal(isConflict(new ReplicaError(exists)), true);
  assert.equal(isConflict(new CopyCommandError(exists, 2n)), true);
  assert.equal(isConflict(new ReplicaError(ReplicaErrorCode.Tombstone)), false);
  assert.equal(isConflict(new CopyCommandError(0, 1n)), false);
  assert.equal(isConflict(new Error("box already exists")), false);
  assert.equal(isConflict(undefined), false);
});

Deno.test("writeBoxes() writes in order with a bounded window and moves the cursor", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const kp = await client.newKeypair(filled(32, 4));
  let active = 0;
  let most = 0;
  fake.script("start_resending_encrypted_message", async (req) => {
    if (!isWrite(req)) return "default" as const;
    active++;
    most = Math.max(most, active);
    await sleep(5);
    active--;
    return "default" as const;
  });
  const acks: number[] = [];
  const cursor: WriteCursor = {
    low: 0,
    lowIndex: kp.firstMessageIndex,
    ahead: new Set(),
  };
  const r = await writeBoxes(
    client,
    kp.writeCap,
    cursor,
    10,
    (k) => utf8(`box ${k}`),
    { window: 3, onAck: (k) => acks.push(k) },
  );
  assert.ok(most <= 3 && most >= 2, `at most 3 in flight, saw ${most}`);
  assert.deepEqual(acks.toSorted((a, b) => a - b), [...Array(10).keys()]);
  assert.equal(cursor.low, 10);
  assert.equal(cursor.ahead.size, 0);
  assert.ok(r.next.equals(nextOf(kp.firstMessageIndex, 10)));
  assert.ok(r.last!.equals(nextOf(kp.firstMessageIndex, 9)));
  fake.script("start_resending_encrypted_message", null);
  let index = kp.firstMessageIndex;
  for (let k = 0; k < 10; k++) {
    const box = await readBox(client, kp.readCap, index);
    assert.deepEqual(box.kind === "data" && box.plaintext, utf8(`box ${k}`));
    index = box.next;
  }
});

Deno.test("writeBoxes() resumes from a cursor, skipping boxes already acknowledged", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const kp = await client.newKeypair(filled(32, 5));
  const cursor: WriteCursor = {
    low: 2,
    lowIndex: nextOf(kp.firstMessageIndex, 2),
    ahead: new Set([3, 5]),
  };
  const asked: number[] = [];
  const r = await writeBoxes(client, kp.writeCap, cursor, 6, (k) => {
    asked.push(k);
    return utf8(`box ${k}`);
  });
  assert.deepEqual(asked, [2, 4]);
  assert.equal(cursor.low, 6);
  assert.ok(r.next.equals(nextOf(kp.firstMessageIndex, 6)));
  assert.ok(r.last!.equals(nextOf(kp.firstMessageIndex, 5)));
  const box4 = await readBox(
    client,
    kp.readCap,
    nextOf(kp.firstMessageIndex, 4),
  );
  assert.deepEqual(box4.kind === "data" && box4.plaintext, utf8("box 4"));
});

Deno.test("writeBoxes() stops at the first failure and cancels the rest", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const kp = await client.newKeypair(filled(32, 6));
  let writes = 0;
  fake.script("start_resending_encrypted_message", (req): ScriptAction => {
    if (!isWrite(req)) return "default";
    writes++;
    return writes === 3 ? 7 : writes > 3 ? "none" : "default";
  });
  await assert.rejects(
    writeBoxes(
      client,
      kp.writeCap,
      kp.firstMessageIndex,
      50,
      (k) => utf8(`box ${k}`),
      { window: 4 },
    ),
    (err) => err instanceof ReplicaError && err.code === 7,
  );
  assert.ok(writes < 50, `stopped early, after ${writes} writes`);
});

Deno.test("writeBoxes() confirms the first box with confirm 'first' and rejects a bad window", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const kp = await client.newKeypair(filled(32, 7));
  await writeBoxes(
    client,
    kp.writeCap,
    kp.firstMessageIndex,
    3,
    (k) => utf8(`box ${k}`),
    { confirm: "first", window: 1 },
  );
  const flags = fake.received.filter(isWrite).map((r) =>
    r.body["no_idempotent_box_already_exists"] === true
  );
  assert.deepEqual(flags, [true, false, false]);
  await assert.rejects(
    writeBoxes(client, kp.writeCap, kp.firstMessageIndex, 1, () => utf8("x"), {
      window: 0,
    }),
    RangeError,
  );
});

Deno.test("writeBoxes() rejects with the signal's reason when aborted", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const kp = await client.newKeypair(filled(32, 8));
  fake.script("start_resending_encrypted_message", "none");
  const ctl = new AbortController();
  const reason = new Error("stop");
  fake.waitForRequest("start_resending_encrypted_message").then(() =>
    ctl.abort(reason)
  );
  await assert.rejects(
    writeBoxes(client, kp.writeCap, kp.firstMessageIndex, 5, () => utf8("x"), {
      signal: ctl.signal,
    }),
    (err) => err === reason,
  );
});

Deno.test("createCopyStream() and sendCopyStream() write a payload over several boxes", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const dest = await client.newKeypair(filled(32, 9));
  const max = client.pigeonholeGeometry.maxPlaintextPayloadLength;
  const payload = Uint8Array.from({ length: max * 2 }, (_, i) => i % 253);
  const stream = await createCopyStream(
    client,
    payload,
    dest.writeCap,
    dest.firstMessageIndex,
  );
  assert.equal(stream.destBoxes, 3);
  assert.ok(stream.nextDestIndex.equals(nextOf(dest.firstMessageIndex, 3)));
  const nothing = await readBox(client, dest.readCap, dest.firstMessageIndex, {
    noRetry: true,
  });
  assert.equal(nothing.kind, "empty");
  const temp = await client.newKeypair(filled(32, 10));
  const acks: number[] = [];
  await sendCopyStream(client, temp, stream.elements, {
    onAck: (k) => acks.push(k),
  });
  assert.equal(acks.length, stream.elements.length);
  const parts: number[] = [];
  let index = dest.firstMessageIndex;
  for (let i = 0; i < stream.destBoxes; i++) {
    const box = await readBox(client, dest.readCap, index);
    assert.equal(box.kind, "data");
    if (box.kind === "data") parts.push(...box.plaintext);
    index = box.next;
  }
  assert.deepEqual(new Uint8Array(parts), payload);
  assert.ok((await fake.waitForRequest("start_resending_copy_command")).body);
});

Deno.test("uploadCopyStream() resumes an upload and gates on the recorded last box", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const dest = await client.newKeypair(filled(32, 11));
  const temp = await client.newKeypair(filled(32, 12));
  const payload = new Uint8Array(
    client.pigeonholeGeometry.maxPlaintextPayloadLength * 2,
  ).fill(5);
  const { elements } = await createCopyStream(
    client,
    payload,
    dest.writeCap,
    dest.firstMessageIndex,
  );
  assert.ok(elements.length >= 2);
  // First attempt: every element is written, then "the process dies".
  let lastIndex: MessageBoxIndex | undefined;
  const cursor: WriteCursor = {
    low: 0,
    lowIndex: temp.firstMessageIndex,
    ahead: new Set(),
  };
  await writeBoxes(
    client,
    temp.writeCap,
    cursor,
    elements.length,
    (k) => elements[k]!,
    {
      onAck: (k, at) => {
        if (k === elements.length - 1) lastIndex = at;
      },
    },
  );
  // The resumed upload writes nothing and reads the recorded last box.
  const before = fake.received.length;
  await uploadCopyStream(client, temp, elements, {
    cursor,
    lastIndex: lastIndex!,
  });
  const after = fake.received.slice(before);
  assert.equal(after.filter(isWrite).length, 0);
  const gate = after.find((r) =>
    r.kind === "start_resending_encrypted_message"
  );
  assert.deepEqual(gate?.body["message_box_index"], lastIndex!.bytes);
  await client.startResendingCopyCommand(temp.writeCap);
  const box = await readBox(client, dest.readCap, dest.firstMessageIndex);
  assert.equal(box.kind, "data");
});

Deno.test("formatShareText() and parseShareText() round-trip and catch damage", () => {
  const readCap = new ReadCap(filled(136, 1));
  const startIndex = new MessageBoxIndex(filled(104, 2));
  const text = formatShareText({ readCap, startIndex });
  assert.ok(text.startsWith("kpch1"));
  const back = parseShareText(`  ${text}\n`);
  assert.deepEqual(back.readCap.bytes, readCap.bytes);
  assert.ok(back.startIndex.equals(startIndex));
  const damaged = text.slice(0, 20) + (text[20] === "A" ? "B" : "A") +
    text.slice(21);
  assert.throws(() => parseShareText(damaged), /checksum mismatch/);
  assert.throws(() => parseShareText("kprc1AAAA"), /does not start with/);
  assert.throws(
    () => formatShareText({ readCap, startIndex: readCap as never }),
    TypeError,
  );
});
