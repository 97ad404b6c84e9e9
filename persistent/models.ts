/**
 * Data types of the persistent channel layer, and the text form in which a
 * channel's read capability is shared.
 *
 * @module
 */
import { bytesEqual, fromBase64Url, toBase64Url } from "../lib/_bytes.ts";
import { MessageBoxIndex, ReadCap } from "../lib/caps.ts";
import type { CallOptions } from "../lib/client.ts";
import { blake2b256 } from "../lib/hash.ts";

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
 * const [first]: InboxMessage[] = await channel.inbox({ unreadOnly: true });
 * channel.markRead(first.id);
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

/** What a reader needs to follow a channel: its read capability and first box. */
export interface SharedChannel {
  /** The channel's read capability. */
  readCap: ReadCap;
  /** The box the reader starts at. */
  startIndex: MessageBoxIndex;
}

const SHARE_PREFIX = "kpch1";
const SHARE_BODY = ReadCap.LENGTH + MessageBoxIndex.LENGTH;

/**
 * Encodes a read capability and a start index as text to give to a reader:
 * `kpch1` + base64url(read cap ‖ start index ‖ first 4 bytes of
 * BLAKE2b-256(read cap ‖ start index)). The text is a secret for readers:
 * whoever has it can read the channel from the start index on.
 *
 * @param shared The read capability and start index.
 * @returns The text.
 *
 * @example Usage
 * ```ts
 * import { MessageBoxIndex, ReadCap } from "@katzenpost/thinclient";
 * import { formatShareText, parseShareText } from "@katzenpost/thinclient/persistent";
 * const text = formatShareText({
 *   readCap: new ReadCap(new Uint8Array(136).fill(1)),
 *   startIndex: new MessageBoxIndex(new Uint8Array(104).fill(2)),
 * });
 * console.log(parseShareText(text).startIndex.bytes[0]); // 2
 * ```
 */
export function formatShareText(shared: SharedChannel): string {
  if (
    !(shared.readCap instanceof ReadCap) ||
    !(shared.startIndex instanceof MessageBoxIndex)
  ) {
    throw new TypeError(
      "Cannot format share text: expected a ReadCap and a MessageBoxIndex",
    );
  }
  const all = new Uint8Array(SHARE_BODY + 4);
  all.set(shared.readCap.bytes);
  all.set(shared.startIndex.bytes, ReadCap.LENGTH);
  all.set(blake2b256(all.subarray(0, SHARE_BODY)).subarray(0, 4), SHARE_BODY);
  return SHARE_PREFIX + toBase64Url(all);
}

/**
 * Parses the text made by {@linkcode formatShareText} (for example by
 * `Channel.shareReadCap()`). Surrounding white space is ignored.
 *
 * @param text The share text.
 * @returns The read capability and start index.
 * @throws {TypeError} When the text is not a share text or its checksum fails.
 *
 * @example Usage
 * ```ts
 * import { parseShareText } from "@katzenpost/thinclient/persistent";
 * try {
 *   parseShareText("kpch1AAAA");
 * } catch (err) {
 *   console.log((err as Error).name); // "TypeError"
 * }
 * ```
 */
export function parseShareText(text: string): SharedChannel {
  if (typeof text !== "string") {
    throw new TypeError("Cannot parse share text: expected a string");
  }
  const t = text.trim();
  if (!t.startsWith(SHARE_PREFIX)) {
    throw new TypeError(
      `Cannot parse share text: text does not start with '${SHARE_PREFIX}'`,
    );
  }
  const raw = fromBase64Url(t.slice(SHARE_PREFIX.length));
  if (raw === null || raw.length !== SHARE_BODY + 4) {
    throw new TypeError(
      `Cannot parse share text: expected ${
        SHARE_BODY + 4
      } base64url bytes after '${SHARE_PREFIX}'`,
    );
  }
  const body = raw.subarray(0, SHARE_BODY);
  if (!bytesEqual(blake2b256(body).subarray(0, 4), raw.subarray(SHARE_BODY))) {
    throw new TypeError(
      "Cannot parse share text: checksum mismatch (text damaged?)",
    );
  }
  return {
    readCap: new ReadCap(body.subarray(0, ReadCap.LENGTH)),
    startIndex: new MessageBoxIndex(body.subarray(ReadCap.LENGTH)),
  };
}
