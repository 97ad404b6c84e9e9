/**
 * Named Pigeonhole channels kept in a {@linkcode PigeonholeStore}:
 * {@linkcode PigeonholeClient} creates, imports, lists and deletes them;
 * a {@linkcode Channel} sends, receives and keeps an inbox.
 *
 * Crash safety:
 * - A send first reserves its box: one transaction records the intent
 *   (channel, box index, bytes) in the outbox and moves the write cursor.
 *   Only then is anything sent. The row is deleted when the write is
 *   acknowledged. The ciphertext is never stored (it goes stale when the
 *   replica epoch changes): a leftover intent is encrypted again for its
 *   box and sent again before the next new send (or by `resumePending()`).
 *   Encryption is deterministic, so the replica receives the identical box
 *   and accepts it.
 * - The cursor is re-read inside the reserving transaction (`BEGIN
 *   IMMEDIATE`), so two handles, in one process or several, never reserve
 *   the same box.
 * - With `confirmWrites` (default) a new message that finds its box occupied
 *   fails with {@linkcode BoxConflictError}, never silently. A replayed
 *   intent that finds its box occupied reads the box back: identical content
 *   means the first attempt had landed.
 * - A received message and the read cursor move in one transaction, and the
 *   inbox is unique per (channel, box), so nothing is stored twice.
 * - A reader moves past deleted (tombstoned) boxes.
 *
 * Message format inside boxes (readers must use this layer): a box holding
 * one message is `0x00 ‖ message`; a large message written with a copy
 * command is `0x01 ‖ uint32 BE length ‖ message`, cut by the daemon into
 * consecutive boxes.
 *
 * @module
 */
import { Lock } from "../lib/_async.ts";
import {
  formatShareText,
  type MessageBoxIndex,
  parseShareText,
} from "../lib/caps.ts";
import type { CallOptions, ThinClient } from "../lib/client.ts";
import {
  PigeonholeStore,
  type PigeonholeStoreOptions,
  storeParts,
} from "./db.ts";
import {
  ChannelCore,
  type ChannelState,
  checkName,
  type Context,
} from "./_channel_core.ts";
import { Inbox } from "./_inbox.ts";
import { Outbox } from "./_outbox.ts";
import { ChannelNotFoundError, PersistentError } from "./errors.ts";
import type * as M from "./models.ts";
import type {
  Channel,
  ChannelInfo,
  DeleteChannelOptions,
  PigeonholeClientOptions,
  ResumeReport,
} from "./models.ts";

export { MAX_LARGE_MESSAGE } from "./_box_format.ts";
export type { Channel } from "./models.ts";

/** A {@linkcode Channel}: the outbox and inbox of one channel of a store. */
class ChannelImpl implements Channel {
  readonly name: string;
  readonly owned: boolean;
  readonly #core: ChannelCore;
  readonly #out: Outbox;
  readonly #in: Inbox;

  constructor(ctx: Context, id: number, name: string, owned: boolean) {
    this.name = name;
    this.owned = owned;
    this.#core = new ChannelCore(ctx, id, name, owned);
    this.#out = new Outbox(this.#core);
    this.#in = new Inbox(this.#core);
  }

  /** Keeps capabilities out of logs. */
  toJSON(): { name: string; owned: boolean } {
    return { name: this.name, owned: this.owned };
  }

  send(message: Uint8Array, options?: CallOptions): Promise<M.SentMessage> {
    return this.#out.send(message, options);
  }

  sendLarge(
    message: Uint8Array,
    options?: CallOptions,
  ): Promise<M.SentMessage> {
    return this.#out.sendLarge(message, options);
  }

  writeBox(
    index: MessageBoxIndex,
    bytes: Uint8Array,
    options?: CallOptions,
  ): Promise<void> {
    return this.#out.writeBox(index, bytes, options);
  }

  tombstone(
    index: MessageBoxIndex,
    options?: M.TombstoneOptions,
  ): Promise<void> {
    return this.#out.tombstone(index, options);
  }

