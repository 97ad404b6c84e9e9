/**
 * Pigeonhole against the real kpclientd, couriers and replicas of the local
 * mixnet. Each operation costs seconds of CPU (CTIDH1024), so each behaviour
 * is proven with as few operations as possible.
 */
import assert from "node:assert/strict";
import {
  CancelledError,
  type MessageBoxIndex,
  readBox,
  type ReadCap,
  ReplicaError,
  ReplicaErrorCode,
  type ThinClient,
  type WriteCap,
} from "../../mod.ts";
import { connectReal, dec, enc, itest, within } from "./_mixnet.ts";

/** This file's daemon (the test files run in parallel, one daemon each). */
const DAEMON = "ws";

async function write(
  client: ThinClient,
  writeCap: WriteCap,
  index: MessageBoxIndex,
  data: Uint8Array,
  options: { noIdempotentBoxAlreadyExists?: boolean } = {},
): Promise<MessageBoxIndex> {
  const env = await client.encryptWrite(data, writeCap, index, {
    signal: within(60),
  });
  await client.startResendingEncryptedMessage({ writeCap, ...env }, {
    signal: within(300),
    ...options,
  });
  return env.nextMessageBoxIndex;
}

/**
 * Reads a box: once (the daemon's raw answer) with `noRetryOnBoxIdNotFound`,
 * else through readBox, which waits for a box that has not reached the
 * replicas yet (the daemon's own wait can go blind; see docs/protocol.md). A
 * tombstone is a ReplicaError, as the raw call reports it.
 */
async function read(
  client: ThinClient,
  readCap: ReadCap,
  index: MessageBoxIndex,
  options: { noRetryOnBoxIdNotFound?: boolean; signal?: AbortSignal } = {},
): Promise<Uint8Array> {
  const signal = options.signal ?? within(300);
  if (options.noRetryOnBoxIdNotFound !== true) {
    const box = await readBox(client, readCap, index, { signal });
    if (box.kind === "tombstone") {
      throw new ReplicaError(ReplicaErrorCode.Tombstone);
    }
    return box.kind === "data" ? box.plaintext : new Uint8Array(0);
  }
  const env = await client.encryptRead(readCap, index, { signal: within(60) });
  const r = await client.startResendingEncryptedMessage(
    { readCap, messageBoxIndex: index, ...env },
    { signal, noRetryOnBoxIdNotFound: true },
  );
  return r.plaintext ?? new Uint8Array(0);
}

itest(
  "Pigeonhole on the real mixnet: index helpers and box-not-found with no-retry",
  async () => {
    await using client = await connectReal(DAEMON);
    const { readCap, firstMessageIndex } = await client.newKeypair(undefined, {
      signal: within(30),
    });
    const next = await client.nextMessageBoxIndex(firstMessageIndex, {
      signal: within(30),
    });
    const a = await client.getMessageBoxIndexCounter(firstMessageIndex, {
      signal: within(30),
    });
    const b = await client.getMessageBoxIndexCounter(next, {
      signal: within(30),
    });
    assert.equal(b, a + 1n);
    await assert.rejects(
      read(client, readCap, firstMessageIndex, {
        noRetryOnBoxIdNotFound: true,
      }),
      (err) =>
        err instanceof ReplicaError &&
        err.code === ReplicaErrorCode.BoxIdNotFound,
    );
  },
);

itest(
  "Pigeonhole on the real mixnet: writer and reader clients, already-exists, tombstone",
  async () => {
    await using writer = await connectReal(DAEMON);
    await using reader = await connectReal(DAEMON);
    const { writeCap, readCap, firstMessageIndex } = await writer.newKeypair(
      undefined,
      {
        signal: within(30),
      },
    );
    const text = `box one ${crypto.randomUUID()}`;
    await write(writer, writeCap, firstMessageIndex, enc.encode(text));
    assert.equal(
      dec.decode(await read(reader, readCap, firstMessageIndex)),
      text,
    );

    // Boxes are write-once: other content is refused when the caller asks for the verdict.
    await assert.rejects(
      write(writer, writeCap, firstMessageIndex, enc.encode("other content"), {
        noIdempotentBoxAlreadyExists: true,
      }),
      (err) =>
        err instanceof ReplicaError &&
        err.code === ReplicaErrorCode.BoxAlreadyExists,
    );

    // A tombstone deletes the box; readers see it once it has propagated.
    const { envelopes } = await writer.tombstoneRange(
      writeCap,
      firstMessageIndex,
      1,
      { signal: within(60) },
    );
    assert.equal(envelopes.length, 1);
    await writer.startResendingEncryptedMessage(
      { writeCap, ...envelopes[0]! },
      { signal: within(300) },
    );
    let outcome: unknown = null;
    for (let attempt = 0; attempt < 6; attempt++) {
      try {
        await read(reader, readCap, firstMessageIndex);
        await new Promise((r) => setTimeout(r, 5000));
      } catch (err) {
        outcome = err;
        break;
      }
    }
    assert.ok(
      outcome instanceof ReplicaError,
      `expected a tombstone, got ${outcome}`,
    );
    assert.equal(outcome.code, ReplicaErrorCode.Tombstone);
  },
);

