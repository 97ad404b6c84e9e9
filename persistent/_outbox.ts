/**
 * The sending side of a channel: the outbox. A send reserves its boxes and
 * records its intent in one transaction before anything leaves; the intent
 * is deleted when the write is acknowledged, and a leftover intent is
 * encrypted again for its boxes and sent again (before the next send, or by
 * `resumePending`). Tombstones go through the outbox too.
 *
 * @module
 */
import { bytesEqual, concatBytes } from "../lib/_bytes.ts";
import { abortable, pool } from "../lib/_async.ts";
import type { MessageBoxIndex, WriteCap } from "../lib/caps.ts";
import type { CallOptions } from "../lib/client.ts";
import { isConflict, readBox, writeBox } from "../lib/boxes.ts";
import { createCopyStream, sendCopyStream } from "../lib/copy_stream.ts";
import { PayloadTooLargeError } from "../lib/errors.ts";
import type { EncryptedMessage } from "../lib/pigeonhole.ts";
import type { OutboxRow } from "./db.ts";
import {
  EMPTY,
  frameLarge,
  frameSingle,
  MAX_LARGE_MESSAGE,
  unframe,
} from "./_box_format.ts";
import {
  type ChannelCore,
  checkBytes,
  checkIndex,
  describe,
  type Intent,
  opt,
} from "./_channel_core.ts";
import { BoxConflictError, PersistentError } from "./errors.ts";
import type {
  OutboxItem,
  ResumeReport,
  SentMessage,
  TombstoneOptions,
} from "./models.ts";

const RESERVE_ATTEMPTS = 100;
const SEND_CONCURRENCY = 8;

/** A write prepared for reserved boxes: a message's, or a copy's elements. */
type Prepared = EncryptedMessage | Uint8Array[];

/** What a send's `build` step says about the boxes it prepared. */
interface Reservation {
  /** The index after the boxes. */
  next: MessageBoxIndex;
  /** How many boxes. */
  boxCount: number;
  /** The prepared write. */
  prepared: Prepared;
}

function isEncrypted(p: Prepared | undefined): p is EncryptedMessage {
  return p !== undefined && !Array.isArray(p);
}

/**
 * The outbox of one channel: `send`, `sendLarge`, `writeBox`, `tombstone`,
 * replays. Public methods behave as documented on `Channel`.
 */
export class Outbox {
  readonly #c: ChannelCore;

  constructor(core: ChannelCore) {
    this.#c = core;
  }

