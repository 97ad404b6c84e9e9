/**
 * Synchronous data access to the store of persistent channels: one method
 * per query of `_store_schema.ts`, each a transaction or a guarded read.
 *
 * @module
 */
import { bytes, num, SqlAccess } from "./_sql_access.ts";
import type { SqlDatabase } from "./_sqlite.ts";
import {
  type ChannelRow,
  channelRow,
  type ChannelSummaryRow,
  channelSummaryRow,
  type CursorRow,
  type InboxRow,
  inboxRow,
  MIGRATIONS,
  type NewIntent,
  type OutboxRow,
  outboxRow,
  SQL,
} from "./_store_schema.ts";
import { ChannelNotFoundError } from "./errors.ts";

/**
 * Synchronous data access over one SQLite connection. Internal: the public
 * face is `PigeonholeStore`.
 */
export class Db extends SqlAccess {
  /** @param conn The open connection of a store. */
  constructor(conn: SqlDatabase) {
    super(conn, "store");
  }

  /** Applies missing migrations of the store schema. */
  migrateStore(): void {
    this.migrate(MIGRATIONS);
  }

  /** A meta value. */
  metaGet(key: string): Uint8Array | undefined {
    return this.guard("read store settings", () => {
      const r = this.stmt(SQL.metaGet).get(key);
      return r === undefined ? undefined : bytes(r.value);
    });
  }

  /** Sets a meta value unless present; returns the stored value. */
  metaInit(key: string, value: Uint8Array): Uint8Array {
    return this.tx("write store settings", () => {
      this.stmt(SQL.metaInsert).run(key, value);
      return bytes(this.stmt(SQL.metaGet).get(key)!.value);
    });
  }

  // ---------------------------------------------------------------------------
  // Channels

  /** Inserts a channel; `null` when the name is taken. */
  insertChannel(c: {
    name: string;
    owned: boolean;
    writeCap: Uint8Array | null;
    readCap: Uint8Array;
    firstIndex: Uint8Array;
    writeIndex: Uint8Array | null;
    readIndex: Uint8Array;
    createdAt: number;
  }): number | null {
    return this.tx(`create channel '${c.name}'`, () => {
      if (this.stmt(SQL.channelIdByName).get(c.name) !== undefined) return null;
      const r = this.stmt(SQL.channelInsert).run(
        c.name,
        c.owned ? 1 : 0,
        c.writeCap,
        c.readCap,
        c.firstIndex,
        c.owned ? 0 : null,
        c.writeIndex,
        c.readIndex,
        c.createdAt,
      );
      return num(r.lastInsertRowid);
    });
  }

  /** A channel by name. */
  channelByName(name: string): ChannelRow | undefined {
    return this.guard(`read channel '${name}'`, () => {
      const r = this.stmt(SQL.channelByName).get(name);
      return r === undefined ? undefined : channelRow(r);
    });
  }

  /** A channel by id. */
  channelById(id: number, name: string): ChannelRow {
    return this.guard(`read channel '${name}'`, () => {
      const r = this.stmt(SQL.channelById).get(id);
      if (r === undefined) throw new ChannelNotFoundError(name);
      return channelRow(r);
    });
  }

  /** All channels with counters, by name. */
  listChannels(): ChannelSummaryRow[] {
    return this.guard(
      "list channels",
      () => this.stmt(SQL.channelList).all().map(channelSummaryRow),
    );
  }

  /** Deletes a channel (and its outbox and inbox). */
  deleteChannel(
    name: string,
    force: boolean,
  ): "deleted" | "missing" | { outbox: number } {
    return this.tx(`delete channel '${name}'`, () => {
      const r = this.stmt(SQL.channelIdByName).get(name);
      if (r === undefined) return "missing";
      const id = num(r.id);
      const n = num(this.stmt(SQL.outboxCount).get(id)!.n);
      if (n > 0 && !force) return { outbox: n };
      this.stmt(SQL.channelDelete).run(id);
      return "deleted";
    });
  }

  /** Names of channels with pending outbox rows. */
  channelsWithPending(): string[] {
    return this.guard(
      "list pending sends",
      () =>
        this.stmt(SQL.channelsWithPending).all().map((r) => r.name as string),
    );
  }

