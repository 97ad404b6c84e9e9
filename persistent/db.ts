/**
 * The SQLite store of persistent channels. Every SQL statement of the
 * persistent layer is in this file.
 *
 * Schema (version 1, see `MIGRATIONS`):
 * - `meta`: key/value settings (whether secrets are sealed, a key check).
 * - `channels`: one row per named channel: capabilities, the write cursor
 *   (`write_seq`, `write_index`: the next box to reserve; owned channels
 *   only) and the read cursor (`read_seq`, `read_index`: the next box to
 *   read). `seq` counts boxes from the channel's start (0, 1, 2, …).
 * - `outbox`: send intents. A row is inserted in the same transaction that
 *   moves the write cursor past its boxes, before anything is sent, and is
 *   deleted once the write is acknowledged. Rows left behind by a crash are
 *   sent again (same box, same bytes) before any new send.
 * - `inbox`: received messages, inserted in the same transaction that moves
 *   the read cursor; `UNIQUE (channel_id, seq)` keeps a box from being
 *   stored twice.
 *
 * Capabilities, indices and plaintexts are stored sealed when the store was
 * opened with a seal key (see `_seal.ts`); names and counters are not.
 *
 * @module
 */
import {
  openSqlite,
  shortReason,
  type SqlDatabase,
  type SqliteIdentity,
  type SqlRow,
} from "./_sqlite.ts";
import { makeSealer, type Sealer } from "./_seal.ts";
import { ChannelNotFoundError, PersistentError } from "./errors.ts";

/**
 * The schema, one entry per version. Never edit a released entry: append a
 * new one. `PRAGMA user_version` holds the number of entries applied.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
  ) STRICT;

  CREATE TABLE channels (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    owned INTEGER NOT NULL CHECK (owned IN (0, 1)),
    write_cap BLOB,
    read_cap BLOB NOT NULL,
    first_index BLOB NOT NULL,
    write_seq INTEGER,
    write_index BLOB,
    read_seq INTEGER NOT NULL,
    read_index BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    CHECK ((owned = 1) = (write_cap IS NOT NULL)),
    CHECK ((owned = 1) = (write_seq IS NOT NULL AND write_index IS NOT NULL))
  ) STRICT;

  CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    channel_id INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('message', 'copy', 'tombstone')),
    seq INTEGER,
    box_count INTEGER NOT NULL CHECK (box_count >= 1),
    box_index BLOB NOT NULL,
    payload BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'failed')),
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    UNIQUE (channel_id, seq)
  ) STRICT;
  CREATE INDEX outbox_pending ON outbox (channel_id, state, id);

  CREATE TABLE inbox (
    id INTEGER PRIMARY KEY,
    channel_id INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    box_count INTEGER NOT NULL CHECK (box_count >= 1),
    box_index BLOB NOT NULL,
    plaintext BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    is_read INTEGER NOT NULL DEFAULT 0 CHECK (is_read IN (0, 1)),
    UNIQUE (channel_id, seq)
  ) STRICT;
  CREATE INDEX inbox_unread ON inbox (channel_id, is_read, seq);
  `,
];

/** The schema version this code writes. */
export const SCHEMA_VERSION: number = MIGRATIONS.length;

/**
 * How a store file identifies itself: `PRAGMA application_id` 0x6b706873
 * ("kphs"), set when the file is created. Stores written before it was set
 * are recognised by their tables and marked on open.
 */
const STORE_IDENTITY: SqliteIdentity = {
  what: "store",
  applicationId: 0x6b706873,
  userVersion: SCHEMA_VERSION,
  legacyTables: ["meta", "channels", "outbox", "inbox"],
};

