/**
 * Named Pigeonhole channels kept in a {@linkcode PigeonholeStore}:
 * {@linkcode PigeonholeClient} creates, imports, lists and deletes them;
 * a {@linkcode Channel} sends, receives and keeps an inbox.
 *
 * Crash safety:
 * - A send first reserves its box: one transaction records the intent
 *   (channel, box index, bytes) in the outbox and moves the write cursor.
 *   Only then is anything sent. The row is deleted when the write is
 *   acknowledged. The ciphertext is never stored (it goes stale when the
 *   replica epoch changes): a leftover intent is encrypted again for its
 *   box and sent again before the next new send (or by `resumePending()`).
 *   Encryption is deterministic, so the replica receives the identical box
 *   and accepts it.
 * - The cursor is re-read inside the reserving transaction (`BEGIN
 *   IMMEDIATE`), so two handles, in one process or several, never reserve
 *   the same box.
 * - With `confirmWrites` (default) a new message that finds its box occupied
 *   fails with {@linkcode BoxConflictError}, never silently. A replayed
 *   intent that finds its box occupied reads the box back: identical content
 *   means the first attempt had landed.
 * - A received message and the read cursor move in one transaction, and the
 *   inbox is unique per (channel, box), so nothing is stored twice.
 * - A reader moves past deleted (tombstoned) boxes.
 *
 * Message format inside boxes (readers must use this layer): a box holding
 * one message is `0x00 ‖ message`; a large message written with a copy
 * command is `0x01 ‖ uint32 BE length ‖ message`, cut by the daemon into
 * consecutive boxes.
 *
 * @module
 */
import { concatBytes } from "../lib/_bytes.ts";
import { abortable, Lock, pool } from "../lib/_async.ts";
import { MessageBoxIndex, ReadCap, WriteCap } from "../lib/caps.ts";
import type { CallOptions, ThinClient } from "../lib/client.ts";
import {
  CopyCommandError,
  PayloadTooLargeError,
  ReplicaError,
  ReplicaErrorCode,
} from "../lib/errors.ts";
import { type EncryptedMessage, MAX_COPY_PAYLOAD } from "../lib/pigeonhole.ts";
import {
  type Db,
  type OutboxKind,
  type OutboxRow,
  PigeonholeStore,
  type PigeonholeStoreOptions,
  storeParts,
} from "./db.ts";
import type { Sealer } from "./_seal.ts";
import {
  BoxConflictError,
  ChannelNotFoundError,
  PersistentError,
} from "./errors.ts";
import {
  type BoxRead,
  type ChannelInfo,
  type Cursor,
  type DeleteChannelOptions,
  formatShareText,
  type InboxMessage,
  type InboxOptions,
  type OutboxItem,
  parseShareText,
  type PigeonholeClientOptions,
  type ReceiveOptions,
  type ReceiveResult,
  type ResumeReport,
  type SentMessage,
  type ShareOptions,
  type TombstoneOptions,
} from "./models.ts";

const FRAME_SINGLE = 0x00;
const FRAME_LARGE = 0x01;
const LARGE_HEADER = 5;
const EMPTY = new Uint8Array(0);
const RESERVE_ATTEMPTS = 100;
const SEND_CONCURRENCY = 8;

/** Largest message `Channel.sendLarge` accepts: 10 MiB minus its 5-byte header. */
export const MAX_LARGE_MESSAGE: number = MAX_COPY_PAYLOAD - LARGE_HEADER;

// -----------------------------------------------------------------------------
// Small helpers

function isConflict(err: unknown): boolean {
  return (err instanceof ReplicaError &&
    err.code === ReplicaErrorCode.BoxAlreadyExists) ||
    (err instanceof CopyCommandError &&
      err.replicaCode === ReplicaErrorCode.BoxAlreadyExists);
}

/** Call options carrying `signal` when there is one. */
function opt(signal: AbortSignal | undefined): CallOptions {
  return signal === undefined ? {} : { signal };
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function checkBytes(what: string, value: unknown): Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(`Cannot ${what}: expected a Uint8Array`);
  }
  return value;
}

function checkName(name: unknown, action: string): string {
  if (typeof name !== "string" || name.length === 0 || name.length > 1024) {
    throw new TypeError(
      `Cannot ${action}: channel name must be a string of 1 to 1024 characters`,
    );
  }
  return name;
}

function checkIndex(index: unknown, action: string): MessageBoxIndex {
  if (!(index instanceof MessageBoxIndex)) {
    throw new TypeError(`Cannot ${action}: expected a MessageBoxIndex`);
  }
  return index;
}

function frameSingle(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(message.length + 1);
  out[0] = FRAME_SINGLE;
  out.set(message, 1);
  return out;
}

function frameLarge(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(message.length + LARGE_HEADER);
  out[0] = FRAME_LARGE;
  new DataView(out.buffer).setUint32(1, message.length, false);
  out.set(message, LARGE_HEADER);
  return out;
}

function unframe(kind: OutboxKind, payload: Uint8Array): Uint8Array {
  if (kind === "message") return payload.subarray(1);
  if (kind === "copy") return payload.subarray(LARGE_HEADER);
  return EMPTY;
}

// -----------------------------------------------------------------------------
// Shared per-channel state of one PigeonholeClient

interface ChannelState {
  /** Serializes reservations (cursor read → encrypt → reserve). */
  readonly write: Lock;
  /** Serializes receives. */
  readonly read: Lock;
  /** Outbox ids being sent by some call of this client. */
  readonly inFlight: Set<number>;
  /** A running replay of leftover intents. */
  replay: Promise<ResumeReport> | null;
}

