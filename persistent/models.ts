/**
 * Data types of the persistent channel layer, and (re-exported from lib/) the
 * text form in which a channel's read capability is shared.
 *
 * @module
 */
import type { MessageBoxIndex } from "../lib/caps.ts";
import type { CallOptions } from "../lib/client.ts";

export { formatShareText, parseShareText } from "../lib/caps.ts";
export type { SharedChannel } from "../lib/caps.ts";

/**
 * A channel as listed by `PigeonholeClient.listChannels()` (no secrets).
 *
 * @example Usage
 * ```ts ignore
 * for (const c of pigeonhole.listChannels()) console.log(c.name, c.unread);
 * ```
 */
export interface ChannelInfo {
  /** The channel's name in this store. */
  name: string;
  /** `true` when created here (can write); `false` when imported (read only). */
  owned: boolean;
  /** When the channel was created or imported. */
  createdAt: Date;
  /** Boxes reserved for writing so far (owned channels), `null` otherwise. */
  writeSeq: number | null;
  /** Boxes consumed by `receive()` so far. */
  readSeq: number;
  /** Sends recorded but not yet acknowledged. */
  pendingSends: number;
  /** Sends that failed for good (see `Channel.outbox()`). */
  failedSends: number;
  /** Inbox messages not marked read. */
  unread: number;
}

/**
 * A received message, stored in the channel's inbox.
 *
 * @example Usage
 * ```ts ignore
 * const unread: InboxMessage[] = await channel.inbox({ unreadOnly: true });
 * for (const message of unread) channel.markRead(message.id);
 * ```
 */
export interface InboxMessage {
  /** Inbox id, for `markRead` and `deleteMessages`. */
  id: number;
  /** The channel's name. */
  channel: string;
  /** Position of its first box in the channel (0 = the channel's start). */
  seq: number;
  /** Boxes it occupied (more than 1 for a message sent with `sendLarge`). */
  boxCount: number;
  /** Index of its first box. Secret: never log it. */
  index: MessageBoxIndex;
  /** The message. */
  plaintext: Uint8Array;
  /** When it was stored. */
  receivedAt: Date;
  /** Whether `markRead` was called for it. */
  read: boolean;
}

/**
 * Where a sent message went.
 *
 * @example Usage
 * ```ts ignore
 * const sent: SentMessage = await channel.send(bytes);
 * await channel.tombstone(sent.index, { count: sent.boxCount }); // delete it later
 * ```
 */
export interface SentMessage {
  /** Position of its first box in the channel. */
  seq: number;
  /** Boxes it occupies. */
  boxCount: number;
  /** Index of its first box. Secret: never log it. */
  index: MessageBoxIndex;
}

/**
 * What `Channel.receive()` consumed: a message, or boxes it skipped.
 *
 * A box is skipped when it was deleted (`"tombstone"`) or does not hold a
 * message in this layer's format (`"malformed"`). The read cursor moves past
 * skipped boxes, so a reader never sticks on them.
 *
 * @example Usage
 * ```ts ignore
 * const r: ReceiveResult | null = await channel.receive();
 * if (r?.type === "message") console.log(r.message.plaintext);
 * ```
 */
export type ReceiveResult =
  | {
    /** A message was stored in the inbox. */
    type: "message";
    /** The stored message. */
    message: InboxMessage;
  }
  | {
    /** Boxes were skipped. */
    type: "skipped";
    /** Why. */
    reason: "tombstone" | "malformed";
    /** Position of the first skipped box. */
    seq: number;
    /** How many boxes were skipped. */
    boxCount: number;
    /** Index of the first skipped box. Secret: never log it. */
    index: MessageBoxIndex;
  };

/**
 * The raw content of one box (`Channel.readBox`).
 *
 * @example Usage
 * ```ts ignore
 * const box: BoxRead = await channel.readBox(index, { noRetry: true });
 * if (box.status === "data") console.log(box.plaintext);
 * ```
 */
export interface BoxRead {
  /** `"data"`: written; `"tombstone"`: deleted; `"empty"`: not written yet (only with `noRetry`). */
  status: "data" | "tombstone" | "empty";
  /** The box's bytes when `status` is `"data"`, otherwise `null`. */
  plaintext: Uint8Array | null;
  /** The index of the following box. */
  next: MessageBoxIndex;
}

/**
 * A write recorded in the outbox and not yet acknowledged, or one that failed.
 *
 * @example Usage
 * ```ts ignore
 * for (const item of await channel.outbox()) {
 *   if (item.state === "failed") channel.discard(item.id);
 * }
 * ```
 */