const SQL = {
  userVersion: "PRAGMA user_version",
  metaGet: "SELECT value FROM meta WHERE key = ?",
  metaInsert: "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",

  channelByName: "SELECT * FROM channels WHERE name = ?",
  channelById: "SELECT * FROM channels WHERE id = ?",
  channelIdByName: "SELECT id FROM channels WHERE name = ?",
  channelInsert: `INSERT INTO channels
    (name, owned, write_cap, read_cap, first_index, write_seq, write_index,
     read_seq, read_index, created_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`,
  channelList: `SELECT c.name, c.owned, c.created_at, c.write_seq, c.read_seq,
      (SELECT count(*) FROM outbox o
        WHERE o.channel_id = c.id AND o.state = 'pending') AS pending,
      (SELECT count(*) FROM outbox o
        WHERE o.channel_id = c.id AND o.state = 'failed') AS failed,
      (SELECT count(*) FROM inbox i
        WHERE i.channel_id = c.id AND i.is_read = 0) AS unread
    FROM channels c ORDER BY c.name`,
  channelDelete: "DELETE FROM channels WHERE id = ?",
  channelsWithPending: `SELECT DISTINCT c.name FROM channels c
    JOIN outbox o ON o.channel_id = c.id AND o.state = 'pending'
    ORDER BY c.name`,

  writeCursor: "SELECT write_seq, write_index FROM channels WHERE id = ?",
  writeCursorSet:
    "UPDATE channels SET write_seq = ?, write_index = ? WHERE id = ?",
  readCursor: "SELECT read_seq, read_index FROM channels WHERE id = ?",
  readCursorSet:
    "UPDATE channels SET read_seq = ?, read_index = ? WHERE id = ?",

  outboxInsert: `INSERT INTO outbox
    (channel_id, kind, seq, box_count, box_index, payload, created_at)
    VALUES (?, ?, ?, ?, ?, ?, ?)`,
  outboxPending: `SELECT * FROM outbox
    WHERE channel_id = ? AND state = 'pending' ORDER BY id`,
  outboxPendingIds: `SELECT id FROM outbox
    WHERE channel_id = ? AND state = 'pending' ORDER BY id`,
  outboxList: "SELECT * FROM outbox WHERE channel_id = ? ORDER BY id",
  outboxCount: "SELECT count(*) AS n FROM outbox WHERE channel_id = ?",
  outboxById: "SELECT * FROM outbox WHERE id = ? AND channel_id = ?",
  outboxDelete: "DELETE FROM outbox WHERE id = ?",
  outboxAttempt: "UPDATE outbox SET attempts = attempts + 1 WHERE id = ?",
  outboxFail:
    "UPDATE outbox SET state = 'failed', error = ? WHERE id = ? AND state = 'pending'",
  outboxToTombstone: `UPDATE outbox
    SET kind = 'tombstone', seq = NULL, payload = ?, state = 'pending', error = NULL
    WHERE id = ?`,

  inboxInsert: `INSERT OR IGNORE INTO inbox
    (channel_id, seq, box_count, box_index, plaintext, received_at)
    VALUES (?, ?, ?, ?, ?, ?)`,
  inboxIdBySeq: "SELECT id FROM inbox WHERE channel_id = ? AND seq = ?",
  inboxById: "SELECT * FROM inbox WHERE id = ?",
  inboxAll: "SELECT * FROM inbox WHERE channel_id = ? ORDER BY seq LIMIT ?",
  inboxUnread: `SELECT * FROM inbox WHERE channel_id = ? AND is_read = 0
    ORDER BY seq LIMIT ?`,
  inboxOwned: "SELECT id FROM inbox WHERE channel_id = ? AND id = ?",
  inboxMarkRead: "UPDATE inbox SET is_read = 1 WHERE id = ?",
  inboxDelete: "DELETE FROM inbox WHERE channel_id = ? AND id = ?",
} as const;

/** A channel row (secrets still sealed). */
export interface ChannelRow {
  id: number;
  name: string;
  owned: boolean;
  writeCap: Uint8Array | null;
  readCap: Uint8Array;
  firstIndex: Uint8Array;
  writeSeq: number | null;
  writeIndex: Uint8Array | null;
  readSeq: number;
  readIndex: Uint8Array;
  createdAt: number;
}

/** A row of `listChannels`. */
export interface ChannelSummaryRow {
  name: string;
  owned: boolean;
  createdAt: number;
  writeSeq: number | null;
  readSeq: number;
  pending: number;
  failed: number;
  unread: number;
}

/** What an outbox row writes. */
export type OutboxKind = "message" | "copy" | "tombstone";

/** An outbox row (payload and index still sealed). */
export interface OutboxRow {
  id: number;
  channelId: number;
  kind: OutboxKind;
  seq: number | null;
  boxCount: number;
  boxIndex: Uint8Array;
  payload: Uint8Array;
  state: "pending" | "failed";
  error: string | null;
  attempts: number;
  createdAt: number;
}

