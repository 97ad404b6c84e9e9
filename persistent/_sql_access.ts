/**
 * What every SQLite file of the project does the same way, over one open
 * connection: connection settings, cached statements, numbered migrations,
 * write transactions that roll back on a throw, and driver errors turned
 * into one-line {@linkcode PersistentError}s. The store of persistent
 * channels and the state file of pigeonhole-cp both build on it.
 *
 * @module
 */
import { shortReason, type SqlDatabase, type SqlStatement } from "./_sqlite.ts";
import { PersistentError } from "./errors.ts";

/** A `PRAGMA user_version` read as a number. */
const USER_VERSION = "PRAGMA user_version";

/** A count or id from the driver (a bigint for large values) as a number. */
export function num(v: unknown): number {
  return typeof v === "bigint" ? Number(v) : v as number;
}

/** A BLOB column value. */
export function bytes(v: unknown): Uint8Array {
  return v as Uint8Array;
}

/**
 * `Cannot <action>: <reason>` as a {@linkcode PersistentError}; a
 * PersistentError is passed through as it is.
 */
export function wrapSqlError(action: string, err: unknown): PersistentError {
  if (err instanceof PersistentError) return err;
  return new PersistentError(`Cannot ${action}: ${shortReason(err)}`, {
    cause: err,
  });
}

/** Connection settings of {@linkcode SqlAccess.configure}. */
export interface SqlSettings {
  /** Milliseconds a statement waits for another process's lock. */
  busyTimeout: number;
  /** SQLite `synchronous`: `"full"` survives a power loss. */
  synchronous: "full" | "normal";
}

/**
 * One SQLite connection with the helpers its data access needs. Subclasses
 * add one method per query.
 */
export class SqlAccess {
  #conn: SqlDatabase | null;
  readonly #stmts = new Map<string, SqlStatement>();
  /** What the file is, for messages: `store`, `state file`. */
  readonly what: string;

  /**
   * @param conn The open connection (closed by {@linkcode SqlAccess.close}).
   * @param what What the file is, for messages.
   */
  constructor(conn: SqlDatabase, what: string) {
    this.#conn = conn;
    this.what = what;
  }

  /** Whether {@linkcode SqlAccess.close} was called. */
  get closed(): boolean {
    return this.#conn === null;
  }

  /** Closes the connection; idempotent. */
  close(): void {
    const c = this.#conn;
    if (c === null) return;
    this.#conn = null;
    this.#stmts.clear();
    c.close();
  }

  /**
   * The open connection.
   *
   * @throws {PersistentError} When it is closed.
   */
  protected conn(): SqlDatabase {
    if (this.#conn === null) {
      throw new PersistentError(`Cannot use ${this.what}: it is closed`);
    }
    return this.#conn;
  }

  /** A prepared statement, compiled once per connection. */
  protected stmt(sql: string): SqlStatement {
    let st = this.#stmts.get(sql);
    if (st === undefined) {
      st = this.conn().prepare(sql);
      this.#stmts.set(sql, st);
    }
    return st;
  }

  /** Runs `fn` in a write transaction (BEGIN IMMEDIATE); a throw rolls back. */
  protected tx<T>(action: string, fn: () => T): T {
    const c = this.conn();
    if (c.isTransaction) return fn();
    try {
      c.exec("BEGIN IMMEDIATE");
    } catch (err) {
      throw wrapSqlError(action, err);
    }
    try {
      const out = fn();
      c.exec("COMMIT");
      return out;
    } catch (err) {
      if (c.isTransaction) c.exec("ROLLBACK");
      throw wrapSqlError(action, err);
    }
  }

  /** Runs `fn` outside a transaction, wrapping driver errors. */
  protected guard<T>(action: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw wrapSqlError(action, err);
    }
  }

  /** Sets the connection pragmas (driver errors are thrown as they are). */
  configure(settings: SqlSettings): void {
    const c = this.conn();
    c.exec(`PRAGMA busy_timeout = ${Math.trunc(settings.busyTimeout)}`);
    c.exec("PRAGMA foreign_keys = ON");
    c.exec("PRAGMA journal_mode = WAL");
    c.exec(
      `PRAGMA synchronous = ${
        settings.synchronous === "full" ? "FULL" : "NORMAL"
      }`,
    );
  }

  /** The applied schema version (`PRAGMA user_version`). */
  schemaVersion(): number {
    return this.guard(
      "read schema version",
      () => num(this.conn().prepare(USER_VERSION).get()?.user_version ?? 0),
    );
  }

  /**
   * Applies the missing entries of `migrations`, each in its own
   * transaction; `PRAGMA user_version` holds the number applied.
   *
   * @throws {PersistentError} When the file's version is newer, or a
   *   migration fails (it is rolled back).
   */
  migrate(migrations: readonly string[]): void {
    const have = this.schemaVersion();
    if (have > migrations.length) {
      throw new PersistentError(
        `Cannot open ${this.what}: schema version ${have} is newer than supported version ${migrations.length}`,
      );
    }
    for (let v = have; v < migrations.length; v++) {
      this.tx(`migrate ${this.what} to schema version ${v + 1}`, () => {
        // Another process may have migrated while we waited for the lock.
        if (this.schemaVersion() > v) return;
        this.conn().exec(migrations[v]!);
        this.conn().exec(`PRAGMA user_version = ${v + 1}`);
      });
    }
  }
}
