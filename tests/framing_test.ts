import assert from "node:assert/strict";
import {
  encodeFrame,
  FrameDecoder,
  HANDSHAKE_MAX_FRAME_SIZE,
  MAX_FRAME_SIZE,
  ProtocolError,
  readFrames,
} from "../mod.ts";
import { connectTo, filled, ManualDaemon, within } from "./_helpers.ts";

function frames(...bodies: Uint8Array[]): Uint8Array {
  const parts = bodies.map((b) => encodeFrame(b));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function body(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
}

Deno.test("encodeFrame() writes a 4-byte big-endian length", () => {
  assert.deepEqual(
    encodeFrame(new Uint8Array(0x0102).fill(9)).subarray(0, 4),
    new Uint8Array([0, 0, 1, 2]),
  );
});

Deno.test("encodeFrame() refuses a body over the maximum", () => {
  assert.throws(() => encodeFrame(new Uint8Array(11), 10), RangeError);
});

Deno.test("FrameDecoder reassembles frames split at every byte boundary", () => {
  const bodies = [body(1, 1), body(300, 2), body(0, 3), body(70, 4)];
  const wire = frames(...bodies);
  for (let cut = 0; cut <= wire.length; cut++) {
    const d = new FrameDecoder();
    const got = [
      ...d.push(wire.subarray(0, cut)),
      ...d.push(wire.subarray(cut)),
    ];
    assert.deepEqual(got, bodies, `cut at ${cut}`);
    assert.equal(d.partial, false);
  }
});

Deno.test("FrameDecoder reassembles frames fed one byte at a time and split in three", () => {
  const bodies = [body(5, 1), body(17, 2)];
  const wire = frames(...bodies);
  const d = new FrameDecoder();
  const got: Uint8Array[] = [];
  for (const b of wire) got.push(...d.push(new Uint8Array([b])));
  assert.deepEqual(got, bodies);
  for (let a = 0; a <= wire.length; a += 3) {
    for (let b = a; b <= wire.length; b += 5) {
      const d2 = new FrameDecoder();
      const got2 = [
        ...d2.push(wire.subarray(0, a)),
        ...d2.push(wire.subarray(a, b)),
        ...d2.push(wire.subarray(b)),
      ];
      assert.deepEqual(got2, bodies);
    }
  }
});

Deno.test("FrameDecoder rejects an oversize length before allocating", () => {
  const d = new FrameDecoder();
  const max = MAX_FRAME_SIZE + 1;
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, max);
  assert.throws(() => d.push(header), (err: unknown) => {
    assert.ok(err instanceof ProtocolError);
    assert.match(err.message, /length 41943041 exceeds maximum 41943040/);
    return true;
  });
  assert.throws(
    () => new FrameDecoder().push(new Uint8Array([0xff, 0xff, 0xff, 0xff])),
    ProtocolError,
  );
});

Deno.test("readFrames() yields bodies and fails on a stream that ends mid-frame", async () => {
  const wire = frames(body(10, 1), body(20, 2));
  const chunks = [wire.subarray(0, 7), wire.subarray(7, 8), wire.subarray(8)];
  const got: Uint8Array[] = [];
  for await (const b of readFrames(ReadableStream.from(chunks))) got.push(b);
  assert.deepEqual(got, [body(10, 1), body(20, 2)]);

  const truncated = ReadableStream.from([wire.subarray(0, wire.length - 1)]);
  await assert.rejects(async () => {
    for await (const _ of readFrames(truncated)) { /* drain */ }
  }, /stream ended after 19 of 20 body bytes/);
  const inHeader = ReadableStream.from([new Uint8Array([0, 0])]);
  await assert.rejects(async () => {
    for await (const _ of readFrames(inHeader)) { /* drain */ }
  }, /stream ended after 2 of 4 length bytes/);
});