interface Context {
  readonly client: ThinClient;
  readonly db: Db;
  readonly sealer: Sealer;
  readonly confirmWrites: boolean;
  state(channelId: number): ChannelState;
}

interface Intent {
  id: number;
  kind: OutboxKind;
  seq: number | null;
  boxCount: number;
  index: MessageBoxIndex;
  payload: Uint8Array;
}

// -----------------------------------------------------------------------------
// Channel

/**
 * A named channel of a {@linkcode PigeonholeClient}. An owned channel (made
 * with `createChannel`) can write and read; an imported one (from a share
 * text) can only read. Get one with `createChannel`, `importChannel` or
 * `getChannel`; several handles on one channel are safe, in one process or
 * in several.
 *
 * Message-level calls (`send`, `sendLarge`, `receive`, `messages`) use the
 * store's cursors, outbox and inbox. Box-level calls (`readBox`, `writeBox`,
 * `tombstone`) address any box by index and see raw box bytes.
 *
 * @example Usage
 * ```ts ignore
 * const alice = await pigeonhole.createChannel("to-bob");
 * const share = await alice.shareReadCap(); // give this text to Bob
 * await alice.send(new TextEncoder().encode("hello"));
 *
 * // Bob, with his own store:
 * const inbox = await bobPigeonhole.importChannel("from-alice", share);
 * const r = await inbox.receive({ signal: AbortSignal.timeout(120_000) });
 * if (r?.type === "message") console.log(new TextDecoder().decode(r.message.plaintext));
 * ```
 */
export interface Channel {
  /** The channel's name in the store. */
  readonly name: string;
  /** `true` when this store can write the channel. */
  readonly owned: boolean;

  /**
   * Sends one message in the next box of the channel. The intent is
   * recorded before anything is sent; if the call fails or the process dies
   * after that, the message is sent again later (before the next send, or
   * by `resumePending`) into the same box. Leftover intents of this channel
   * are delivered first; if one cannot be delivered, `send` rejects with its
   * error (inspect `outbox()`, and `discard()` the item if it must go).
   *
   * @param message 0 to `maxPlaintextPayloadLength − 1` bytes (1548 with the
   *   default geometry); larger messages go through `sendLarge`.
   * @param options Abort signal. Aborting stops waiting; the message stays
   *   in the outbox and is delivered later.
   * @returns Where the message went.
   * @throws {PersistentError} When the channel is read-only or the store fails.
   * @throws {BoxConflictError} When the box held other content (confirmWrites).
   * @throws {PayloadTooLargeError} When the message does not fit a box.
   * @throws {ChannelNotFoundError} When the channel was deleted.
   */
  send(message: Uint8Array, options?: CallOptions): Promise<SentMessage>;

  /**
   * Sends a message of up to 10 MiB − 5 bytes atomically with a copy
   * command: it is uploaded to a temporary stream, then a courier writes it
   * into consecutive boxes of this channel. Readers see nothing until the
   * copy runs, then `receive()` returns it as one message. Crash-safe like
   * `send` (the copy is run again from the start).
   *
   * @param message 1 to {@linkcode MAX_LARGE_MESSAGE} bytes.
   * @param options Abort signal.
   * @returns Where the message went (`boxCount` boxes).
   * @throws {BoxConflictError} When a destination box held other content.
   * @throws {PayloadTooLargeError} When the message exceeds the limit.
   * @throws {PersistentError} When the channel is read-only or the store fails.
   */
  sendLarge(message: Uint8Array, options?: CallOptions): Promise<SentMessage>;

  /**
   * Reads the box at the read cursor, stores the message in the inbox and
   * moves the cursor, in one transaction. Deleted or malformed boxes are
   * skipped (the cursor moves past them) and reported as `"skipped"`.
   *
   * @param options Abort signal; `noRetry` to return `null` instead of
   *   waiting when the box is not written yet.
   * @returns The message or the skipped boxes; `null` with `noRetry` when
   *   nothing is there yet.
   * @throws {ChannelNotFoundError} When the channel was deleted.
   */
  receive(options?: ReceiveOptions): Promise<ReceiveResult | null>;

  /**
   * Receives messages forever (skipping deleted boxes), each stored in the
   * inbox before it is yielded. Ends with the signal's reason when aborted.
   *
   * @param options Abort signal.
   * @returns An async iterator of messages.
   */
  messages(options?: CallOptions): AsyncIterableIterator<InboxMessage>;

  /**
   * Reads one box by index without touching the cursor or inbox. Returns
   * the raw box bytes (this layer's 1-byte message header included).
   *
   * @param index The box.
   * @param options Abort signal; `noRetry` to get status `"empty"` instead
   *   of waiting for an unwritten box.
   * @returns The box's status, bytes and the next index.
   */
  readBox(index: MessageBoxIndex, options?: ReceiveOptions): Promise<BoxRead>;

  /**
   * Writes raw bytes into one box by index, without cursor or outbox (the
   * caller owns that box). Readers using `receive` expect this layer's
   * format, see the module documentation.
   *
   * @param index The box.
   * @param bytes 1 to `maxPlaintextPayloadLength` bytes.
   * @param options Abort signal.
   * @returns When the write is acknowledged.
   * @throws {ReplicaError} Code 10 when the box holds other content (confirmWrites).
   */
  writeBox(
    index: MessageBoxIndex,
    bytes: Uint8Array,
    options?: CallOptions,
  ): Promise<void>;