itest(
  "Pigeonhole on the real mixnet: cancel and abort stop a waiting read; readBox() sees a box written long after it started",
  async () => {
    await using client = await connectReal(DAEMON);
    const { writeCap, readCap, firstMessageIndex } = await client.newKeypair(
      undefined,
      { signal: within(30) },
    );

    // Explicit cancel: the daemon answers the waiting start with code 24.
    const env = await client.encryptRead(readCap, firstMessageIndex, {
      signal: within(60),
    });
    const waiting = client.startResendingEncryptedMessage(
      { readCap, messageBoxIndex: firstMessageIndex, ...env },
      { signal: within(300) },
    );
    waiting.catch(() => {}); // an early failure is asserted below, not fatal to the file
    await new Promise((r) => setTimeout(r, 3000));
    await client.cancelResendingEncryptedMessage(env.envelopeHash, {
      signal: within(30),
    });
    await assert.rejects(waiting, (err) => err instanceof CancelledError);

    // Abort: rejects with the reason at once; the client sends the cancel
    // itself (the envelope is made first, so the abort meets the waiting start).
    const again = await client.encryptRead(readCap, firstMessageIndex, {
      signal: within(60),
    });
    const ctl = new AbortController();
    const aborted = client.startResendingEncryptedMessage(
      { readCap, messageBoxIndex: firstMessageIndex, ...again },
      { signal: ctl.signal },
    );
    aborted.catch(() => {});
    await new Promise((r) => setTimeout(r, 1000));
    ctl.abort(new Error("enough"));
    await assert.rejects(aborted, /enough/);

    // readBox() started well before the write sees the box once written. The
    // daemon's own retries could not: they resend one envelope, and the
    // courier stops re-asking the replicas about it after five re-dispatches
    // (a few seconds), answering "not found" from its cache for 5 minutes.
    // readBox() polls with fresh envelopes instead.
    const early = readBox(client, readCap, firstMessageIndex, {
      pollMs: 3000,
      signal: within(300),
    });
    early.catch(() => {});
    await new Promise((r) => setTimeout(r, 8000));
    await write(client, writeCap, firstMessageIndex, enc.encode("late write"));
    const box = await early;
    assert.equal(
      box.kind === "data" && dec.decode(box.plaintext),
      "late write",
    );
  },
);

itest(
  "Pigeonhole on the real mixnet: a multi-box payload through a copy command, read back whole",
  async () => {
    await using client = await connectReal(DAEMON);
    const dest = await client.newKeypair(undefined, { signal: within(30) });
    const temp = await client.newKeypair(undefined, { signal: within(30) });
    const per = client.pigeonholeGeometry.maxPlaintextPayloadLength - 4;
    const payload = new Uint8Array(per + 100);
    crypto.getRandomValues(payload);

    const { envelopes, nextDestIndex } = await client
      .createCourierEnvelopesFromPayload(
        payload,
        dest.writeCap,
        dest.firstMessageIndex,
        true,
        true,
        { signal: within(60) },
      );
    assert.ok(envelopes.length >= 2);
    let tempIndex = temp.firstMessageIndex;
    let lastTemp = tempIndex;
    for (const element of envelopes) {
      lastTemp = tempIndex;
      tempIndex = await write(client, temp.writeCap, tempIndex, element);
    }
    // Gate as upstream does: the whole temporary stream has propagated.
    await read(client, temp.readCap, lastTemp);
    await client.startResendingCopyCommand(temp.writeCap, {
      signal: within(600),
    });

    const parts: Uint8Array[] = [];
    let index = dest.firstMessageIndex;
    while (!index.equals(nextDestIndex)) {
      parts.push(await read(client, dest.readCap, index));
      index = await client.nextMessageBoxIndex(index, { signal: within(30) });
    }
    assert.equal(parts.length, 2);
    const whole = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      whole.set(p, o);
      o += p.length;
    }
    assert.deepEqual(whole, payload);
  },
);

itest("Pigeonhole on the real mixnet: cancelling a copy command", async () => {
  await using client = await connectReal(DAEMON);
  const temp = await client.newKeypair(undefined, { signal: within(30) });
  // Nothing was written to the temporary stream: the courier keeps waiting.
  const copy = client.startResendingCopyCommand(temp.writeCap, {
    signal: within(300),
  });
  copy.catch(() => {}); // asserted below
  await new Promise((r) => setTimeout(r, 3000));
  await client.cancelResendingCopyCommand(temp.writeCap, {
    signal: within(30),
  });
  await assert.rejects(copy, (err) => err instanceof CancelledError);
});

itest(
  "Pigeonhole on the real mixnet: contact voucher round trip between two clients",
  async () => {
    await using joiner = await connectReal(DAEMON);
    await using inductor = await connectReal(DAEMON);
    const mine = await joiner.newKeypair(undefined, { signal: within(30) });
    const minted = await joiner.voucherMint(mine.writeCap, "alice", {
      signal: within(30),
    });
    assert.equal(minted.voucher.length, 32);
    const derived = await inductor.voucherDeriveStream(minted.voucher, {
      signal: within(30),
    });
    assert.deepEqual(derived.voucherReadCap.bytes, minted.voucherReadCap.bytes);
    const who = enc.encode("welcome, from bob");
    const inducted = await inductor.voucherInduct(
      minted.voucher,
      minted.voucherPayload,
      who,
      {
        signal: within(30),
      },
    );
    assert.equal(inducted.displayName, "alice");
    const opened = await joiner.voucherOpen(
      minted.voucherSecretKey,
      inducted.sealedReply,
      mine.writeCap,
      {
        signal: within(30),
      },
    );
    assert.deepEqual(opened.whoReply, who);
    assert.deepEqual(opened.salt, inducted.salt);
    // A payload that does not hash to the voucher is refused (code 28).
    const tampered = minted.voucherPayload.slice();
    tampered[0] = tampered[0]! ^ 0xff;
    await assert.rejects(
      inductor.voucherInduct(minted.voucher, tampered, who, {
        signal: within(30),
      }),
      (err: Error) =>
        err.name === "DaemonError" &&
        [28, 29, 3].includes((err as unknown as { code: number }).code),
    );
  },
);
