/**
 * The only file that touches `node:sqlite` (and `node:fs`, to create the
 * database file with mode 0600). Both are built into Deno and Node ≥ 22.13
 * (Node 22.5–22.12 needs `--experimental-sqlite`). They are loaded lazily, so
 * that importing the persistent module does not fail where they are missing.
 *
 * Used by the store of persistent/ and by the state file of pigeonhole-cp:
 * each marks its files with its own `application_id` and refuses any other
 * file before writing to it.
 *
 * @module
 */
import { PersistentError } from "./errors.ts";

/** A value bound to or read from a statement. */
export type SqlValue = null | number | bigint | string | Uint8Array;

/** A row as node:sqlite returns it. */
export type SqlRow = Record<string, SqlValue>;

/** The outcome of a write statement. */
export interface SqlRunResult {
  /** Rows changed. */
  changes: number | bigint;
  /** Row id of the last insert. */
  lastInsertRowid: number | bigint;
}

/** A prepared statement (the subset of node:sqlite's `StatementSync` we use). */
export interface SqlStatement {
  /** Runs a write statement. */
  run(...params: SqlValue[]): SqlRunResult;
  /** The first row, or `undefined`. */
  get(...params: SqlValue[]): SqlRow | undefined;
  /** All rows. */
  all(...params: SqlValue[]): SqlRow[];
}

/** An open database (the subset of node:sqlite's `DatabaseSync` we use). */
export interface SqlDatabase {
  /** Runs one or more statements without results. */
  exec(sql: string): void;
  /** Compiles a statement. */
  prepare(sql: string): SqlStatement;
  /** Whether a transaction is open. */
  readonly isTransaction: boolean;
  /** Closes the database. */
  close(): void;
}

interface SqliteModule {
  DatabaseSync: new (
    path: string,
    options?: Record<string, unknown>,
  ) => SqlDatabase;
}

interface FsModule {
  openSync(path: string, flags: string, mode?: number): number;
  closeSync(fd: number): void;
  statSync(path: string): { mode: number };
  chmodSync(path: string, mode: number): void;
}

let sqliteModule: Promise<SqliteModule> | null = null;
let fsModule: Promise<FsModule> | null = null;

/** How a file of ours identifies itself, and what to call it in messages. */
export interface SqliteIdentity {
  /** What the file is, for messages: `store`, `state file`. */
  what: string;
  /** `PRAGMA application_id` of our files (set when one is created). */
  applicationId: number;
  /** The highest `PRAGMA user_version` this code can use. */
  userVersion: number;
  /**
   * Tables that mark a file of ours written before `application_id` was set
   * (it is then adopted); empty when there were no such files.
   */
  legacyTables: readonly string[];
}

/** An open database, and whether it is new (nothing of ours in it yet). */
export interface OpenedSqlite {
  /** The connection. */
  db: SqlDatabase;
  /** The file is new or empty: create the schema. */
  fresh: boolean;
}

/** First line of an error's message, at most 200 characters. */
export function shortReason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  const line = text.split("\n", 1)[0]!.trim();
  return line.length > 200 ? `${line.slice(0, 197)}...` : line;
}