  // ---------------------------------------------------------------------------
  // Cursors and outbox

  /** The write cursor of an owned channel. */
  writeCursor(channelId: number, name: string): CursorRow {
    return this.#cursor("write", channelId, name);
  }

  /** The read cursor of a channel. */
  readCursor(channelId: number, name: string): CursorRow {
    return this.#cursor("read", channelId, name);
  }

  /**
   * Reserves boxes: if the write cursor is still at `expectSeq`, records the
   * intent and moves the cursor to `next`, in one transaction. Returns the
   * outbox id, or `null` when the cursor moved (another handle reserved
   * first: retry with the new cursor).
   */
  reserve(
    channelId: number,
    name: string,
    expectSeq: number,
    next: CursorRow,
    intent: NewIntent,
    now: number,
  ): number | null {
    return this.tx(`reserve box on channel '${name}'`, () => {
      const at = this.#cursorRow("write", channelId, name).seq;
      if (at !== expectSeq) return null;
      const id = this.#insertIntent(channelId, intent, now);
      this.stmt(SQL.writeCursorSet).run(next.seq, next.index, channelId);
      return id;
    });
  }

  /** Records an intent that reserves nothing (a tombstone of given boxes). */
  insertIntent(
    channelId: number,
    name: string,
    intent: NewIntent,
    now: number,
  ): number {
    return this.tx(`record tombstone on channel '${name}'`, () => {
      this.#cursorRow("write", channelId, name); // the channel must exist
      return this.#insertIntent(channelId, intent, now);
    });
  }

  /** Pending outbox rows of a channel, oldest first. */
  pendingIntents(channelId: number): OutboxRow[] {
    return this.guard(
      "read outbox",
      () => this.stmt(SQL.outboxPending).all(channelId).map(outboxRow),
    );
  }

  /** Ids of the pending outbox rows of a channel, oldest first. */
  pendingIntentIds(channelId: number): number[] {
    return this.guard(
      "read outbox",
      () =>
        this.stmt(SQL.outboxPendingIds).all(channelId).map((r) => num(r.id)),
    );
  }

  /** All outbox rows of a channel, oldest first. */
  listOutbox(channelId: number): OutboxRow[] {
    return this.guard(
      "read outbox",
      () => this.stmt(SQL.outboxList).all(channelId).map(outboxRow),
    );
  }

  /** One outbox row of a channel. */
  intent(channelId: number, id: number): OutboxRow | undefined {
    return this.guard("read outbox", () => {
      const r = this.stmt(SQL.outboxById).get(id, channelId);
      return r === undefined ? undefined : outboxRow(r);
    });
  }

  /** Counts a delivery attempt. */
  intentAttempt(id: number): void {
    this.tx("update outbox", () => {
      this.stmt(SQL.outboxAttempt).run(id);
    });
  }

  /** Deletes a delivered intent. */
  completeIntent(id: number): void {
    this.tx("update outbox", () => {
      this.stmt(SQL.outboxDelete).run(id);
    });
  }

  /** Marks a pending intent failed (kept for the application). */
  failIntent(id: number, error: string): void {
    this.tx("update outbox", () => {
      this.stmt(SQL.outboxFail).run(error, id);
    });
  }

  /**
   * Discards an outbox row: a pending message or copy becomes a pending
   * tombstone of the same boxes (readers must not wait on a reserved box
   * forever); a failed row or a pending tombstone is deleted.
   */
  discardIntent(
    channelId: number,
    id: number,
    emptyPayload: Uint8Array,
  ): "tombstone" | "deleted" | "missing" {
    return this.tx("discard outbox item", () => {
      const r = this.stmt(SQL.outboxById).get(id, channelId);
      if (r === undefined) return "missing";
      const row = outboxRow(r);
      if (row.state === "pending" && row.kind !== "tombstone") {
        this.stmt(SQL.outboxToTombstone).run(emptyPayload, id);
        return "tombstone";
      }
      this.stmt(SQL.outboxDelete).run(id);
      return "deleted";
    });
  }