/** An inbox row (index and plaintext still sealed). */
export interface InboxRow {
  id: number;
  channelId: number;
  seq: number;
  boxCount: number;
  boxIndex: Uint8Array;
  plaintext: Uint8Array;
  receivedAt: number;
  isRead: boolean;
}

/** A new outbox row. */
export interface NewIntent {
  kind: OutboxKind;
  seq: number | null;
  boxCount: number;
  boxIndex: Uint8Array;
  payload: Uint8Array;
}

/** A cursor (sealed index). */
export interface CursorRow {
  seq: number;
  index: Uint8Array;
}

function num(v: unknown): number {
  return typeof v === "bigint" ? Number(v) : v as number;
}

function bytes(v: unknown): Uint8Array {
  return v as Uint8Array;
}

function channelRow(r: SqlRow): ChannelRow {
  return {
    id: num(r.id),
    name: r.name as string,
    owned: num(r.owned) === 1,
    writeCap: r.write_cap === null ? null : bytes(r.write_cap),
    readCap: bytes(r.read_cap),
    firstIndex: bytes(r.first_index),
    writeSeq: r.write_seq === null ? null : num(r.write_seq),
    writeIndex: r.write_index === null ? null : bytes(r.write_index),
    readSeq: num(r.read_seq),
    readIndex: bytes(r.read_index),
    createdAt: num(r.created_at),
  };
}

function outboxRow(r: SqlRow): OutboxRow {
  return {
    id: num(r.id),
    channelId: num(r.channel_id),
    kind: r.kind as OutboxKind,
    seq: r.seq === null ? null : num(r.seq),
    boxCount: num(r.box_count),
    boxIndex: bytes(r.box_index),
    payload: bytes(r.payload),
    state: r.state as "pending" | "failed",
    error: r.error as string | null,
    attempts: num(r.attempts),
    createdAt: num(r.created_at),
  };
}

function inboxRow(r: SqlRow): InboxRow {
  return {
    id: num(r.id),
    channelId: num(r.channel_id),
    seq: num(r.seq),
    boxCount: num(r.box_count),
    boxIndex: bytes(r.box_index),
    plaintext: bytes(r.plaintext),
    receivedAt: num(r.received_at),
    isRead: num(r.is_read) === 1,
  };
}

const describe = shortReason;

/**
 * Synchronous data access over one SQLite connection. Internal: the public
 * face is {@linkcode PigeonholeStore}.
 */
export class Db {
  #conn: SqlDatabase | null;
  readonly #stmts = new Map<string, ReturnType<SqlDatabase["prepare"]>>();

  constructor(conn: SqlDatabase) {
    this.#conn = conn;
  }

  get closed(): boolean {
    return this.#conn === null;
  }

  close(): void {
    const c = this.#conn;
    if (c === null) return;
    this.#conn = null;
    this.#stmts.clear();
    c.close();
  }