  outbox(): Promise<M.OutboxItem[]> {
    return this.#out.outbox();
  }

  discard(id: number): void {
    this.#out.discard(id);
  }

  resumePending(options?: CallOptions): Promise<ResumeReport> {
    return this.#out.resumePending(options);
  }

  receive(options?: M.ReceiveOptions): Promise<M.ReceiveResult | null> {
    return this.#in.receive(options);
  }

  messages(options?: CallOptions): AsyncIterableIterator<M.InboxMessage> {
    return this.#in.messages(options);
  }

  readBox(
    index: MessageBoxIndex,
    options?: M.ReceiveOptions,
  ): Promise<M.BoxRead> {
    return this.#in.readBox(index, options);
  }

  inbox(options?: M.InboxOptions): Promise<M.InboxMessage[]> {
    return this.#in.inbox(options);
  }

  markRead(ids: number | readonly number[]): void {
    this.#in.markRead(ids);
  }

  deleteMessages(ids: number | readonly number[]): number {
    return this.#in.deleteMessages(ids);
  }

  async shareReadCap(options: M.ShareOptions = {}): Promise<string> {
    const c = this.#core;
    const from = options.from ?? "first";
    if (from !== "first" && from !== "next") {
      throw new TypeError(
        `Cannot share channel '${c.name}': from '${from}' is not "first" or "next"`,
      );
    }
    const { readCap } = await c.loadCaps();
    const { db } = c.ctx;
    let sealed: Uint8Array;
    if (from === "first") {
      sealed = db.channelById(c.id, c.name).firstIndex;
    } else if (this.owned) {
      sealed = db.writeCursor(c.id, c.name).index;
    } else {
      sealed = db.readCursor(c.id, c.name).index;
    }
    return formatShareText({
      readCap,
      startIndex: await c.unsealIndex(sealed),
    });
  }

  async cursors(): Promise<{ write: M.Cursor | null; read: M.Cursor }> {
    const c = this.#core;
    const { db } = c.ctx;
    const read = db.readCursor(c.id, c.name);
    const write = this.owned ? db.writeCursor(c.id, c.name) : null;
    return {
      write: write === null
        ? null
        : { seq: write.seq, index: await c.unsealIndex(write.index) },
      read: { seq: read.seq, index: await c.unsealIndex(read.index) },
    };
  }
}

// -----------------------------------------------------------------------------
// PigeonholeClient

/** Clients made by `PigeonholeClient.open`, which close their store. */
const owning = new WeakSet<object>();

/**
 * Persistent Pigeonhole channels: named channels kept in a
 * {@linkcode PigeonholeStore}, used through a connected {@linkcode ThinClient}.
 * Applications use it instead of handling capabilities and box indices.
 *
 * The store may outlive the client: reopen it after a restart with a new
 * client and call {@linkcode PigeonholeClient.resumePending} (or just keep
 * sending: each channel's leftover sends go out before its next send).
 *
 * @example Usage
 * ```ts ignore
 * import { connect } from "@katzenpost/thinclient/transport";
 * import { PigeonholeClient } from "@katzenpost/thinclient/persistent";
 *
 * await using client = await connect("thinclient.toml");
 * using pigeonhole = await PigeonholeClient.open(client, "chat.db");
 * await pigeonhole.resumePending();
 * const ch = pigeonhole.listChannels().some((c) => c.name === "news")
 *   ? pigeonhole.getChannel("news")
 *   : await pigeonhole.createChannel("news");
 * console.log(await ch.shareReadCap()); // give to readers
 * await ch.send(new TextEncoder().encode("hello"), { signal: AbortSignal.timeout(120_000) });
 * ```
 */
export class PigeonholeClient implements Disposable {
  /** The daemon connection used for network calls. */
  readonly client: ThinClient;
  /** The store holding the channels. */
  readonly store: PigeonholeStore;
  readonly #ctx: Context;
  readonly #states = new Map<number, ChannelState>();