  // ---------------------------------------------------------------------------
  // Inbox

  /**
   * Stores what was read at the read cursor and moves the cursor, in one
   * transaction. When the cursor is no longer at `expectSeq` (another handle
   * got there first) nothing changes and `"moved"` is returned. Otherwise
   * returns the inbox id of the message, or `null` when none was given.
   */
  commitReceive(
    channelId: number,
    name: string,
    expectSeq: number,
    next: CursorRow,
    message: {
      seq: number;
      boxCount: number;
      boxIndex: Uint8Array;
      plaintext: Uint8Array;
      receivedAt: number;
    } | null,
  ): number | null | "moved" {
    return this.tx(`store message of channel '${name}'`, () => {
      const at = this.#cursorRow("read", channelId, name).seq;
      if (at !== expectSeq) return "moved";
      if (message !== null) {
        // OR IGNORE: the unique (channel, seq) key is the last line of defence.
        this.stmt(SQL.inboxInsert).run(
          channelId,
          message.seq,
          message.boxCount,
          message.boxIndex,
          message.plaintext,
          message.receivedAt,
        );
      }
      this.stmt(SQL.readCursorSet).run(next.seq, next.index, channelId);
      if (message === null) return null;
      const row = this.stmt(SQL.inboxIdBySeq).get(channelId, message.seq);
      return row === undefined ? null : num(row.id);
    });
  }

  /** One inbox row. */
  inboxById(id: number): InboxRow | undefined {
    return this.guard("read inbox", () => {
      const r = this.stmt(SQL.inboxById).get(id);
      return r === undefined ? undefined : inboxRow(r);
    });
  }

  /** Inbox rows of a channel in channel order. */
  listInbox(channelId: number, unreadOnly: boolean, limit: number): InboxRow[] {
    return this.guard(
      "read inbox",
      () =>
        this.stmt(unreadOnly ? SQL.inboxUnread : SQL.inboxAll)
          .all(channelId, limit)
          .map(inboxRow),
    );
  }

  /**
   * Marks inbox rows read, all or none. Returns the ids that are not in the
   * channel (nothing is changed then).
   */
  markRead(channelId: number, ids: readonly number[]): number[] {
    return this.tx("mark messages read", () => {
      const missing = ids.filter((id) =>
        this.stmt(SQL.inboxOwned).get(channelId, id) === undefined
      );
      if (missing.length > 0) return missing;
      for (const id of ids) this.stmt(SQL.inboxMarkRead).run(id);
      return [];
    });
  }

  /** Deletes inbox rows of a channel; returns how many existed. */
  deleteMessages(channelId: number, ids: readonly number[]): number {
    return this.tx("delete messages", () => {
      let n = 0;
      for (const id of ids) {
        n += num(this.stmt(SQL.inboxDelete).run(channelId, id).changes);
      }
      return n;
    });
  }

  /** A write or read cursor, read in a guard. */
  #cursor(which: "write" | "read", channelId: number, name: string): CursorRow {
    return this.guard(
      `read ${which} cursor of channel '${name}'`,
      () => this.#cursorRow(which, channelId, name),
    );
  }

  /**
   * A write or read cursor.
   *
   * @throws {ChannelNotFoundError} When the channel is gone.
   */
  #cursorRow(
    which: "write" | "read",
    channelId: number,
    name: string,
  ): CursorRow {
    const sql = which === "write" ? SQL.writeCursor : SQL.readCursor;
    const r = this.stmt(sql).get(channelId);
    if (r === undefined) throw new ChannelNotFoundError(name);
    return which === "write"
      ? { seq: num(r.write_seq), index: bytes(r.write_index) }
      : { seq: num(r.read_seq), index: bytes(r.read_index) };
  }

  /** Inserts an outbox row (inside a transaction); returns its id. */
  #insertIntent(channelId: number, intent: NewIntent, now: number): number {
    const ins = this.stmt(SQL.outboxInsert).run(
      channelId,
      intent.kind,
      intent.seq,
      intent.boxCount,
      intent.boxIndex,
      intent.payload,
      now,
    );
    return num(ins.lastInsertRowid);
  }
}