  /**
   * Deletes `count` consecutive boxes starting at `index` (for example a
   * sent message: `tombstone(sent.index, { count: sent.boxCount })`). The
   * request is recorded in the outbox first, so it survives a crash.
   * Readers skip deleted boxes.
   *
   * @param index The first box.
   * @param options Abort signal and `count` (default 1).
   * @returns When every tombstone is acknowledged.
   */
  tombstone(index: MessageBoxIndex, options?: TombstoneOptions): Promise<void>;

  /**
   * Stored messages, oldest first.
   *
   * @param options `unreadOnly` and `limit`.
   * @returns The messages.
   */
  inbox(options?: InboxOptions): Promise<InboxMessage[]>;

  /**
   * Marks inbox messages read, all or none.
   *
   * @param ids One inbox id or several.
   * @throws {PersistentError} When an id is not a message of this channel.
   */
  markRead(ids: number | readonly number[]): void;

  /**
   * Deletes inbox messages (the boxes are not touched).
   *
   * @param ids One inbox id or several.
   * @returns How many were deleted.
   */
  deleteMessages(ids: number | readonly number[]): number;

  /**
   * The text a reader passes to `importChannel`: the read capability and a
   * start index with a checksum (see {@linkcode formatShareText}). Secret
   * for readers: whoever has it can read the channel.
   *
   * @param options Where the reader starts (default the first box).
   * @returns The share text.
   */
  shareReadCap(options?: ShareOptions): Promise<string>;

  /**
   * Writes recorded and not yet acknowledged (`"pending"`) or refused
   * (`"failed"`), oldest first.
   *
   * @returns The outbox items.
   */
  outbox(): Promise<OutboxItem[]>;

  /**
   * Gives up an outbox item. A pending message becomes a pending tombstone
   * of its boxes (a reserved box must not stay empty, or readers would wait
   * on it forever); a failed item or pending tombstone is removed.
   *
   * @param id The outbox id.
   * @throws {PersistentError} When the item is unknown or being sent right now.
   */
  discard(id: number): void;

  /**
   * Sends every pending outbox item of this channel again (encrypted anew
   * for its box). `send` does this by itself first.
   *
   * @param options Abort signal.
   * @returns How many were delivered and how many failed for good.
   */
  resumePending(options?: CallOptions): Promise<ResumeReport>;

  /**
   * The cursors: the next box to reserve for writing (owned channels) and
   * the next box `receive` reads.
   *
   * @returns Both cursors.
   */
  cursors(): Promise<{ write: Cursor | null; read: Cursor }>;
}

class ChannelImpl implements Channel {
  readonly name: string;
  readonly owned: boolean;
  readonly #id: number;
  readonly #ctx: Context;
  #caps: Promise<{ writeCap: WriteCap | null; readCap: ReadCap }> | null = null;

  constructor(ctx: Context, id: number, name: string, owned: boolean) {
    this.#ctx = ctx;
    this.#id = id;
    this.name = name;
    this.owned = owned;
  }

  /** Keeps capabilities out of logs. */
  toJSON(): { name: string; owned: boolean } {
    return { name: this.name, owned: this.owned };
  }