  #c(): SqlDatabase {
    if (this.#conn === null) {
      throw new PersistentError("Cannot use store: it is closed");
    }
    return this.#conn;
  }

  #s(sql: string): ReturnType<SqlDatabase["prepare"]> {
    let st = this.#stmts.get(sql);
    if (st === undefined) {
      st = this.#c().prepare(sql);
      this.#stmts.set(sql, st);
    }
    return st;
  }

  /** Runs `fn` in a write transaction (BEGIN IMMEDIATE); a throw rolls back. */
  #tx<T>(action: string, fn: () => T): T {
    const c = this.#c();
    if (c.isTransaction) return fn();
    try {
      c.exec("BEGIN IMMEDIATE");
    } catch (err) {
      throw new PersistentError(`Cannot ${action}: ${describe(err)}`, {
        cause: err,
      });
    }
    try {
      const out = fn();
      c.exec("COMMIT");
      return out;
    } catch (err) {
      if (c.isTransaction) c.exec("ROLLBACK");
      if (err instanceof PersistentError) throw err;
      throw new PersistentError(`Cannot ${action}: ${describe(err)}`, {
        cause: err,
      });
    }
  }

  /** Runs a read, wrapping driver errors. */
  #read<T>(action: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof PersistentError) throw err;
      throw new PersistentError(`Cannot ${action}: ${describe(err)}`, {
        cause: err,
      });
    }
  }

  // ---------------------------------------------------------------------------
  // Setup

  /** Sets the connection pragmas. */
  configure(busyTimeout: number, synchronous: "full" | "normal"): void {
    const c = this.#c();
    c.exec(`PRAGMA busy_timeout = ${Math.trunc(busyTimeout)}`);
    c.exec("PRAGMA foreign_keys = ON");
    c.exec("PRAGMA journal_mode = WAL");
    c.exec(
      `PRAGMA synchronous = ${synchronous === "full" ? "FULL" : "NORMAL"}`,
    );
  }

  /** The applied schema version. */
  schemaVersion(): number {
    return this.#read(
      "read schema version",
      () => num(this.#c().prepare(SQL.userVersion).get()?.user_version ?? 0),
    );
  }

  /** Applies missing migrations, each in its own transaction. */
  migrate(): void {
    const have = this.schemaVersion();
    if (have > MIGRATIONS.length) {
      throw new PersistentError(
        `Cannot open store: schema version ${have} is newer than supported version ${MIGRATIONS.length}`,
      );
    }
    for (let v = have; v < MIGRATIONS.length; v++) {
      this.#tx(`migrate store to schema version ${v + 1}`, () => {
        // Another process may have migrated while we waited for the lock.
        if (this.schemaVersion() > v) return;
        this.#c().exec(MIGRATIONS[v]!);
        this.#c().exec(`PRAGMA user_version = ${v + 1}`);
      });
    }
  }

  /** A meta value. */
  metaGet(key: string): Uint8Array | undefined {
    return this.#read("read store settings", () => {
      const r = this.#s(SQL.metaGet).get(key);
      return r === undefined ? undefined : bytes(r.value);
    });
  }

  /** Sets a meta value unless present; returns the stored value. */
  metaInit(key: string, value: Uint8Array): Uint8Array {
    return this.#tx("write store settings", () => {
      this.#s(SQL.metaInsert).run(key, value);
      return bytes(this.#s(SQL.metaGet).get(key)!.value);
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
    return this.#tx(`create channel '${c.name}'`, () => {
      if (this.#s(SQL.channelIdByName).get(c.name) !== undefined) return null;
      const r = this.#s(SQL.channelInsert).run(
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
    return this.#read(`read channel '${name}'`, () => {
      const r = this.#s(SQL.channelByName).get(name);
      return r === undefined ? undefined : channelRow(r);
    });
  }

  /** A channel by id. */
  channelById(id: number, name: string): ChannelRow {
    return this.#read(`read channel '${name}'`, () => {
      const r = this.#s(SQL.channelById).get(id);
      if (r === undefined) throw new ChannelNotFoundError(name);
      return channelRow(r);
    });
  }

  /** All channels with counters, by name. */
  listChannels(): ChannelSummaryRow[] {
    return this.#read(
      "list channels",
      () =>
        this.#s(SQL.channelList).all().map((r) => ({
          name: r.name as string,
          owned: num(r.owned) === 1,
          createdAt: num(r.created_at),
          writeSeq: r.write_seq === null ? null : num(r.write_seq),
          readSeq: num(r.read_seq),
          pending: num(r.pending),
          failed: num(r.failed),
          unread: num(r.unread),
        })),
    );
  }

  /** Deletes a channel (and its outbox and inbox). */
  deleteChannel(
    name: string,
    force: boolean,
  ): "deleted" | "missing" | { outbox: number } {
    return this.#tx(`delete channel '${name}'`, () => {
      const r = this.#s(SQL.channelIdByName).get(name);
      if (r === undefined) return "missing";
      const id = num(r.id);
      const n = num(this.#s(SQL.outboxCount).get(id)!.n);
      if (n > 0 && !force) return { outbox: n };
      this.#s(SQL.channelDelete).run(id);
      return "deleted";
    });
  }

  /** Names of channels with pending outbox rows. */
  channelsWithPending(): string[] {
    return this.#read(
      "list pending sends",
      () => this.#s(SQL.channelsWithPending).all().map((r) => r.name as string),
    );
  }

  // ---------------------------------------------------------------------------
  // Write cursor and outbox

  /** The write cursor of an owned channel. */
  writeCursor(channelId: number, name: string): CursorRow {
    return this.#read(`read write cursor of channel '${name}'`, () => {
      const r = this.#s(SQL.writeCursor).get(channelId);
      if (r === undefined) throw new ChannelNotFoundError(name);
      return { seq: num(r.write_seq), index: bytes(r.write_index) };
    });
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
    return this.#tx(`reserve box on channel '${name}'`, () => {
      const r = this.#s(SQL.writeCursor).get(channelId);
      if (r === undefined) throw new ChannelNotFoundError(name);
      if (num(r.write_seq) !== expectSeq) return null;
      const ins = this.#s(SQL.outboxInsert).run(
        channelId,
        intent.kind,
        intent.seq,
        intent.boxCount,
        intent.boxIndex,
        intent.payload,
        now,
      );
      this.#s(SQL.writeCursorSet).run(next.seq, next.index, channelId);
      return num(ins.lastInsertRowid);
    });
  }

  /** Records an intent that reserves nothing (a tombstone of given boxes). */
  insertIntent(
    channelId: number,
    name: string,
    intent: NewIntent,
    now: number,
  ): number {
    return this.#tx(`record tombstone on channel '${name}'`, () => {
      if (this.#s(SQL.writeCursor).get(channelId) === undefined) {
        throw new ChannelNotFoundError(name);
      }
      const ins = this.#s(SQL.outboxInsert).run(
        channelId,
        intent.kind,
        intent.seq,
        intent.boxCount,
        intent.boxIndex,
        intent.payload,
        now,
      );
      return num(ins.lastInsertRowid);
    });
  }

  /** Pending outbox rows of a channel, oldest first. */
  pendingIntents(channelId: number): OutboxRow[] {
    return this.#read(
      "read outbox",
      () => this.#s(SQL.outboxPending).all(channelId).map(outboxRow),
    );
  }

  /** Ids of the pending outbox rows of a channel, oldest first. */
  pendingIntentIds(channelId: number): number[] {
    return this.#read(
      "read outbox",
      () => this.#s(SQL.outboxPendingIds).all(channelId).map((r) => num(r.id)),
    );
  }

  /** All outbox rows of a channel, oldest first. */
  listOutbox(channelId: number): OutboxRow[] {
    return this.#read(
      "read outbox",
      () => this.#s(SQL.outboxList).all(channelId).map(outboxRow),
    );
  }

  /** One outbox row of a channel. */
  intent(channelId: number, id: number): OutboxRow | undefined {
    return this.#read("read outbox", () => {
      const r = this.#s(SQL.outboxById).get(id, channelId);
      return r === undefined ? undefined : outboxRow(r);
    });
  }

  /** Counts a delivery attempt. */
  intentAttempt(id: number): void {
    this.#tx("update outbox", () => {
      this.#s(SQL.outboxAttempt).run(id);
    });
  }

  /** Deletes a delivered intent. */
  completeIntent(id: number): void {
    this.#tx("update outbox", () => {
      this.#s(SQL.outboxDelete).run(id);
    });
  }

  /** Marks a pending intent failed (kept for the application). */
  failIntent(id: number, error: string): void {
    this.#tx("update outbox", () => {
      this.#s(SQL.outboxFail).run(error, id);
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
    return this.#tx("discard outbox item", () => {
      const r = this.#s(SQL.outboxById).get(id, channelId);
      if (r === undefined) return "missing";
      const row = outboxRow(r);
      if (row.state === "pending" && row.kind !== "tombstone") {
        this.#s(SQL.outboxToTombstone).run(emptyPayload, id);
        return "tombstone";
      }
      this.#s(SQL.outboxDelete).run(id);
      return "deleted";
    });
  }

  // ---------------------------------------------------------------------------
  // Read cursor and inbox

  /** The read cursor of a channel. */
  readCursor(channelId: number, name: string): CursorRow {
    return this.#read(`read read cursor of channel '${name}'`, () => {
      const r = this.#s(SQL.readCursor).get(channelId);
      if (r === undefined) throw new ChannelNotFoundError(name);
      return { seq: num(r.read_seq), index: bytes(r.read_index) };
    });
  }

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
    return this.#tx(`store message of channel '${name}'`, () => {
      const r = this.#s(SQL.readCursor).get(channelId);
      if (r === undefined) throw new ChannelNotFoundError(name);
      if (num(r.read_seq) !== expectSeq) return "moved";
      if (message !== null) {
        // OR IGNORE: the unique (channel, seq) key is the last line of defence.
        this.#s(SQL.inboxInsert).run(
          channelId,
          message.seq,
          message.boxCount,
          message.boxIndex,
          message.plaintext,
          message.receivedAt,
        );
      }
      this.#s(SQL.readCursorSet).run(next.seq, next.index, channelId);
      if (message === null) return null;
      const row = this.#s(SQL.inboxIdBySeq).get(channelId, message.seq);
      return row === undefined ? null : num(row.id);
    });
  }

  /** One inbox row. */
  inboxById(id: number): InboxRow | undefined {
    return this.#read("read inbox", () => {
      const r = this.#s(SQL.inboxById).get(id);
      return r === undefined ? undefined : inboxRow(r);
    });
  }

  /** Inbox rows of a channel in channel order. */
  listInbox(channelId: number, unreadOnly: boolean, limit: number): InboxRow[] {
    return this.#read(
      "read inbox",
      () =>
        this.#s(unreadOnly ? SQL.inboxUnread : SQL.inboxAll)
          .all(channelId, limit)
          .map(inboxRow),
    );
  }

  /**
   * Marks inbox rows read, all or none. Returns the ids that are not in the
   * channel (nothing is changed then).
   */
  markRead(channelId: number, ids: readonly number[]): number[] {
    return this.#tx("mark messages read", () => {
      const missing = ids.filter((id) =>
        this.#s(SQL.inboxOwned).get(channelId, id) === undefined
      );
      if (missing.length > 0) return missing;
      for (const id of ids) this.#s(SQL.inboxMarkRead).run(id);
      return [];
    });
  }

  /** Deletes inbox rows of a channel; returns how many existed. */
  deleteMessages(channelId: number, ids: readonly number[]): number {
    return this.#tx("delete messages", () => {
      let n = 0;
      for (const id of ids) {
        n += num(this.#s(SQL.inboxDelete).run(channelId, id).changes);
      }
      return n;
    });
  }
}

