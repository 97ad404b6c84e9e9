/**
 * The SQLite store of persistent channels: {@linkcode PigeonholeStore}
 * opens the file, brings its schema up to date and checks the seal key.
 * The schema and statements are in `_store_schema.ts`, the queries in
 * `_store_db.ts`; every SQL statement of the persistent layer is in
 * persistent/.
 *
 * Capabilities, indices and plaintexts are stored sealed when the store was
 * opened with a seal key (see `_seal.ts`); names and counters are not.
 *
 * @module
 */
import { openSqlite, shortReason } from "./_sqlite.ts";
import { makeSealer, type Sealer } from "./_seal.ts";
import { Db } from "./_store_db.ts";
import { SCHEMA_VERSION, STORE_IDENTITY } from "./_store_schema.ts";
import { PersistentError } from "./errors.ts";

export { Db, SCHEMA_VERSION };
export type {
  ChannelRow,
  ChannelSummaryRow,
  CursorRow,
  InboxRow,
  NewIntent,
  OutboxKind,
  OutboxRow,
} from "./_store_schema.ts";

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
        db.configure({
          busyTimeout,
          synchronous: options.synchronous ?? "full",
        });
      } catch (err) {
        throw new PersistentError(
          `Cannot open store '${path}': ${shortReason(err)}`,
          { cause: err },
        );
      }
      db.migrateStore();
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
