/**
 * Resume state of pigeonhole-cp transfers, in an SQLite file (`--state`).
 *
 * One row per unfinished transfer, keyed by a hash of the capability and
 * start index (and, for receives, the destination directory). The row is a
 * CBOR record of progress; a send in copy mode also keeps its copy-stream
 * elements (they are encrypted with fresh randomness, so they cannot be
 * rebuilt identically). Rows are deleted when a transfer completes.
 *
 * The file holds no capability, but it does hold box indices and the
 * temporary stream's seed: it is created with mode 0600 in a 0700 folder (an
 * existing one readable by others is made private). It is marked with its
 * own `PRAGMA application_id`; another SQLite file given as `--state` is
 * refused before anything is written to it. A saved record is checked field
 * by field before it is used (see {@linkcode recordFits}).
 *
 * @module
 */
import { decodeCbor, encodeCbor } from "../lib/cbor.ts";
import { PersistentError } from "../persistent/errors.ts";
import {
  openSqlite,
  shortReason,
  type SqlDatabase,
  type SqliteIdentity,
} from "../persistent/_sqlite.ts";
import { CliError, ExitCode, fsReason } from "./_errors.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS pigeonhole_cp_transfers (
  key TEXT PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('send', 'receive')),
  record BLOB NOT NULL,
  elements BLOB,
  updated_at INTEGER NOT NULL
) STRICT;
`;

/**
 * How a state file identifies itself: `PRAGMA application_id` 0x6b706370
 * ("kpcp"); files from before it was set are recognised by their table.
 */
const STATE_IDENTITY: SqliteIdentity = {
  what: "state file",
  applicationId: 0x6b706370,
  userVersion: 0,
  legacyTables: ["pigeonhole_cp_transfers"],
};

/** What a field of a saved record must be. */
export type FieldRule =
  | "uint" // a safe non-negative integer
  | "string"
  | "index" // 104 bytes (a MessageBoxIndex)
  | "index?"
  | "32 bytes"
  | "32 bytes?"
  | "uints"; // an array of safe non-negative integers

function fits(value: unknown, rule: FieldRule): boolean {
  const optional = rule.endsWith("?");
  if (optional && (value === undefined || value === null)) return true;
  switch (optional ? rule.slice(0, -1) as FieldRule : rule) {
    case "uint":
      return Number.isSafeInteger(value) && (value as number) >= 0;
    case "string":
      return typeof value === "string";
    case "index":
      return value instanceof Uint8Array && value.length === 104;
    case "32 bytes":
      return value instanceof Uint8Array && value.length === 32;
    case "uints":
      return Array.isArray(value) && value.length <= 65_536 &&
        value.every((x) => Number.isSafeInteger(x) && x >= 0);
  }
  return false;
}

/**
 * Whether a saved record has every field its rules ask for, of the right
 * type (a record edited by hand, cut short or from another version is not
 * trusted: it is dropped and the transfer starts over).
 */
export function recordFits(
  record: Record<string, unknown>,
  rules: Readonly<Record<string, FieldRule>>,
): boolean {
  for (const [key, rule] of Object.entries(rules)) {
    const value = Object.hasOwn(record, key) ? record[key] : undefined;
    if (!fits(value, rule)) return false;
  }
  return true;
}

/** A stored transfer. */
export interface StoredTransfer {
  /** The progress record. */
  record: Record<string, unknown>;
  /** Copy-stream elements (send, copy mode), or `null`. */
  elements: Uint8Array | null;
}

/** The open state file. */
export class TransferStore implements Disposable {
  readonly #db: SqlDatabase;
  #closed = false;
  /** The file's path. */
  readonly path: string;

  private constructor(db: SqlDatabase, path: string) {
    this.#db = db;
    this.path = path;
  }

  /**
   * Opens or creates the state file (and its folder). Another SQLite file,
   * or a file that is not one, is refused before anything is written to it.
   *
   * @throws {CliError} Input, when it cannot be opened.
   */
  static async open(path: string): Promise<TransferStore> {
    const fail = (err: unknown): CliError =>
      new CliError(
        ExitCode.Input,
        err instanceof PersistentError
          ? err.message
          : `Cannot open state file '${path}': ${fsReason(err)}`,
        { cause: err },
      );
    if (path !== ":memory:") {
      const slash = path.lastIndexOf("/");
      if (slash > 0) {
        try {
          await Deno.mkdir(path.slice(0, slash), {
            recursive: true,
            mode: 0o700,
          });
        } catch (err) {
          throw fail(err);
        }
      }
    }
    let db: SqlDatabase;
    try {
      ({ db } = await openSqlite(path, STATE_IDENTITY));
    } catch (err) {
      throw fail(err);
    }
    try {
      db.exec("PRAGMA journal_mode = WAL");
      db.exec("PRAGMA synchronous = NORMAL");
      db.exec("PRAGMA busy_timeout = 5000");
      db.exec(SCHEMA);
    } catch (err) {
      db.close();
      throw new CliError(
        ExitCode.Input,
        `Cannot open state file '${path}': ${shortReason(err)}`,
        { cause: err },
      );
    }
    return new TransferStore(db, path);
  }

  /** Runs a write; a failure (a full disk, say) is a one-line CliError. */
  #write(action: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      throw new CliError(
        ExitCode.Failure,
        `Cannot ${action} in state file '${this.path}': ${
          shortReason(err)
        } (the transfer itself is not lost: free space or pass --no-state)`,
        { cause: err },
      );
    }
  }

  /** The transfer stored under `key`, if any (unreadable rows count as none). */
  get(key: string): StoredTransfer | undefined {
    let row: Record<string, unknown> | undefined;
    try {
      row = this.#db.prepare(
        "SELECT record, elements FROM pigeonhole_cp_transfers WHERE key = ?",
      ).get(key);
    } catch {
      return undefined;
    }
    if (row === undefined || !(row["record"] instanceof Uint8Array)) {
      return undefined;
    }
    const elements = row["elements"];
    try {
      const record = decodeCbor(row["record"]);
      if (
        typeof record !== "object" || record === null || Array.isArray(record)
      ) return undefined;
      return {
        record: record as Record<string, unknown>,
        elements: elements instanceof Uint8Array ? elements : null,
      };
    } catch {
      return undefined;
    }
  }

  /** Inserts or replaces a transfer. */
  put(
    key: string,
    kind: "send" | "receive",
    record: Record<string, unknown>,
    elements: Uint8Array | null = null,
  ): void {
    this.#write("save progress", () =>
      this.#db.prepare(
        `INSERT OR REPLACE INTO pigeonhole_cp_transfers
        (key, kind, record, elements, updated_at) VALUES (?, ?, ?, ?, ?)`,
      ).run(key, kind, encodeCbor(record), elements, Date.now()));
  }

  /** Replaces a transfer's record, keeping its elements. */
  update(key: string, record: Record<string, unknown>): void {
    this.#write("save progress", () =>
      this.#db.prepare(
        `UPDATE pigeonhole_cp_transfers SET record = ?, updated_at = ?
        WHERE key = ?`,
      ).run(encodeCbor(record), Date.now(), key));
  }

  /** Forgets a transfer. */
  delete(key: string): void {
    this.#write(
      "forget a transfer",
      () =>
        this.#db.prepare("DELETE FROM pigeonhole_cp_transfers WHERE key = ?")
          .run(key),
    );
  }

  /** Closes the file. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }

  /** Same as {@linkcode TransferStore.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}