/**
 * Options of {@linkcode PigeonholeStore.open}.
 *
 * @example Usage
 * ```ts ignore
 * const sealKey = crypto.getRandomValues(new Uint8Array(32)); // keep it safe!
 * const store = await PigeonholeStore.open("chat.db", { sealKey });
 * ```
 */
export interface PigeonholeStoreOptions {
  /**
   * Seals capabilities, indices and message plaintexts at rest with
   * AES-256-GCM: a 32-byte key or an AES-GCM `CryptoKey` (usages encrypt and
   * decrypt). A store created with a key can only be opened with the same
   * key; a store created without one cannot be opened with one.
   * @default {undefined}
   */
  sealKey?: CryptoKey | Uint8Array;
  /**
   * Milliseconds a statement waits for another process's lock before failing.
   * @default {5000}
   */
  busyTimeout?: number;
  /**
   * SQLite `synchronous` setting. `"full"` makes every committed reservation
   * survive a power loss; `"normal"` (still safe against process crashes)
   * is faster.
   * @default {"full"}
   */
  synchronous?: "full" | "normal";
}

const CHECK_TEXT = new TextEncoder().encode("katzenpost persistent store");

const parts = new WeakMap<PigeonholeStore, { db: Db; sealer: Sealer }>();

/** Internal: the database and sealer behind a store. */
export function storeParts(store: PigeonholeStore): { db: Db; sealer: Sealer } {
  const p = parts.get(store);
  if (p === undefined) throw new TypeError("Cannot use store: not a store");
  return p;
}