  get #state(): ChannelState {
    return this.#ctx.state(this.#id);
  }

  #loadCaps(): Promise<{ writeCap: WriteCap | null; readCap: ReadCap }> {
    this.#caps ??= (async () => {
      const row = this.#ctx.db.channelById(this.#id, this.name);
      return {
        writeCap: row.writeCap === null
          ? null
          : await this.#unseal("write_cap", row.writeCap, WriteCap),
        readCap: await this.#unseal("read_cap", row.readCap, ReadCap),
      };
    })();
    const p = this.#caps;
    p.catch(() => {
      if (this.#caps === p) this.#caps = null;
    });
    return p;
  }

  async #writeCap(action: string): Promise<WriteCap> {
    if (!this.owned) {
      throw new PersistentError(
        `Cannot ${action} on channel '${this.name}': it is imported (read only)`,
      );
    }
    return (await this.#loadCaps()).writeCap!;
  }

  async #unsealIndex(sealed: Uint8Array): Promise<MessageBoxIndex> {
    return await this.#unseal("index", sealed, MessageBoxIndex);
  }

  /** A stored capability or index, checked: a damaged row is a PersistentError. */
  async #unseal<T>(
    label: "write_cap" | "read_cap" | "index",
    sealed: Uint8Array,
    type: { readonly LENGTH: number } & (new (bytes: Uint8Array) => T),
  ): Promise<T> {
    const bytes = await this.#ctx.sealer.open(label, sealed);
    if (bytes.length !== type.LENGTH) {
      throw new PersistentError(
        `Cannot use channel '${this.name}': its stored ${label} has ${bytes.length} bytes, expected ${type.LENGTH} (the store is damaged)`,
      );
    }
    return new type(bytes);
  }

  // ---------------------------------------------------------------------------
  // Sending

  async send(
    message: Uint8Array,
    options: CallOptions = {},
  ): Promise<SentMessage> {
    checkBytes("send message", message);
    const writeCap = await this.#writeCap("send");
    const limit =
      this.#ctx.client.pigeonholeGeometry.maxPlaintextPayloadLength -
      1;
    if (message.length > limit) {
      throw new PayloadTooLargeError(
        message.length,
        limit,
        `message on channel '${this.name}' (use sendLarge)`,
      );
    }
    const signal = options.signal;
    await this.#replay(signal);
    const framed = frameSingle(message);
    const client = this.#ctx.client;
    const { intent, prepared } = await this.#reserve(
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
    await this.#deliver(intent, false, signal, prepared);
    return { seq: intent.seq!, boxCount: 1, index: intent.index };
  }

  async sendLarge(
    message: Uint8Array,
    options: CallOptions = {},
  ): Promise<SentMessage> {
    checkBytes("send large message", message);
    const writeCap = await this.#writeCap("send");
    if (message.length === 0) {
      throw new RangeError(
        `Cannot send large message on channel '${this.name}': it is empty (use send)`,
      );
    }
    if (message.length > MAX_LARGE_MESSAGE) {
      throw new PayloadTooLargeError(
        message.length,
        MAX_LARGE_MESSAGE,
        `large message on channel '${this.name}'`,
      );
    }
    const signal = options.signal;
    await this.#replay(signal);
    const framed = frameLarge(message);
    const client = this.#ctx.client;
    const { intent, prepared } = await this.#reserve(
      "copy",
      framed,
      signal,
      async (index) => {
        const r = await client.createCourierEnvelopesFromPayload(
          framed,
          writeCap,
          index,
          true,
          true,
          opt(signal),
        );
        const [a, b] = await Promise.all([
          client.getMessageBoxIndexCounter(index, opt(signal)),
          client.getMessageBoxIndexCounter(r.nextDestIndex, opt(signal)),
        ]);
        const boxCount = Number(b - a);
        if (!(boxCount >= 1 && boxCount <= r.envelopes.length * 64)) {
          throw new PersistentError(
            `Cannot send large message on channel '${this.name}': daemon reported ${boxCount} destination boxes`,
          );
        }
        return { next: r.nextDestIndex, boxCount, prepared: r.envelopes };
      },
    );
    await this.#deliver(intent, false, signal, undefined, prepared);
    return { seq: intent.seq!, boxCount: intent.boxCount, index: intent.index };
  }

  /**
   * Reserves boxes at the write cursor: `build` prepares the write for the
   * cursor's index and says where the cursor goes; then one transaction
   * records the intent and moves the cursor, if no other handle moved it in
   * between (else start over from the new cursor).
   */
  async #reserve<P>(
    kind: "message" | "copy",
    payload: Uint8Array,
    signal: AbortSignal | undefined,
    build: (
      index: MessageBoxIndex,
    ) => Promise<{ next: MessageBoxIndex; boxCount: number; prepared: P }>,
  ): Promise<{ intent: Intent; prepared: P }> {
    const { db, sealer } = this.#ctx;
    const state = this.#state;
    const sealedPayload = await sealer.seal("plaintext", payload);
    const release = await state.write.acquire(signal);
    try {
      for (let attempt = 0; attempt < RESERVE_ATTEMPTS; attempt++) {
        const cur = db.writeCursor(this.#id, this.name);
        const index = await this.#unsealIndex(cur.index);
        const b = await build(index);
        const sealedNext = await sealer.seal("index", b.next.bytes);
        const id = db.reserve(
          this.#id,
          this.name,
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
      `Cannot reserve box on channel '${this.name}': the write cursor kept moving (${RESERVE_ATTEMPTS} attempts)`,
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
    prepared?: EncryptedMessage,
    preparedEnvelopes?: Uint8Array[],
  ): Promise<void> {
    const { client, db, confirmWrites } = this.#ctx;
    const state = this.#state;
    try {
      const writeCap = await this.#writeCap("send");
      if (intent.kind === "message") {
        const env = prepared ??
          await client.encryptWrite(
            intent.payload,
            writeCap,
            intent.index,
            opt(signal),
          );
        await client.startResendingEncryptedMessage({ writeCap, ...env }, {
          ...opt(signal),
          noIdempotentBoxAlreadyExists: confirmWrites,
        });
      } else if (intent.kind === "copy") {
        await this.#runCopy(intent, writeCap, signal, preparedEnvelopes);
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
      throw new BoxConflictError(this.name, intent.id, intent.seq ?? -1, {
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
    const { readCap } = await this.#loadCaps();
    const parts: Uint8Array[] = [];
    let index = intent.index;
    for (let i = 0; i < intent.boxCount; i++) {
      // A single box is known to exist (the replica said so): wait for it.
      const box = await this.#readOne(
        readCap,
        index,
        intent.kind === "copy",
        signal,
      );
      if (box.status === "tombstone") return true;
      if (box.status === "empty") return false;
      parts.push(box.plaintext!);
      index = box.next;
    }
    const got = concatBytes(parts);
    const want = intent.payload;
    if (got.length !== want.length) return false;
    for (let i = 0; i < got.length; i++) if (got[i] !== want[i]) return false;
    return true;
  }

  /** Uploads the copy stream to a fresh temporary stream and runs the copy. */
  async #runCopy(
    intent: Intent,
    writeCap: WriteCap,
    signal: AbortSignal | undefined,
    preparedEnvelopes: Uint8Array[] | undefined,
  ): Promise<void> {
    const client = this.#ctx.client;
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
    const writes: EncryptedMessage[] = [];
    let index = temp.firstMessageIndex;
    let last = index;
    for (const element of elements) {
      const env = await client.encryptWrite(
        element,
        temp.writeCap,
        index,
        opt(signal),
      );
      writes.push(env);
      last = index;
      index = env.nextMessageBoxIndex;
    }
    await pool(writes, SEND_CONCURRENCY, signal, async (env, sig) => {
      await client.startResendingEncryptedMessage(
        { writeCap: temp.writeCap, ...env },
        opt(sig),
      );
    });
    // Gate: the last element must be readable before the courier walks the
    // stream.
    const gate = await client.encryptRead(temp.readCap, last, opt(signal));
    await client.startResendingEncryptedMessage(
      { readCap: temp.readCap, messageBoxIndex: last, ...gate },
      opt(signal),
    );
    await client.startResendingCopyCommand(temp.writeCap, opt(signal));
  }

  /**
   * Delivers this channel's pending intents that no call of this client is
   * sending, oldest first. Conflicts are counted, not thrown; other errors
   * are thrown (the intents stay pending).
   */
  #replay(signal: AbortSignal | undefined): Promise<ResumeReport> {
    const state = this.#state;
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
      const { db } = this.#ctx;
      const ids = db.pendingIntentIds(this.#id).filter((id) =>
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
    const { db } = this.#ctx;
    const state = this.#state;
    const rows = db.pendingIntents(this.#id).filter((r) =>
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
    return {
      id: row.id,
      kind: row.kind,
      seq: row.seq,
      boxCount: row.boxCount,
      index: await this.#unsealIndex(row.boxIndex),
      payload: row.kind === "tombstone"
        ? EMPTY
        : await this.#ctx.sealer.open("plaintext", row.payload),
    };
  }

  resumePending(options: CallOptions = {}): Promise<ResumeReport> {
    if (!this.owned) {
      return Promise.resolve({ delivered: 0, failed: 0 });
    }
    return this.#replay(options.signal);
  }

  async writeBox(
    index: MessageBoxIndex,
    bytes: Uint8Array,
    options: CallOptions = {},
  ): Promise<void> {
    checkIndex(index, "write box");
    checkBytes("write box", bytes);
    if (bytes.length === 0) {
      throw new RangeError(
        `Cannot write box on channel '${this.name}': bytes are empty (an empty write is a tombstone, use tombstone)`,
      );
    }
    const writeCap = await this.#writeCap("write box");
    const { client, confirmWrites } = this.#ctx;
    const env = await client.encryptWrite(
      bytes,
      writeCap,
      index,
      opt(options.signal),
    );
    await client.startResendingEncryptedMessage({ writeCap, ...env }, {
      ...opt(options.signal),
      noIdempotentBoxAlreadyExists: confirmWrites,
    });
  }

  async tombstone(
    index: MessageBoxIndex,
    options: TombstoneOptions = {},
  ): Promise<void> {
    checkIndex(index, "tombstone");
    const count = options.count ?? 1;
    if (!Number.isSafeInteger(count) || count < 1) {
      throw new RangeError(
        `Cannot tombstone on channel '${this.name}': count '${count}' is not a positive integer`,
      );
    }
    await this.#writeCap("tombstone");
    const { db, sealer } = this.#ctx;
    const sealedIndex = await sealer.seal("index", index.bytes);
    const id = db.insertIntent(this.#id, this.name, {
      kind: "tombstone",
      seq: null,
      boxCount: count,
      boxIndex: sealedIndex,
      payload: EMPTY,
    }, Date.now());
    this.#state.inFlight.add(id);
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

  // ---------------------------------------------------------------------------
  // Receiving

  /** Reads one box; tombstone and not-found become statuses. */
  async #readOne(
    readCap: ReadCap,
    index: MessageBoxIndex,
    noRetry: boolean,
    signal: AbortSignal | undefined,
  ): Promise<BoxRead> {
    const client = this.#ctx.client;
    const env = await client.encryptRead(readCap, index, opt(signal));
    const next = env.nextMessageBoxIndex;
    try {
      const r = await client.startResendingEncryptedMessage(
        { readCap, messageBoxIndex: index, ...env },
        { ...opt(signal), noRetryOnBoxIdNotFound: noRetry },
      );
      if (r.plaintext === null || r.plaintext.length === 0) {
        return { status: "tombstone", plaintext: null, next };
      }
      return { status: "data", plaintext: r.plaintext, next };
    } catch (err) {
      if (err instanceof ReplicaError) {
        if (err.code === ReplicaErrorCode.Tombstone) {
          return { status: "tombstone", plaintext: null, next };
        }
        if (err.code === ReplicaErrorCode.BoxIdNotFound) {
          return { status: "empty", plaintext: null, next };
        }
      }
      throw err;
    }
  }

  async readBox(
    index: MessageBoxIndex,
    options: ReceiveOptions = {},
  ): Promise<BoxRead> {
    checkIndex(index, "read box");
    const { readCap } = await this.#loadCaps();
    return await this.#readOne(
      readCap,
      index,
      options.noRetry ?? false,
      options.signal,
    );
  }

  async receive(options: ReceiveOptions = {}): Promise<ReceiveResult | null> {
    const signal = options.signal;
    const noRetry = options.noRetry ?? false;
    const { readCap } = await this.#loadCaps();
    const release = await this.#state.read.acquire(signal);
    try {
      for (;;) {
        const r = await this.#receiveAtCursor(readCap, noRetry, signal);
        if (r !== "moved") return r;
      }
    } finally {
      release();
    }
  }

  /** One receive attempt; "moved" when another handle consumed the box first. */
  async #receiveAtCursor(
    readCap: ReadCap,
    noRetry: boolean,
    signal: AbortSignal | undefined,
  ): Promise<ReceiveResult | null | "moved"> {
    const { db, sealer } = this.#ctx;
    const cur = db.readCursor(this.#id, this.name);
    const index = await this.#unsealIndex(cur.index);
    const first = await this.#readOne(readCap, index, noRetry, signal);
    if (first.status === "empty") return null;

    const skip = async (
      reason: "tombstone" | "malformed",
      boxCount: number,
      next: MessageBoxIndex,
    ): Promise<ReceiveResult | "moved"> => {
      const committed = db.commitReceive(
        this.#id,
        this.name,
        cur.seq,
        {
          seq: cur.seq + boxCount,
          index: await sealer.seal("index", next.bytes),
        },
        null,
      );
      if (committed === "moved") return "moved";
      return { type: "skipped", reason, seq: cur.seq, boxCount, index };
    };

    if (first.status === "tombstone") return skip("tombstone", 1, first.next);
    const data = first.plaintext!;
    let message: Uint8Array;
    let boxCount = 1;
    let next = first.next;
    if (data[0] === FRAME_SINGLE) {
      message = data.subarray(1);
    } else if (data[0] === FRAME_LARGE && data.length >= LARGE_HEADER) {
      const length = new DataView(data.buffer, data.byteOffset, data.length)
        .getUint32(1, false);
      if (length === 0 || length > MAX_LARGE_MESSAGE) {
        return skip("malformed", 1, first.next);
      }
      const parts = [data.subarray(LARGE_HEADER)];
      let have = parts[0]!.length;
      while (have < length) {
        const box = await this.#readOne(readCap, next, noRetry, signal);
        if (box.status === "empty") return null;
        boxCount++;
        if (box.status === "tombstone") {
          return skip("malformed", boxCount, box.next);
        }
        parts.push(box.plaintext!);
        have += box.plaintext!.length;
        next = box.next;
      }
      message = concatBytes(parts).subarray(0, length);
    } else {
      return skip("malformed", 1, first.next);
    }

    const receivedAt = Date.now();
    const id = db.commitReceive(
      this.#id,
      this.name,
      cur.seq,
      {
        seq: cur.seq + boxCount,
        index: await sealer.seal("index", next.bytes),
      },
      {
        seq: cur.seq,
        boxCount,
        boxIndex: cur.index,
        plaintext: await sealer.seal("plaintext", message),
        receivedAt,
      },
    );
    if (id === "moved") return "moved";
    const row = id === null ? undefined : db.inboxById(id);
    if (id === null || row === undefined) {
      throw new PersistentError(
        `Cannot store message of channel '${this.name}': inbox row missing after insert`,
      );
    }
    return {
      type: "message",
      message: {
        id,
        channel: this.name,
        seq: cur.seq,
        boxCount,
        index,
        plaintext: message.slice(),
        receivedAt: new Date(row.receivedAt),
        read: row.isRead,
      },
    };
  }

  async *messages(
    options: CallOptions = {},
  ): AsyncIterableIterator<InboxMessage> {
    for (;;) {
      const r = await this.receive(opt(options.signal));
      if (r?.type === "message") yield r.message;
    }
  }

  // ---------------------------------------------------------------------------
  // Inbox, outbox, sharing

  async inbox(options: InboxOptions = {}): Promise<InboxMessage[]> {
    const limit = options.limit ?? Infinity;
    if (!(limit === Infinity || (Number.isSafeInteger(limit) && limit >= 0))) {
      throw new RangeError(
        `Cannot read inbox: limit '${limit}' is not a non-negative integer`,
      );
    }
    const rows = this.#ctx.db.listInbox(
      this.#id,
      options.unreadOnly ?? false,
      limit === Infinity ? -1 : limit,
    );
    const s = this.#ctx.sealer;
    return await Promise.all(rows.map(async (r) => ({
      id: r.id,
      channel: this.name,
      seq: r.seq,
      boxCount: r.boxCount,
      index: await this.#unsealIndex(r.boxIndex),
      plaintext: await s.open("plaintext", r.plaintext),
      receivedAt: new Date(r.receivedAt),
      read: r.isRead,
    })));
  }

  #ids(ids: number | readonly number[], action: string): number[] {
    const list = typeof ids === "number" ? [ids] : [...ids];
    for (const id of list) {
      if (!Number.isSafeInteger(id)) {
        throw new TypeError(`Cannot ${action}: id '${id}' is not an integer`);
      }
    }
    return list;
  }

  markRead(ids: number | readonly number[]): void {
    const list = this.#ids(ids, "mark messages read");
    const missing = this.#ctx.db.markRead(this.#id, list);
    if (missing.length > 0) {
      throw new PersistentError(
        `Cannot mark messages read: id '${
          missing.join("', '")
        }' is not a message of channel '${this.name}'`,
      );
    }
  }

  deleteMessages(ids: number | readonly number[]): number {
    return this.#ctx.db.deleteMessages(
      this.#id,
      this.#ids(ids, "delete messages"),
    );
  }

  async shareReadCap(options: ShareOptions = {}): Promise<string> {
    const from = options.from ?? "first";
    if (from !== "first" && from !== "next") {
      throw new TypeError(
        `Cannot share channel '${this.name}': from '${from}' is not "first" or "next"`,
      );
    }
    const { readCap } = await this.#loadCaps();
    const { db } = this.#ctx;
    let sealed: Uint8Array;
    if (from === "first") {
      sealed = db.channelById(this.#id, this.name).firstIndex;
    } else if (this.owned) {
      sealed = db.writeCursor(this.#id, this.name).index;
    } else {
      sealed = db.readCursor(this.#id, this.name).index;
    }
    return formatShareText({
      readCap,
      startIndex: await this.#unsealIndex(sealed),
    });
  }

  async outbox(): Promise<OutboxItem[]> {
    const rows = this.#ctx.db.listOutbox(this.#id);
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
    if (!Number.isSafeInteger(id)) {
      throw new TypeError(
        `Cannot discard outbox item: id '${id}' is not an integer`,
      );
    }
    if (this.#state.inFlight.has(id)) {
      throw new PersistentError(
        `Cannot discard outbox item '${id}' of channel '${this.name}': it is being sent`,
      );
    }
    const r = this.#ctx.db.discardIntent(this.#id, id, EMPTY);
    if (r === "missing") {
      throw new PersistentError(
        `Cannot discard outbox item '${id}': not in channel '${this.name}'`,
      );
    }
  }

  async cursors(): Promise<{ write: Cursor | null; read: Cursor }> {
    const { db } = this.#ctx;
    const read = db.readCursor(this.#id, this.name);
    const write = this.owned ? db.writeCursor(this.#id, this.name) : null;
    return {
      write: write === null
        ? null
        : { seq: write.seq, index: await this.#unsealIndex(write.index) },
      read: { seq: read.seq, index: await this.#unsealIndex(read.index) },
    };
  }
}

// -----------------------------------------------------------------------------
// PigeonholeClient

/** Clients made by `PigeonholeClient.open`, which close their store. */
const owning = new WeakSet<object>();

/**
 * Persistent Pigeonhole channels: named channels kept in a
 * {@linkcode PigeonholeStore}, used through a connected {@linkcode ThinClient}.
 * Applications use it instead of handling capabilities and box indices.
 *
 * The store may outlive the client: reopen it after a restart with a new
 * client and call {@linkcode PigeonholeClient.resumePending} (or just keep
 * sending: each channel's leftover sends go out before its next send).
 *
 * @example Usage
 * ```ts ignore
 * import { connect } from "@katzenpost/thinclient/transport";
 * import { PigeonholeClient } from "@katzenpost/thinclient/persistent";
 *
 * await using client = await connect("thinclient.toml");
 * using pigeonhole = await PigeonholeClient.open(client, "chat.db");
 * await pigeonhole.resumePending();
 * const ch = pigeonhole.listChannels().some((c) => c.name === "news")
 *   ? pigeonhole.getChannel("news")
 *   : await pigeonhole.createChannel("news");
 * console.log(await ch.shareReadCap()); // give to readers
 * await ch.send(new TextEncoder().encode("hello"), { signal: AbortSignal.timeout(120_000) });
 * ```
 */
export class PigeonholeClient implements Disposable {
  /** The daemon connection used for network calls. */
  readonly client: ThinClient;
  /** The store holding the channels. */
  readonly store: PigeonholeStore;
  readonly #ctx: Context;
  readonly #states = new Map<number, ChannelState>();

  /**
   * Uses `store` through `client`. The store stays open when this object is
   * closed (use {@linkcode PigeonholeClient.open} to tie them together).
   *
   * @param client A connected thin client (the real daemon or a fake).
   * @param store An open store.
   * @param options Write confirmation.
   * @throws {TypeError} When `store` is not a PigeonholeStore.
   */
  constructor(
    client: ThinClient,
    store: PigeonholeStore,
    options: PigeonholeClientOptions = {},
  ) {
    this.client = client;
    this.store = store;
    const { db, sealer } = storeParts(store);
    this.#ctx = {
      client,
      db,
      sealer,
      confirmWrites: options.confirmWrites ?? true,
      state: (id) => {
        let s = this.#states.get(id);
        if (s === undefined) {
          s = {
            write: new Lock(),
            read: new Lock(),
            inFlight: new Set(),
            replay: null,
          };
          this.#states.set(id, s);
        }
        return s;
      },
    };
  }

  /**
   * Opens the store at `path` and uses it through `client`; closing the
   * returned object closes the store.
   *
   * @param client A connected thin client.
   * @param path Database file (created with mode 0600) or `":memory:"`.
   * @param options Store options (seal key, …) and write confirmation.
   * @returns The persistent client.
   * @throws {PersistentError} When the store cannot be opened.
   *
   * @example Usage
   * ```ts ignore
   * using pigeonhole = await PigeonholeClient.open(client, "chat.db", { sealKey });
   * ```
   */
  static async open(
    client: ThinClient,
    path: string,
    options: PigeonholeClientOptions & PigeonholeStoreOptions = {},
  ): Promise<PigeonholeClient> {
    const store = await PigeonholeStore.open(path, options);
    const p = new PigeonholeClient(client, store, options);
    owning.add(p);
    return p;
  }

  /**
   * Creates a channel this store owns: a fresh keypair (from 32 random
   * bytes), stored with its write and read capabilities. Nothing is sent.
   *
   * @param name A name unique in this store.
   * @param options Abort signal.
   * @returns The channel.
   * @throws {PersistentError} When the name is taken.
   *
   * @example Usage
   * ```ts ignore
   * const ch = await pigeonhole.createChannel("news");
   * ```
   */
  async createChannel(
    name: string,
    options: CallOptions = {},
  ): Promise<Channel> {
    checkName(name, "create channel");
    const { db, sealer } = this.#ctx;
    if (db.channelByName(name) !== undefined) {
      throw new PersistentError(
        `Cannot create channel '${name}': name already in use`,
      );
    }
    const kp = await this.client.newKeypair(undefined, options);
    const first = await sealer.seal("index", kp.firstMessageIndex.bytes);
    const id = db.insertChannel({
      name,
      owned: true,
      writeCap: await sealer.seal("write_cap", kp.writeCap.bytes),
      readCap: await sealer.seal("read_cap", kp.readCap.bytes),
      firstIndex: first,
      writeIndex: first,
      readIndex: first,
      createdAt: Date.now(),
    });
    if (id === null) {
      throw new PersistentError(
        `Cannot create channel '${name}': name already in use`,
      );
    }
    return new ChannelImpl(this.#ctx, id, name, true);
  }

  /**
   * Adds a channel to read from a share text (made by `shareReadCap`).
   * Local: no daemon call.
   *
   * @param name A name unique in this store.
   * @param shareText The text from the channel's owner.
   * @returns The (read-only) channel, reading from the share's start index.
   * @throws {TypeError} When the share text is invalid.
   * @throws {PersistentError} When the name is taken.
   *
   * @example Usage
   * ```ts ignore
   * const ch = await pigeonhole.importChannel("alice", shareTextFromAlice);
   * ```
   */
  async importChannel(name: string, shareText: string): Promise<Channel> {
    checkName(name, "import channel");
    const shared = parseShareText(shareText);
    const { db, sealer } = this.#ctx;
    const start = await sealer.seal("index", shared.startIndex.bytes);
    const id = db.insertChannel({
      name,
      owned: false,
      writeCap: null,
      readCap: await sealer.seal("read_cap", shared.readCap.bytes),
      firstIndex: start,
      writeIndex: null,
      readIndex: start,
      createdAt: Date.now(),
    });
    if (id === null) {
      throw new PersistentError(
        `Cannot import channel '${name}': name already in use`,
      );
    }
    return new ChannelImpl(this.#ctx, id, name, false);
  }

  /**
   * A handle on an existing channel.
   *
   * @param name The channel's name.
   * @returns The channel.
   * @throws {ChannelNotFoundError} When there is no such channel.
   *
   * @example Usage
   * ```ts ignore
   * const ch = pigeonhole.getChannel("news");
   * ```
   */
  getChannel(name: string): Channel {
    checkName(name, "get channel");
    const row = this.#ctx.db.channelByName(name);
    if (row === undefined) throw new ChannelNotFoundError(name);
    return new ChannelImpl(this.#ctx, row.id, row.name, row.owned);
  }

  /**
   * All channels, by name, with their counters (no secrets).
   *
   * @returns The channels.
   *
   * @example Usage
   * ```ts ignore
   * for (const c of pigeonhole.listChannels()) console.log(c.name, c.unread);
   * ```
   */
  listChannels(): ChannelInfo[] {
    return this.#ctx.db.listChannels().map((r) => ({
      name: r.name,
      owned: r.owned,
      createdAt: new Date(r.createdAt),
      writeSeq: r.writeSeq,
      readSeq: r.readSeq,
      pendingSends: r.pending,
      failedSends: r.failed,
      unread: r.unread,
    }));
  }

  /**
   * Deletes a channel with its outbox and inbox. Nothing is sent (boxes
   * already written stay until they expire).
   *
   * @param name The channel's name.
   * @param options `force` to delete even with items in the outbox.
   * @throws {ChannelNotFoundError} When there is no such channel.
   * @throws {PersistentError} When the outbox is not empty and `force` is not set.
   *
   * @example Usage
   * ```ts ignore
   * pigeonhole.deleteChannel("news");
   * ```
   */
  deleteChannel(name: string, options: DeleteChannelOptions = {}): void {
    checkName(name, "delete channel");
    const r = this.#ctx.db.deleteChannel(name, options.force ?? false);
    if (r === "missing") throw new ChannelNotFoundError(name);
    if (r !== "deleted") {
      throw new PersistentError(
        `Cannot delete channel '${name}': ${r.outbox} outbox item(s) not delivered (use force)`,
      );
    }
  }

  /**
   * Sends again every pending outbox item of every channel (call after a
   * restart). Items being sent by this client are left alone.
   *
   * @param options Abort signal.
   * @returns How many items were delivered, and how many failed for good.
   * @throws {ThinClientError} The first network error (remaining items stay pending).
   *
   * @example Usage
   * ```ts ignore
   * const { delivered, failed } = await pigeonhole.resumePending();
   * ```
   */
  async resumePending(options: CallOptions = {}): Promise<ResumeReport> {
    const total = { delivered: 0, failed: 0 };
    for (const name of this.#ctx.db.channelsWithPending()) {
      let ch: Channel;
      try {
        ch = this.getChannel(name);
      } catch (err) {
        if (err instanceof ChannelNotFoundError) continue;
        throw err;
      }
      const r = await ch.resumePending(options);
      total.delivered += r.delivered;
      total.failed += r.failed;
    }
    return total;
  }

  /**
   * Closes the store if {@linkcode PigeonholeClient.open} opened it;
   * otherwise does nothing. The thin client is never closed here.
   *
   * @example Usage
   * ```ts ignore
   * pigeonhole.close();
   * ```
   */
  close(): void {
    if (owning.has(this)) this.store.close();
  }

  /** Same as {@linkcode PigeonholeClient.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
