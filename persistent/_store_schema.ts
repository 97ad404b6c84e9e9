/**
 * The schema of the store of persistent channels, its SQL statements, and
 * the rows they read, as plain objects with sealed secrets still sealed.
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
 * @module
 */
import { bytes, num } from "./_sql_access.ts";
import type { SqliteIdentity, SqlRow } from "./_sqlite.ts";

/**
 * The schema, one entry per version. Never edit a released entry: append a
 * new one. `PRAGMA user_version` holds the number of entries applied.
 */
export const MIGRATIONS: readonly string[] = [
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
export const STORE_IDENTITY: SqliteIdentity = {
  what: "store",
  applicationId: 0x6b706873,
  userVersion: SCHEMA_VERSION,
  legacyTables: ["meta", "channels", "outbox", "inbox"],
};

/** Every statement of the store, by name. */
export const SQL = {
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

/** A `channels` row as a {@linkcode ChannelRow}. */
export function channelRow(r: SqlRow): ChannelRow {
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

/** An `outbox` row as an {@linkcode OutboxRow}. */
export function outboxRow(r: SqlRow): OutboxRow {
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

/** An `inbox` row as an {@linkcode InboxRow}. */
export function inboxRow(r: SqlRow): InboxRow {
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

/** A row of `SQL.channelList` as a {@linkcode ChannelSummaryRow}. */
export function channelSummaryRow(r: SqlRow): ChannelSummaryRow {
  return {
    name: r.name as string,
    owned: num(r.owned) === 1,
    createdAt: num(r.created_at),
    writeSeq: r.write_seq === null ? null : num(r.write_seq),
    readSeq: num(r.read_seq),
    pending: num(r.pending),
    failed: num(r.failed),
    unread: num(r.unread),
  };
}