/**
 * An SQLite file holding persistent channels: capabilities, cursors, the
 * outbox of sends not yet acknowledged and the inbox of received messages.
 *
 * The file is created with mode 0600 (an existing store readable by others is
 * made private when opened) and uses WAL, so several processes can open it at
 * once; writes that reserve boxes are serialized with `BEGIN IMMEDIATE`
 * transactions. It is marked with its own `PRAGMA application_id`; another
 * SQLite file is refused before anything is written to it. Pass the store to
 * {@linkcode PigeonholeClient} to use its channels.
 *
 * @example Usage
 * ```ts
 * import { PigeonholeStore } from "@katzenpost/thinclient/persistent";
 * using store = await PigeonholeStore.open(":memory:");
 * console.log(store.isSealed); // false
 * ```
 */
export class PigeonholeStore implements Disposable {
  /** The database path given to {@linkcode PigeonholeStore.open}. */
  readonly path: string;
  readonly #db: Db;
  readonly #sealer: Sealer;

  private constructor(path: string, db: Db, sealer: Sealer) {
    this.path = path;
    this.#db = db;
    this.#sealer = sealer;
    parts.set(this, { db, sealer });
  }

  /**
   * Opens (or creates) a store and brings its schema up to date.
   *
   * @param path A file path, or `":memory:"` for a private in-memory store.
   * @param options Seal key and SQLite settings.
   * @returns The open store.
   * @throws {PersistentError} When the file cannot be opened, is not a store
   *   of this library (another SQLite file, or not one at all: it is left
   *   byte for byte unchanged), its schema is newer than this library, it is
   *   readable by others and cannot be made private, or the seal key is
   *   missing or wrong.
   * @throws {TypeError} When the seal key is not usable.
   *
   * @example Usage
   * ```ts ignore
   * using store = await PigeonholeStore.open("chat.db");
   * ```
   */
  static async open(
    path: string,
    options: PigeonholeStoreOptions = {},
  ): Promise<PigeonholeStore> {
    if (typeof path !== "string" || path === "") {
      throw new TypeError("Cannot open store: path must be a non-empty string");
    }
    const busyTimeout = options.busyTimeout ?? 5000;
    if (!Number.isFinite(busyTimeout) || busyTimeout < 0) {
      throw new RangeError(
        `Cannot open store: busyTimeout '${busyTimeout}' is not a non-negative number`,
      );
    }
    const sealer = await makeSealer(options.sealKey);
    const { db: conn } = await openSqlite(path, STORE_IDENTITY);
    const db = new Db(conn);
    try {
      try {
        db.configure(busyTimeout, options.synchronous ?? "full");
      } catch (err) {
        throw new PersistentError(
          `Cannot open store '${path}': ${describe(err)}`,
          { cause: err },
        );
      }
      db.migrate();
      await checkSealing(db, sealer);
    } catch (err) {
      db.close();
      throw err;
    }
    return new PigeonholeStore(path, db, sealer);
  }

