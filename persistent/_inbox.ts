/**
 * The receiving side of a channel: reads at the read cursor (following a
 * large message over its boxes, skipping deleted or malformed boxes), stores
 * each message in the inbox with the cursor move in one transaction, and
 * serves the inbox.
 *
 * @module
 */
import { concatBytes } from "../lib/_bytes.ts";
import type { MessageBoxIndex, ReadCap } from "../lib/caps.ts";
import type { CallOptions } from "../lib/client.ts";
import { type BoxOutcome, readBox } from "../lib/boxes.ts";
import { parseFirstBox } from "./_box_format.ts";
import { type ChannelCore, checkIndex, opt } from "./_channel_core.ts";
import { PersistentError } from "./errors.ts";
import type {
  BoxRead,
  InboxMessage,
  InboxOptions,
  ReceiveOptions,
  ReceiveResult,
} from "./models.ts";

/**
 * The inbox of one channel: `receive`, `messages`, `readBox` and the stored
 * messages. Public methods behave as documented on `Channel`.
 */
export class Inbox {
  readonly #c: ChannelCore;

  constructor(core: ChannelCore) {
    this.#c = core;
  }

  async readBox(
    index: MessageBoxIndex,
    options: ReceiveOptions = {},
  ): Promise<BoxRead> {
    const c = this.#c;
    checkIndex(index, "read box");
    const { readCap } = await c.loadCaps();
    const box = await readBox(c.ctx.client, readCap, index, {
      ...opt(options.signal),
      noRetry: options.noRetry ?? false,
    });
    return {
      status: box.kind,
      plaintext: box.kind === "data" ? box.plaintext : null,
      next: box.next,
    };
  }

  async receive(options: ReceiveOptions = {}): Promise<ReceiveResult | null> {
    const c = this.#c;
    const signal = options.signal;
    const noRetry = options.noRetry ?? false;
    const { readCap } = await c.loadCaps();
    const release = await c.state.read.acquire(signal);
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
    const c = this.#c;
    const { db, sealer } = c.ctx;
    const cur = db.readCursor(c.id, c.name);
    const index = await c.unsealIndex(cur.index);
    const read = (at: MessageBoxIndex): Promise<BoxOutcome> =>
      readBox(c.ctx.client, readCap, at, { ...opt(signal), noRetry });
    const first = await read(index);
    if (first.kind === "empty") return null;

    /** Moves the cursor past `boxCount` boxes, storing `message` if any. */
    const commit = async (
      boxCount: number,
      next: MessageBoxIndex,
      message: Uint8Array | null,
    ): Promise<number | null | "moved"> => {
      const sealedNext = await sealer.seal("index", next.bytes);
      return db.commitReceive(
        c.id,
        c.name,
        cur.seq,
        { seq: cur.seq + boxCount, index: sealedNext },
        message === null ? null : {
          seq: cur.seq,
          boxCount,
          boxIndex: cur.index,
          plaintext: await sealer.seal("plaintext", message),
          receivedAt: Date.now(),
        },
      );
    };
    const skip = async (
      reason: "tombstone" | "malformed",
      boxCount: number,
      next: MessageBoxIndex,
    ): Promise<ReceiveResult | "moved"> => {
      const committed = await commit(boxCount, next, null);
      if (committed === "moved") return "moved";
      return { type: "skipped", reason, seq: cur.seq, boxCount, index };
    };

    if (first.kind === "tombstone") return skip("tombstone", 1, first.next);
    const parsed = parseFirstBox(first.plaintext);
    if (parsed.type === "malformed") return skip("malformed", 1, first.next);
    let message = parsed.type === "single" ? parsed.message : parsed.head;
    let boxCount = 1;
    let next = first.next;
    if (parsed.type === "large") {
      const parts = [parsed.head];
      let have = parsed.head.length;
      while (have < parsed.length) {
        const box = await read(next);
        if (box.kind === "empty") return null;
        boxCount++;
        if (box.kind === "tombstone") {
          return skip("malformed", boxCount, box.next);
        }
        parts.push(box.plaintext);
        have += box.plaintext.length;
        next = box.next;
      }
      message = concatBytes(parts).subarray(0, parsed.length);
    }

    const id = await commit(boxCount, next, message);
    if (id === "moved") return "moved";
    const row = id === null ? undefined : db.inboxById(id);
    if (id === null || row === undefined) {
      throw new PersistentError(
        `Cannot store message of channel '${c.name}': inbox row missing after insert`,
      );
    }
    return {
      type: "message",
      message: {
        id,
        channel: c.name,
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
    const c = this.#c;
    const limit = options.limit ?? Infinity;
    if (!(limit === Infinity || (Number.isSafeInteger(limit) && limit >= 0))) {
      throw new RangeError(
        `Cannot read inbox: limit '${limit}' is not a non-negative integer`,
      );
    }
    const rows = c.ctx.db.listInbox(
      c.id,
      options.unreadOnly ?? false,
      limit === Infinity ? -1 : limit,
    );
    const s = c.ctx.sealer;
    return await Promise.all(rows.map(async (r) => ({
      id: r.id,
      channel: c.name,
      seq: r.seq,
      boxCount: r.boxCount,
      index: await c.unsealIndex(r.boxIndex),
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
    const c = this.#c;
    const list = this.#ids(ids, "mark messages read");
    const missing = c.ctx.db.markRead(c.id, list);
    if (missing.length > 0) {
      throw new PersistentError(
        `Cannot mark messages read: id '${
          missing.join("', '")
        }' is not a message of channel '${c.name}'`,
      );
    }
  }

  deleteMessages(ids: number | readonly number[]): number {
    const c = this.#c;
    return c.ctx.db.deleteMessages(
      c.id,
      this.#ids(ids, "delete messages"),
    );
  }
}