  /**
   * Uses `store` through `client`. The store stays open when this object is
   * closed (use {@linkcode PigeonholeClient.open} to tie them together).
   *
   * @param client A connected thin client (the real daemon or a fake).
   * @param store An open store.
   * @param options Write confirmation.
   * @throws {TypeError} When `store` is not a PigeonholeStore.
   */
  constructor(
    client: ThinClient,
    store: PigeonholeStore,
    options: PigeonholeClientOptions = {},
  ) {
    this.client = client;
    this.store = store;
    const { db, sealer } = storeParts(store);
    this.#ctx = {
      client,
      db,
      sealer,
      confirmWrites: options.confirmWrites ?? true,
      state: (id) => {
        let s = this.#states.get(id);
        if (s === undefined) {
          s = {
            write: new Lock(),
            read: new Lock(),
            inFlight: new Set(),
            replay: null,
          };
          this.#states.set(id, s);
        }
        return s;
      },
    };
  }

  /**
   * Opens the store at `path` and uses it through `client`; closing the
   * returned object closes the store.
   *
   * @param client A connected thin client.
   * @param path Database file (created with mode 0600) or `":memory:"`.
   * @param options Store options (seal key, …) and write confirmation.
   * @returns The persistent client.
   * @throws {PersistentError} When the store cannot be opened.
   *
   * @example Usage
   * ```ts ignore
   * using pigeonhole = await PigeonholeClient.open(client, "chat.db", { sealKey });
   * ```
   */
  static async open(
    client: ThinClient,
    path: string,
    options: PigeonholeClientOptions & PigeonholeStoreOptions = {},
  ): Promise<PigeonholeClient> {
    const store = await PigeonholeStore.open(path, options);
    const p = new PigeonholeClient(client, store, options);
    owning.add(p);
    return p;
  }

  /**
   * Creates a channel this store owns: a fresh keypair (from 32 random
   * bytes), stored with its write and read capabilities. Nothing is sent.
   *
   * @param name A name unique in this store.
   * @param options Abort signal.
   * @returns The channel.
   * @throws {PersistentError} When the name is taken.
   *
   * @example Usage
   * ```ts ignore
   * const ch = await pigeonhole.createChannel("news");
   * ```
   */
  async createChannel(
    name: string,
    options: CallOptions = {},
  ): Promise<Channel> {
    checkName(name, "create channel");
    const { db, sealer } = this.#ctx;
    if (db.channelByName(name) !== undefined) {
      throw new PersistentError(
        `Cannot create channel '${name}': name already in use`,
      );
    }
    const kp = await this.client.newKeypair(undefined, options);
    const first = await sealer.seal("index", kp.firstMessageIndex.bytes);
    const id = db.insertChannel({
      name,
      owned: true,
      writeCap: await sealer.seal("write_cap", kp.writeCap.bytes),
      readCap: await sealer.seal("read_cap", kp.readCap.bytes),
      firstIndex: first,
      writeIndex: first,
      readIndex: first,
      createdAt: Date.now(),
    });
    if (id === null) {
      throw new PersistentError(
        `Cannot create channel '${name}': name already in use`,
      );
    }
    return new ChannelImpl(this.#ctx, id, name, true);
  }

  /**
   * Adds a channel to read from a share text (made by `shareReadCap`).
   * Local: no daemon call.
   *
   * @param name A name unique in this store.
   * @param shareText The text from the channel's owner.
   * @returns The (read-only) channel, reading from the share's start index.
   * @throws {TypeError} When the share text is invalid.
   * @throws {PersistentError} When the name is taken.
   *
   * @example Usage
   * ```ts ignore
   * const ch = await pigeonhole.importChannel("alice", shareText);
   * ```
   */
  async importChannel(name: string, shareText: string): Promise<Channel> {
    checkName(name, "import channel");
    const shared = parseShareText(shareText);
    const { db, sealer } = this.#ctx;
    const start = await sealer.seal("index", shared.startIndex.bytes);
    const id = db.insertChannel({
      name,
      owned: false,
      writeCap: null,
      readCap: await sealer.seal("read_cap", shared.readCap.bytes),
      firstIndex: start,
      writeIndex: null,
      readIndex: start,
      createdAt: Date.now(),
    });
    if (id === null) {
      throw new PersistentError(
        `Cannot import channel '${name}': name already in use`,
      );
    }
    return new ChannelImpl(this.#ctx, id, name, false);
  }

  /**
   * A handle on an existing channel.
   *
   * @param name The channel's name.
   * @returns The channel.
   * @throws {ChannelNotFoundError} When there is no such channel.
   *
   * @example Usage
   * ```ts ignore
   * const ch = pigeonhole.getChannel("news");
   * ```
   */
  getChannel(name: string): Channel {
    checkName(name, "get channel");
    const row = this.#ctx.db.channelByName(name);
    if (row === undefined) throw new ChannelNotFoundError(name);
    return new ChannelImpl(this.#ctx, row.id, row.name, row.owned);
  }

  /**
   * All channels, by name, with their counters (no secrets).
   *
   * @returns The channels.
   *
   * @example Usage
   * ```ts ignore
   * for (const c of pigeonhole.listChannels()) console.log(c.name, c.unread);
   * ```
   */
  listChannels(): ChannelInfo[] {
    return this.#ctx.db.listChannels().map((r) => ({
      name: r.name,
      owned: r.owned,
      createdAt: new Date(r.createdAt),
      writeSeq: r.writeSeq,
      readSeq: r.readSeq,
      pendingSends: r.pending,
      failedSends: r.failed,
      unread: r.unread,
    }));
  }

  /**
   * Deletes a channel with its outbox and inbox. Nothing is sent (boxes
   * already written stay until they expire).
   *
   * @param name The channel's name.
   * @param options `force` to delete even with items in the outbox.
   * @throws {ChannelNotFoundError} When there is no such channel.
   * @throws {PersistentError} When the outbox is not empty and `force` is not set.
   *
   * @example Usage
   * ```ts ignore
   * pigeonhole.deleteChannel("news");
   * ```
   */
  deleteChannel(name: string, options: DeleteChannelOptions = {}): void {
    checkName(name, "delete channel");
    const r = this.#ctx.db.deleteChannel(name, options.force ?? false);
    if (r === "missing") throw new ChannelNotFoundError(name);
    if (r !== "deleted") {
      throw new PersistentError(
        `Cannot delete channel '${name}': ${r.outbox} outbox item(s) not delivered (use force)`,
      );
    }
  }

  /**
   * Sends again every pending outbox item of every channel (call after a
   * restart). Items being sent by this client are left alone.
   *
   * @param options Abort signal.
   * @returns How many items were delivered, and how many failed for good.
   * @throws {ThinClientError} The first network error (remaining items stay pending).
   *
   * @example Usage
   * ```ts ignore
   * const { delivered, failed } = await pigeonhole.resumePending();
   * ```
   */
  async resumePending(options: CallOptions = {}): Promise<ResumeReport> {
    const total = { delivered: 0, failed: 0 };
    for (const name of this.#ctx.db.channelsWithPending()) {
      let ch: Channel;
      try {
        ch = this.getChannel(name);
      } catch (err) {
        if (err instanceof ChannelNotFoundError) continue;
        throw err;
      }
      const r = await ch.resumePending(options);
      total.delivered += r.delivered;
      total.failed += r.failed;
    }
    return total;
  }

  /**
   * Closes the store if {@linkcode PigeonholeClient.open} opened it;
   * otherwise does nothing. The thin client is never closed here.
   *
   * @example Usage
   * ```ts ignore
   * pigeonhole.close();
   * ```
   */
  close(): void {
    if (owning.has(this)) this.store.close();
  }

  /** Same as {@linkcode PigeonholeClient.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
