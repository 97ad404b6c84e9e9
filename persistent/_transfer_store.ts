/**
 * The SQL of pigeonhole-cp's resume state file (`--state`).
 *
 * One row per unfinished transfer, keyed by a hash of the capability and
 * start index (and, for receives, the destination directory). The row is a
 * CBOR record of progress; a send in copy mode also keeps its copy-stream
 * elements (they are encrypted with fresh randomness, so they cannot be
 * rebuilt identically). Rows are deleted when a transfer completes.
 *
 * The file is opened through `_sqlite.ts` like a store of persistent
 * channels: created with mode 0600 (an existing one readable by others is
 * made private), marked with its own `PRAGMA application_id`, and a file that
 * is not a state file, or one from a newer version, is refused before
 * anything is written to it (it stays byte for byte as it was).
 *
 * Schema version 0 is the `pigeonhole_cp_transfers` table, created when
 * missing (files written before versioning have it and user_version 0).
 * Later changes append to `TRANSFER_MIGRATIONS`, which raises user_version.
 *
 * @module
 */
import { decodeCbor, encodeCbor } from "../lib/cbor.ts";
import { SqlAccess, wrapSqlError } from "./_sql_access.ts";
import type { PersistentError } from "./errors.ts";
import {
  openSqlite,
  type SqlDatabase,
  type SqliteIdentity,
} from "./_sqlite.ts";

/** Schema version 0, as every state file since the first has it. */
const BASE_SCHEMA = `
CREATE TABLE IF NOT EXISTS pigeonhole_cp_transfers (
  key TEXT PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('send', 'receive')),
  record BLOB NOT NULL,
  elements BLOB,
  updated_at INTEGER NOT NULL
) STRICT;
`;

/**
 * Changes after version 0, one entry per version. Never edit a released
 * entry: append a new one.
 */
const TRANSFER_MIGRATIONS: readonly string[] = [];

/**
 * How a state file identifies itself: `PRAGMA application_id` 0x6b706370
 * ("kpcp"); files from before it was set are recognised by their table.
 */
const STATE_IDENTITY: SqliteIdentity = {
  what: "state file",
  applicationId: 0x6b706370,
  userVersion: TRANSFER_MIGRATIONS.length,
  legacyTables: ["pigeonhole_cp_transfers"],
};

const SQL = {
  get: "SELECT record, elements FROM pigeonhole_cp_transfers WHERE key = ?",
  put: `INSERT OR REPLACE INTO pigeonhole_cp_transfers
        (key, kind, record, elements, updated_at) VALUES (?, ?, ?, ?, ?)`,
  update: `UPDATE pigeonhole_cp_transfers SET record = ?, updated_at = ?
        WHERE key = ?`,
  delete: "DELETE FROM pigeonhole_cp_transfers WHERE key = ?",
} as const;

/** A stored transfer. */
export interface StoredTransfer {
  /** The progress record. */
  record: Record<string, unknown>;
  /** Copy-stream elements (send, copy mode), or `null`. */
  elements: Uint8Array | null;
}

/** What a transfer does. */
export type TransferKind = "send" | "receive";

/** Options of {@linkcode TransferDb.open}. */
export interface TransferDbOptions {
  /**
   * Turns a failed write into the error to throw (a caller's own type, a
   * hint of what to do).
   * @default {undefined} the PersistentError as it is
   */
  writeError?: (err: PersistentError) => Error;
}

/**
 * The open state file. A failed write is a one-line `PersistentError`
 * `Cannot <action> in state file '<path>': <reason>`, passed through
 * {@linkcode TransferDbOptions.writeError}.
 */
export class TransferDb extends SqlAccess implements Disposable {
  /** The file's path. */
  readonly path: string;
  readonly #writeError: (err: PersistentError) => Error;

  private constructor(
    conn: SqlDatabase,
    path: string,
    options: TransferDbOptions,
  ) {
    super(conn, STATE_IDENTITY.what);
    this.path = path;
    this.#writeError = options.writeError ?? ((err) => err);
  }

  /**
   * Opens or creates the state file (its folder must exist). Another SQLite
   * file, a file that is not one, or a newer state file is refused before
   * anything is written to it.
   *
   * @param path File path or `":memory:"`.
   * @param options How write errors are reported.
   * @returns The open state file.
   * @throws {PersistentError} `Cannot open state file '<path>': <reason>`.
   */
  static async open(
    path: string,
    options: TransferDbOptions = {},
  ): Promise<TransferDb> {
    const { db: conn } = await openSqlite(path, STATE_IDENTITY);
    const db = new TransferDb(conn, path, options);
    try {
      db.configure({ busyTimeout: 5000, synchronous: "normal" });
      conn.exec(BASE_SCHEMA);
      db.migrate(TRANSFER_MIGRATIONS);
    } catch (err) {
      db.close();
      throw wrapSqlError(`open state file '${path}'`, err);
    }
    return db;
  }

  /** The transfer stored under `key`, if any (unreadable rows count as none). */
  get(key: string): StoredTransfer | undefined {
    try {
      const row = this.stmt(SQL.get).get(key);
      if (row === undefined || !(row.record instanceof Uint8Array)) {
        return undefined;
      }
      const record = decodeCbor(row.record);
      if (
        typeof record !== "object" || record === null || Array.isArray(record)
      ) return undefined;
      return {
        record: record as Record<string, unknown>,
        elements: row.elements instanceof Uint8Array ? row.elements : null,
      };
    } catch {
      return undefined;
    }
  }

  /** Inserts or replaces a transfer. */
  put(
    key: string,
    kind: TransferKind,
    record: Record<string, unknown>,
    elements: Uint8Array | null = null,
  ): void {
    this.#write("save progress", SQL.put, [
      key,
      kind,
      encodeCbor(record),
      elements,
      Date.now(),
    ]);
  }

  /** Replaces a transfer's record, keeping its elements. */
  update(key: string, record: Record<string, unknown>): void {
    this.#write("save progress", SQL.update, [
      encodeCbor(record),
      Date.now(),
      key,
    ]);
  }

  /** Forgets a transfer. */
  delete(key: string): void {
    this.#write("forget a transfer", SQL.delete, [key]);
  }

  /** Same as {@linkcode TransferDb.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  #write(
    action: string,
    sql: string,
    params: (string | number | Uint8Array | null)[],
  ): void {
    try {
      this.stmt(sql).run(...params);
    } catch (err) {
      throw this.#writeError(
        wrapSqlError(`${action} in state file '${this.path}'`, err),
      );
    }
  }
}