function hex32(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, "0")}`;
}

/** What a read-only look at an existing file found. */
interface Probe {
  applicationId: number;
  userVersion: number;
  tables: string[];
}

function probe(mod: SqliteModule, path: string): Probe {
  const db = new mod.DatabaseSync(path, { readOnly: true });
  try {
    const num = (sql: string, col: string): number =>
      Number(db.prepare(sql).get()?.[col] ?? 0);
    return {
      applicationId: num("PRAGMA application_id", "application_id"),
      userVersion: num("PRAGMA user_version", "user_version"),
      tables: db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .all().map((r) => String(r.name)),
    };
  } finally {
    db.close();
  }
}

/** Removes group and other permissions from a file of ours, if it has any. */
function tighten(fs: FsModule, path: string, what: string): void {
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    let mode: number;
    try {
      mode = fs.statSync(file).mode & 0o777;
    } catch {
      continue; // -wal and -shm exist only while the file is in use
    }
    if ((mode & 0o077) === 0) continue;
    try {
      fs.chmodSync(file, mode & 0o700);
    } catch (err) {
      throw new PersistentError(
        `Cannot open ${what} '${path}': '${file}' has mode 0${
          mode.toString(8)
        }, readable by others, and cannot be made private: ${
          shortReason(err)
        } (run chmod 600 on it)`,
        { cause: err },
      );
    }
  }
}

/**
 * Opens an SQLite file of ours, creating it with mode 0600 if missing.
 * `":memory:"` opens a private in-memory database.
 *
 * An existing file is first looked at read-only: a file that is not an
 * SQLite database, belongs to another application (`application_id`), or
 * was written by a newer version (`user_version`) is refused before
 * anything writes to it, so it stays byte for byte as it was. A file of ours
 * readable by group or others is made private (0600). A new file gets our
 * `application_id`, as does a file of ours from before it was set.
 *
 * @param path File path or `":memory:"`.
 * @param identity How our files identify themselves.
 * @returns The open database, and whether it is new.
 * @throws {PersistentError} When node:sqlite is unavailable, the file cannot
 *   be opened, is not ours, or is newer than this code; one line each.
 */
export async function openSqlite(
  path: string,
  identity: SqliteIdentity,
): Promise<OpenedSqlite> {
  sqliteModule ??= import("node:sqlite") as unknown as Promise<SqliteModule>;
  let mod: SqliteModule;
  try {
    mod = await sqliteModule;
  } catch (err) {
    sqliteModule = null;
    throw new PersistentError(
      "Cannot open SQLite: node:sqlite is not available (needs Deno 2.2+ or Node 22.13+)",
      { cause: err },
    );
  }
  const what = identity.what;
  const fail = (detail: string, cause?: unknown): PersistentError =>
    new PersistentError(
      `Cannot open ${what} '${path}': ${detail}`,
      cause === undefined ? undefined : { cause },
    );
  let fresh = true;
  let adopt = false;
  if (path !== ":memory:" && path !== "") {
    fsModule ??= import("node:fs") as unknown as Promise<FsModule>;
    const fs = await fsModule;
    let created = false;
    try {
      // Exclusive create, so an existing file keeps its bytes; a new one is
      // private from its first byte (SQLite gives -wal and -shm the same mode).
      fs.closeSync(fs.openSync(path, "wx", 0o600));
      created = true;
    } catch (err) {
      if ((err as { code?: string }).code !== "EEXIST") {
        throw fail(shortReason(err), err);
      }
    }
    if (!created) {
      let found: Probe;
      try {
        found = probe(mod, path);
      } catch (err) {
        const code = (err as { errcode?: number }).errcode;
        throw fail(
          code === 26 // SQLITE_NOTADB
            ? "it is not an SQLite database (is this the right path?)"
            : shortReason(err),
          err,
        );
      }
      const empty = found.applicationId === 0 && found.userVersion === 0 &&
        found.tables.length === 0;
      const legacy = found.applicationId === 0 &&
        identity.legacyTables.length > 0 &&
        identity.legacyTables.every((t) => found.tables.includes(t));
      if (found.applicationId !== identity.applicationId && !empty && !legacy) {
        throw fail(
          `it is not a ${what} of this library (application_id ${
            hex32(found.applicationId)
          }, expected ${
            hex32(identity.applicationId)
          }; user_version ${found.userVersion}; ${found.tables.length} tables); it was left unchanged`,
        );
      }
      if (found.userVersion > identity.userVersion) {
        throw fail(
          `schema version ${found.userVersion} is newer than supported version ${identity.userVersion} (written by a newer version of this library); it was left unchanged`,
        );
      }
      fresh = empty;
      adopt = legacy;
      const { platform } = await import("node:process");
      if (platform !== "win32") tighten(fs, path, what);
    }
  }
  let db: SqlDatabase;
  try {
    db = new mod.DatabaseSync(path);
  } catch (err) {
    throw fail(shortReason(err), err);
  }
  if (fresh || adopt) {
    try {
      db.exec(`PRAGMA application_id = ${identity.applicationId | 0}`);
    } catch (err) {
      db.close();
      throw fail(shortReason(err), err);
    }
  }
  return { db, fresh };
}