Deno.test("FrameDecoder.maxFrameSize may change between frames", async () => {
  const decoder = new FrameDecoder(4);
  assert.equal(decoder.maxFrameSize, 4);
  assert.deepEqual(decoder.push(frames(body(4, 1))), [body(4, 1)]);
  assert.throws(
    () => decoder.push(frames(body(5, 1))),
    /length 5 exceeds maximum 4/,
  );
  const raised = new FrameDecoder(4);
  raised.maxFrameSize = 5;
  assert.deepEqual(raised.push(frames(body(5, 2))), [body(5, 2)]);
  // readFrames() takes the decoder itself, so its owner can change the limit.
  const shared = new FrameDecoder(4);
  const it = readFrames(
    ReadableStream.from([frames(body(4, 3), body(6, 3))]),
    shared,
  );
  shared.maxFrameSize = 6;
  const got: Uint8Array[] = [];
  for await (const b of it) got.push(b);
  assert.deepEqual(got, [body(4, 3), body(6, 3)]);
});

/** Status, then a frame header announcing `length`, then nothing. */
async function announce(daemon: ManualDaemon, length: number): Promise<void> {
  await daemon.sendStatus();
  const head = new Uint8Array(4);
  new DataView(head.buffer).setUint32(0, length, false);
  await daemon.sendRaw(head);
}

Deno.test("ThinClient.connect() refuses a frame over 4 MiB before the session token, before reading its body", async () => {
  assert.equal(HANDSHAKE_MAX_FRAME_SIZE, 4 * 1024 * 1024);
  const daemon = new ManualDaemon();
  const connecting = connectTo(daemon.dialer, { reconnect: false });
  await daemon.waitForRequests(0);
  // Only the 4 length bytes are sent: the client must not wait for the body.
  await announce(daemon, HANDSHAKE_MAX_FRAME_SIZE + 1);
  await assert.rejects(
    within(connecting, 5000, "the refusal"),
    (err: unknown) => {
      assert.ok(err instanceof ProtocolError, String(err));
      assert.match(
        err.message,
        /length 4194305 exceeds maximum 4194304 before the session token \(raise the handshakeMaxFrameSize option/,
      );
      assert.ok(err.cause instanceof ProtocolError);
      return true;
    },
  );
  assert.equal(daemon.requests.length, 0, "no session token was sent");
  await daemon.close();
});

Deno.test("ThinClient.connect() takes larger first frames with handshakeMaxFrameSize, and any size after the token", async () => {
  const daemon = new ManualDaemon();
  const connecting = connectTo(daemon.dialer, {
    reconnect: false,
    handshakeMaxFrameSize: 6 * 1024 * 1024,
  });
  await daemon.waitForRequests(0);
  await daemon.sendStatus();
  // A 5 MiB document that does not parse is ignored, as upstream does.
  await daemon.sendDocument(filled(5 * 1024 * 1024, 0x41));
  await daemon.waitForRequests(1);
  assert.equal(daemon.requests[0]![0], "session_token");
  // A resumed session's queued replies may be large: the limit is raised
  // before the token is written.
  await daemon.send("future_event", { "blob": filled(8 * 1024 * 1024) });
  await daemon.send("session_token_reply", {
    "app_id": filled(16, 1),
    "resumed": true,
  });
  const client = await within(connecting, 5000, "the handshake");
  assert.equal(client.resumed, true);
  await client.close();
  await daemon.close();
  // The handshake limit never exceeds maxFrameSize, and both must be positive.
  await assert.rejects(
    connectTo(daemon.dialer, { handshakeMaxFrameSize: 0 }),
    RangeError,
  );
  const small = new ManualDaemon();
  const capped = connectTo(small.dialer, {
    reconnect: false,
    maxFrameSize: 1000,
    handshakeMaxFrameSize: 1_000_000,
  });
  await small.waitForRequests(0);
  await announce(small, 1001);
  await assert.rejects(capped, /exceeds maximum 1000/);
  await small.close();
});