export interface OutboxItem {
  /** Outbox id, for `discard`. */
  id: number;
  /** A message (`send`), a large message (`sendLarge`) or a tombstone. */
  kind: "message" | "copy" | "tombstone";
  /** Position of the first box (`null` for tombstones). */
  seq: number | null;
  /** Boxes written. */
  boxCount: number;
  /** Index of the first box. Secret: never log it. */
  index: MessageBoxIndex;
  /** The message as given to `send`/`sendLarge` (empty for tombstones). */
  plaintext: Uint8Array;
  /** `"pending"`: will be sent again; `"failed"`: the box held other content. */
  state: "pending" | "failed";
  /** Why it failed, for `"failed"`. */
  error: string | null;
  /** How many times it was sent again after its first attempt. */
  attempts: number;
  /** When it was recorded. */
  createdAt: Date;
}

/**
 * A position in a channel: the count of boxes before it and the box's index.
 *
 * @example Usage
 * ```ts ignore
 * const { read }: { read: Cursor } = await channel.cursors();
 * ```
 */
export interface Cursor {
  /** Boxes before this one, counted from the channel's start. */
  seq: number;
  /** The box's index. Secret: never log it. */
  index: MessageBoxIndex;
}

/**
 * The outcome of `resumePending()`.
 *
 * @example Usage
 * ```ts ignore
 * const { delivered, failed }: ResumeReport = await pigeonhole.resumePending();
 * ```
 */
export interface ResumeReport {
  /** Outbox items sent again and acknowledged. */
  delivered: number;
  /** Outbox items whose box turned out to hold other content (now `failed`). */
  failed: number;
}

/**
 * Options of `Channel.receive()` and `Channel.readBox()`.
 *
 * @example Usage
 * ```ts ignore
 * const r = await channel.receive({ noRetry: true, signal: AbortSignal.timeout(60_000) });
 * ```
 */
export interface ReceiveOptions extends CallOptions {
  /**
   * Return at once when the box is not written yet (`receive` resolves to
   * `null`, `readBox` to status `"empty"`) instead of waiting for it.
   * @default {false}
   */
  noRetry?: boolean;
}

/**
 * Options of `Channel.inbox()`.
 *
 * @example Usage
 * ```ts ignore
 * const unread = await channel.inbox({ unreadOnly: true, limit: 50 });
 * ```
 */
export interface InboxOptions {
  /**
   * Only messages not marked read.
   * @default {false}
   */
  unreadOnly?: boolean;
  /**
   * At most this many messages (oldest first).
   * @default {Infinity}
   */
  limit?: number;
}

/**
 * Options of `Channel.tombstone()`.
 *
 * @example Usage
 * ```ts ignore
 * const sent = await channel.send(bytes);
 * await channel.tombstone(sent.index, { count: sent.boxCount });
 * ```
 */
export interface TombstoneOptions extends CallOptions {
  /**
   * How many consecutive boxes to delete, starting at the index given.
   * @default {1}
   */
  count?: number;
}

/**
 * Options of `Channel.shareReadCap()`.
 *
 * @example Usage
 * ```ts ignore
 * const text = await channel.shareReadCap({ from: "next" });
 * ```
 */
export interface ShareOptions {
  /**
   * Where the reader starts: `"first"`, the channel's first box (the reader
   * gets every message still stored; boxes expire after one to two weeks,
   * and a reader waits forever on an expired box), or `"next"`, the next box
   * this store will write (owned) or read (imported).
   * @default {"first"}
   */
  from?: "first" | "next";
}

/**
 * Options of `PigeonholeClient.deleteChannel()`.
 *
 * @example Usage
 * ```ts ignore
 * pigeonhole.deleteChannel("news", { force: true });
 * ```
 */
export interface DeleteChannelOptions {
  /**
   * Delete even when sends are still pending (they are lost, and readers
   * will wait forever on their boxes).
   * @default {false}
   */
  force?: boolean;
}

/**
 * Options of the {@linkcode PigeonholeClient} constructor.
 *
 * @example Usage
 * ```ts ignore
 * import { PigeonholeClient, PigeonholeStore } from "@katzenpost/thinclient/persistent";
 *
 * using store = await PigeonholeStore.open("chat.db");
 * const pigeonhole = new PigeonholeClient(client, store, { confirmWrites: true });
 * ```
 */
export interface PigeonholeClientOptions {
  /**
   * Ask the replica whether a box was already occupied before a send counts
   * as delivered (`noIdempotentBoxAlreadyExists`, one more mixnet round
   * trip). Then a send into a box that holds other content fails with
   * `BoxConflictError` instead of being lost silently. With `false`, a send
   * completes on the courier's acknowledgement.
   * @default {true}
   */
  confirmWrites?: boolean;
}

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
 * import { PigeonholeClient } from "@katzenpost/thinclient/persistent";
 *
 * using alice = await PigeonholeClient.open(client, "alice.db");
 * const toBob = await alice.createChannel("to-bob");
 * const share = await toBob.shareReadCap(); // give this text to Bob
 * await toBob.send(new TextEncoder().encode("hello"));
 *
 * // Bob, with his own store:
 * using bob = await PigeonholeClient.open(client, "bob.db");
 * const inbox = await bob.importChannel("from-alice", share);
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