  async send(
    message: Uint8Array,
    options: CallOptions = {},
  ): Promise<SentMessage> {
    const c = this.#c;
    checkBytes("send message", message);
    const writeCap = await c.writeCap("send");
    const limit = c.ctx.client.pigeonholeGeometry.maxPlaintextPayloadLength -
      1;
    if (message.length > limit) {
      throw new PayloadTooLargeError(
        message.length,
        limit,
        `message on channel '${c.name}' (use sendLarge)`,
      );
    }
    const signal = options.signal;
    const framed = frameSingle(message);
    const client = c.ctx.client;
    return await this.#sendNew(
      "message",
      framed,
      signal,
      async (index) => {
        const env = await client.encryptWrite(
          framed,
          writeCap,
          index,
          opt(signal),
        );
        return { next: env.nextMessageBoxIndex, boxCount: 1, prepared: env };
      },
    );
  }

  async sendLarge(
    message: Uint8Array,
    options: CallOptions = {},
  ): Promise<SentMessage> {
    const c = this.#c;
    checkBytes("send large message", message);
    const writeCap = await c.writeCap("send");
    if (message.length === 0) {
      throw new RangeError(
        `Cannot send large message on channel '${c.name}': it is empty (use send)`,
      );
    }
    if (message.length > MAX_LARGE_MESSAGE) {
      throw new PayloadTooLargeError(
        message.length,
        MAX_LARGE_MESSAGE,
        `large message on channel '${c.name}'`,
      );
    }
    const signal = options.signal;
    const framed = frameLarge(message);
    const client = c.ctx.client;
    return await this.#sendNew(
      "copy",
      framed,
      signal,
      async (index) => {
        const r = await createCopyStream(
          client,
          framed,
          writeCap,
          index,
          opt(signal),
        );
        const boxCount = r.destBoxes;
        if (!(boxCount >= 1 && boxCount <= r.elements.length * 64)) {
          throw new PersistentError(
            `Cannot send large message on channel '${c.name}': daemon reported ${boxCount} destination boxes`,
          );
        }
        return { next: r.nextDestIndex, boxCount, prepared: r.elements };
      },
    );
  }

  /**
   * A new send: leftover intents first, then the boxes at the write cursor
   * are reserved (`build` prepares the write) and the write is delivered.
   */
  async #sendNew(
    kind: "message" | "copy",
    framed: Uint8Array,
    signal: AbortSignal | undefined,
    build: (index: MessageBoxIndex) => Promise<Reservation>,
  ): Promise<SentMessage> {
    await this.#replay(signal);
    const { intent, prepared } = await this.#reserve(
      kind,
      framed,
      signal,
      build,
    );
    await this.#deliver(intent, false, signal, prepared);
    return { seq: intent.seq!, boxCount: intent.boxCount, index: intent.index };
  }

  /**
   * Reserves boxes at the write cursor: `build` prepares the write for the
   * cursor's index and says where the cursor goes; then one transaction
   * records the intent and moves the cursor, if no other handle moved it in
   * between (else start over from the new cursor).
   */
  async #reserve(
    kind: "message" | "copy",
    payload: Uint8Array,
    signal: AbortSignal | undefined,
    build: (index: MessageBoxIndex) => Promise<Reservation>,
  ): Promise<{ intent: Intent; prepared: Prepared }> {
    const c = this.#c;
    const { db, sealer } = c.ctx;
    const state = c.state;
    const sealedPayload = await sealer.seal("plaintext", payload);
    const release = await state.write.acquire(signal);
    try {
      for (let attempt = 0; attempt < RESERVE_ATTEMPTS; attempt++) {
        const cur = db.writeCursor(c.id, c.name);
        const index = await c.unsealIndex(cur.index);
        const b = await build(index);
        const sealedNext = await sealer.seal("index", b.next.bytes);
        const id = db.reserve(
          c.id,
          c.name,
          cur.seq,
          { seq: cur.seq + b.boxCount, index: sealedNext },
          {
            kind,
            seq: cur.seq,
            boxCount: b.boxCount,
            boxIndex: cur.index,
            payload: sealedPayload,
          },
          Date.now(),
        );
        if (id !== null) {
          state.inFlight.add(id);
          return {
            intent: {
              id,
              kind,
              seq: cur.seq,
              boxCount: b.boxCount,
              index,
              payload,
            },
            prepared: b.prepared,
          };
        }
      }
    } finally {
      release();
    }
    throw new PersistentError(
      `Cannot reserve box on channel '${c.name}': the write cursor kept moving (${RESERVE_ATTEMPTS} attempts)`,
    );
  }

  /**
   * Sends one intent (marked in flight by the caller) and deletes it from
   * the outbox when acknowledged. A conflict marks it failed, unless it is a
   * replay whose box turns out to hold exactly its bytes.
   */
  async #deliver(
    intent: Intent,
    replay: boolean,
    signal: AbortSignal | undefined,
    prepared?: Prepared,
  ): Promise<void> {
    const c = this.#c;
    const { client, db, confirmWrites } = c.ctx;
    const state = c.state;
    try {
      const writeCap = await c.writeCap("send");
      if (intent.kind === "message" && isEncrypted(prepared)) {
        await client.startResendingEncryptedMessage({ writeCap, ...prepared }, {
          ...opt(signal),
          noIdempotentBoxAlreadyExists: confirmWrites,
        });
      } else if (intent.kind === "message") {
        await writeBox(client, writeCap, intent.index, intent.payload, {
          ...opt(signal),
          confirm: confirmWrites,
        });
      } else if (intent.kind === "copy") {
        await this.#runCopy(
          intent,
          writeCap,
          signal,
          Array.isArray(prepared) ? prepared : undefined,
        );
      } else {
        const { envelopes } = await client.tombstoneRange(
          writeCap,
          intent.index,
          intent.boxCount,
          opt(signal),
        );
        await pool(envelopes, SEND_CONCURRENCY, signal, async (env, sig) => {
          await client.startResendingEncryptedMessage(
            { writeCap, ...env },
            opt(sig),
          );
        });
      }
      db.completeIntent(intent.id);
    } catch (err) {
      if (!isConflict(err)) throw err;
      if (replay && await this.#holds(intent, signal)) {
        db.completeIntent(intent.id);
        return;
      }
      db.failIntent(intent.id, describe(err));
      throw new BoxConflictError(c.name, intent.id, intent.seq ?? -1, {
        cause: err,
      });
    } finally {
      state.inFlight.delete(intent.id);
    }
  }

  /** Whether the intent's boxes hold exactly its bytes (or were deleted since). */
  async #holds(
    intent: Intent,
    signal: AbortSignal | undefined,
  ): Promise<boolean> {
    const c = this.#c;
    const { readCap } = await c.loadCaps();
    const parts: Uint8Array[] = [];
    let index = intent.index;
    for (let i = 0; i < intent.boxCount; i++) {
      // A single box is known to exist (the replica said so): wait for it.
      const box = await readBox(c.ctx.client, readCap, index, {
        ...opt(signal),
        noRetry: intent.kind === "copy",
      });
      if (box.kind === "tombstone") return true;
      if (box.kind === "empty") return false;
      parts.push(box.plaintext);
      index = box.next;
    }
    return bytesEqual(concatBytes(parts), intent.payload);
  }

  /** Uploads the copy stream to a fresh temporary stream and runs the copy. */
  async #runCopy(
    intent: Intent,
    writeCap: WriteCap,
    signal: AbortSignal | undefined,
    preparedEnvelopes: Uint8Array[] | undefined,
  ): Promise<void> {
    const c = this.#c;
    const client = c.ctx.client;
    const elements = preparedEnvelopes ??
      (await client.createCourierEnvelopesFromPayload(
        intent.payload,
        writeCap,
        intent.index,
        true,
        true,
        opt(signal),
      )).envelopes;
    // A fresh temporary stream every attempt: copy-stream elements are
    // encrypted with fresh randomness, so an old stream's boxes would clash.
    const temp = await client.newKeypair(undefined, opt(signal));
    await sendCopyStream(client, temp, elements, {
      ...opt(signal),
      window: SEND_CONCURRENCY,
    });
  }

  /**
   * Delivers this channel's pending intents that no call of this client is
   * sending, oldest first. Conflicts are counted, not thrown; other errors
   * are thrown (the intents stay pending).
   */
  #replay(signal: AbortSignal | undefined): Promise<ResumeReport> {
    const c = this.#c;
    const state = c.state;
    const run = async (): Promise<ResumeReport> => {
      // Wait for a replay started by another call, then look again.
      while (state.replay !== null) {
        try {
          await abortable(state.replay, signal);
        } catch (err) {
          signal?.throwIfAborted();
          void err;
        }
      }
      const { db } = c.ctx;
      const ids = db.pendingIntentIds(c.id).filter((id) =>
        !state.inFlight.has(id)
      );
      if (ids.length === 0) return { delivered: 0, failed: 0 };
      const p = this.#replayAll(signal);
      state.replay = p;
      try {
        return await p;
      } finally {
        if (state.replay === p) state.replay = null;
      }
    };
    return run();
  }

  async #replayAll(signal: AbortSignal | undefined): Promise<ResumeReport> {
    const c = this.#c;
    const { db } = c.ctx;
    const state = c.state;
    const rows = db.pendingIntents(c.id).filter((r) =>
      !state.inFlight.has(r.id)
    );
    for (const r of rows) state.inFlight.add(r.id);
    const report = { delivered: 0, failed: 0 };
    let i = 0;
    try {
      for (; i < rows.length; i++) {
        const row = rows[i]!;
        const intent = await this.#intentOf(row);
        db.intentAttempt(row.id);
        try {
          await this.#deliver(intent, true, signal);
          report.delivered++;
        } catch (err) {
          if (!(err instanceof BoxConflictError)) throw err;
          report.failed++;
        }
      }
    } finally {
      // #deliver clears its own id; clear those never started.
      for (let j = i + 1; j < rows.length; j++) {
        state.inFlight.delete(rows[j]!.id);
      }
      if (i < rows.length) state.inFlight.delete(rows[i]!.id);
    }
    return report;
  }

  async #intentOf(row: OutboxRow): Promise<Intent> {
    const c = this.#c;
    return {
      id: row.id,
      kind: row.kind,
      seq: row.seq,
      boxCount: row.boxCount,
      index: await c.unsealIndex(row.boxIndex),
      payload: row.kind === "tombstone"
        ? EMPTY
        : await c.ctx.sealer.open("plaintext", row.payload),
    };
  }

  resumePending(options: CallOptions = {}): Promise<ResumeReport> {
    const c = this.#c;
    if (!c.owned) {
      return Promise.resolve({ delivered: 0, failed: 0 });
    }
    return this.#replay(options.signal);
  }

  async writeBox(
    index: MessageBoxIndex,
    bytes: Uint8Array,
    options: CallOptions = {},
  ): Promise<void> {
    const c = this.#c;
    checkIndex(index, "write box");
    checkBytes("write box", bytes);
    if (bytes.length === 0) {
      throw new RangeError(
        `Cannot write box on channel '${c.name}': bytes are empty (an empty write is a tombstone, use tombstone)`,
      );
    }
    const writeCap = await c.writeCap("write box");
    const { client, confirmWrites } = c.ctx;
    await writeBox(client, writeCap, index, bytes, {
      ...opt(options.signal),
      confirm: confirmWrites,
    });
  }

  async tombstone(
    index: MessageBoxIndex,
    options: TombstoneOptions = {},
  ): Promise<void> {
    const c = this.#c;
    checkIndex(index, "tombstone");
    const count = options.count ?? 1;
    if (!Number.isSafeInteger(count) || count < 1) {
      throw new RangeError(
        `Cannot tombstone on channel '${c.name}': count '${count}' is not a positive integer`,
      );
    }
    await c.writeCap("tombstone");
    const { db, sealer } = c.ctx;
    const sealedIndex = await sealer.seal("index", index.bytes);
    const id = db.insertIntent(c.id, c.name, {
      kind: "tombstone",
      seq: null,
      boxCount: count,
      boxIndex: sealedIndex,
      payload: EMPTY,
    }, Date.now());
    c.state.inFlight.add(id);
    await this.#deliver(
      {
        id,
        kind: "tombstone",
        seq: null,
        boxCount: count,
        index,
        payload: EMPTY,
      },
      false,
      options.signal,
    );
  }

  async outbox(): Promise<OutboxItem[]> {
    const c = this.#c;
    const rows = c.ctx.db.listOutbox(c.id);
    const out: OutboxItem[] = [];
    for (const r of rows) {
      const intent = await this.#intentOf(r);
      out.push({
        id: r.id,
        kind: r.kind,
        seq: r.seq,
        boxCount: r.boxCount,
        index: intent.index,
        plaintext: unframe(r.kind, intent.payload).slice(),
        state: r.state,
        error: r.error,
        attempts: r.attempts,
        createdAt: new Date(r.createdAt),
      });
    }
    return out;
  }

  discard(id: number): void {
    const c = this.#c;
    if (!Number.isSafeInteger(id)) {
      throw new TypeError(
        `Cannot discard outbox item: id '${id}' is not an integer`,
      );
    }
    if (c.state.inFlight.has(id)) {
      throw new PersistentError(
        `Cannot discard outbox item '${id}' of channel '${c.name}': it is being sent`,
      );
    }
    const r = c.ctx.db.discardIntent(c.id, id, EMPTY);
    if (r === "missing") {
      throw new PersistentError(
        `Cannot discard outbox item '${id}': not in channel '${c.name}'`,
      );
    }
  }
}
