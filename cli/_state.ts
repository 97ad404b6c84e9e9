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
 * temporary stream's seed: it is created with mode 0600 in a 0700 folder.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { decodeCbor, encodeCbor } from "../lib/cbor.ts";
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

/** A stored transfer. */
export interface StoredTransfer {
  /** The progress record. */
  record: Record<string, unknown>;
  /** Copy-stream elements (send, copy mode), or `null`. */
  elements: Uint8Array | null;
}

/** The open state file. */
export class TransferStore implements Disposable {
  readonly #db: DatabaseSync;
  #closed = false;
  /** The file's path. */
  readonly path: string;

  private constructor(db: DatabaseSync, path: string) {
    this.#db = db;
    this.path = path;
  }

  /**
   * Opens or creates the state file (and its folder).
   *
   * @throws {CliError} Input, when it cannot be opened.
   */
  static async open(path: string): Promise<TransferStore> {
    try {
      if (path !== ":memory:") {
        const slash = path.lastIndexOf("/");
        if (slash > 0) {
          await Deno.mkdir(path.slice(0, slash), {
            recursive: true,
            mode: 0o700,
          });
        }
        try {
          (await Deno.open(path, { createNew: true, write: true, mode: 0o600 }))
            .close();
        } catch (err) {
          if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
        }
      }
      const db = new DatabaseSync(path);
      try {
        db.exec("PRAGMA journal_mode = WAL");
        db.exec("PRAGMA synchronous = NORMAL");
        db.exec("PRAGMA busy_timeout = 5000");
        db.exec(SCHEMA);
      } catch (err) {
        db.close();
        throw err;
      }
      return new TransferStore(db, path);
    } catch (err) {
      throw new CliError(
        ExitCode.Input,
        `Cannot open state file '${path}': ${fsReason(err)}`,
        { cause: err },
      );
    }
  }

  /** The transfer stored under `key`, if any (unreadable rows count as none). */
  get(key: string): StoredTransfer | undefined {
    const row = this.#db.prepare(
      "SELECT record, elements FROM pigeonhole_cp_transfers WHERE key = ?",
    ).get(key) as
      | { record: Uint8Array; elements: Uint8Array | null }
      | undefined;
    if (row === undefined) return undefined;
    try {
      const record = decodeCbor(row.record);
      if (typeof record !== "object" || record === null) return undefined;
      return {
        record: record as Record<string, unknown>,
        elements: row.elements,
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
    this.#db.prepare(
      `INSERT OR REPLACE INTO pigeonhole_cp_transfers
        (key, kind, record, elements, updated_at) VALUES (?, ?, ?, ?, ?)`,
    ).run(key, kind, encodeCbor(record), elements, Date.now());
  }

  /** Replaces a transfer's record, keeping its elements. */
  update(key: string, record: Record<string, unknown>): void {
    this.#db.prepare(
      `UPDATE pigeonhole_cp_transfers SET record = ?, updated_at = ?
        WHERE key = ?`,
    ).run(encodeCbor(record), Date.now(), key);
  }

  /** Forgets a transfer. */
  delete(key: string): void {
    this.#db.prepare("DELETE FROM pigeonhole_cp_transfers WHERE key = ?").run(
      key,
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
