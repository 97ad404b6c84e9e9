/**
 * The only file that touches `node:sqlite` (and `node:fs`, to create the
 * database file with mode 0600). Both are built into Deno and Node ≥ 22.13
 * (Node 22.5–22.12 needs `--experimental-sqlite`). They are loaded lazily, so
 * that importing the persistent module does not fail where they are missing.
 *
 * @module
 */

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
}

let sqliteModule: Promise<SqliteModule> | null = null;
let fsModule: Promise<FsModule> | null = null;

/**
 * Opens (creating it with mode 0600 if missing) an SQLite database file.
 * `":memory:"` opens a private in-memory database.
 *
 * @param path File path or `":memory:"`.
 * @returns The open database.
 * @throws {Error} When node:sqlite is unavailable or the file cannot be opened.
 */
export async function openSqlite(path: string): Promise<SqlDatabase> {
  sqliteModule ??= import("node:sqlite") as unknown as Promise<SqliteModule>;
  let mod: SqliteModule;
  try {
    mod = await sqliteModule;
  } catch (err) {
    sqliteModule = null;
    throw new Error(
      "node:sqlite is not available (needs Deno 2.2+ or Node 22.13+)",
      { cause: err },
    );
  }
  if (path !== ":memory:" && path !== "") {
    fsModule ??= import("node:fs") as unknown as Promise<FsModule>;
    const fs = await fsModule;
    try {
      // Exclusive create, so an existing file keeps its mode; a new one is
      // private from its first byte (SQLite gives -wal and -shm the same mode).
      fs.closeSync(fs.openSync(path, "wx", 0o600));
    } catch (err) {
      if ((err as { code?: string }).code !== "EEXIST") throw err;
    }
  }
  return new mod.DatabaseSync(path);
}