  /** Whether secrets are sealed with a key. */
  get isSealed(): boolean {
    return this.#sealer.sealed;
  }

  /** Whether {@linkcode PigeonholeStore.close} was called. */
  get isClosed(): boolean {
    return this.#db.closed;
  }

  /**
   * Closes the database. Idempotent. Operations still running fail with a
   * {@linkcode PersistentError}; nothing already committed is lost.
   *
   * @example Usage
   * ```ts
   * import { PigeonholeStore } from "@katzenpost/thinclient/persistent";
   * const store = await PigeonholeStore.open(":memory:");
   * store.close();
   * store.close(); // no-op
   * ```
   */
  close(): void {
    this.#db.close();
  }

  /** Same as {@linkcode PigeonholeStore.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

async function checkSealing(db: Db, sealer: Sealer): Promise<void> {
  const mode = new TextEncoder().encode(sealer.sealed ? "aes-gcm" : "none");
  const candidateCheck = sealer.sealed
    ? await sealer.seal("check", CHECK_TEXT)
    : new Uint8Array(0);
  const storedMode = new TextDecoder().decode(db.metaInit("sealing", mode));
  const check = db.metaInit("seal_check", candidateCheck);
  if (storedMode === "none" && sealer.sealed) {
    throw new PersistentError(
      "Cannot open store: it was created without a seal key",
    );
  }
  if (storedMode !== "none" && !sealer.sealed) {
    throw new PersistentError(
      "Cannot open store: it is sealed, a seal key is required",
    );
  }
  if (sealer.sealed) {
    let opened: Uint8Array;
    try {
      opened = await sealer.open("check", check);
    } catch (err) {
      throw new PersistentError("Cannot open store: wrong seal key", {
        cause: err,
      });
    }
    if (new TextDecoder().decode(opened) !== "katzenpost persistent store") {
      throw new PersistentError("Cannot open store: wrong seal key");
    }
  }
}
