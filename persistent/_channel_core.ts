/**
 * What the parts of a channel share: the store, the client, the per-channel
 * locks, and the channel's capabilities read (and checked) from the store.
 * Argument checks used by several parts live here too.
 *
 * @module
 */
import type { Lock } from "../lib/_async.ts";
import { MessageBoxIndex, ReadCap, WriteCap } from "../lib/caps.ts";
import type { CallOptions, ThinClient } from "../lib/client.ts";
import type { Db, OutboxKind } from "./db.ts";
import type { Sealer } from "./_seal.ts";
import { PersistentError } from "./errors.ts";
import type { ResumeReport } from "./models.ts";

/** Shared per-channel state of one PigeonholeClient. */
export interface ChannelState {
  /** Serializes reservations (cursor read → encrypt → reserve). */
  readonly write: Lock;
  /** Serializes receives. */
  readonly read: Lock;
  /** Outbox ids being sent by some call of this client. */
  readonly inFlight: Set<number>;
  /** A running replay of leftover intents. */
  replay: Promise<ResumeReport> | null;
}

/** What every channel of one PigeonholeClient uses. */
export interface Context {
  readonly client: ThinClient;
  readonly db: Db;
  readonly sealer: Sealer;
  readonly confirmWrites: boolean;
  state(channelId: number): ChannelState;
}

/** An outbox row with its index and payload unsealed. */
export interface Intent {
  id: number;
  kind: OutboxKind;
  seq: number | null;
  boxCount: number;
  index: MessageBoxIndex;
  payload: Uint8Array;
}

/** Call options carrying `signal` when there is one. */
export function opt(signal: AbortSignal | undefined): CallOptions {
  return signal === undefined ? {} : { signal };
}

/** The message of anything thrown. */
export function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** `value`, when it is a Uint8Array; otherwise a TypeError. */
export function checkBytes(what: string, value: unknown): Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(`Cannot ${what}: expected a Uint8Array`);
  }
  return value;
}

/** `name`, when it is a usable channel name; otherwise a TypeError. */
export function checkName(name: unknown, action: string): string {
  if (typeof name !== "string" || name.length === 0 || name.length > 1024) {
    throw new TypeError(
      `Cannot ${action}: channel name must be a string of 1 to 1024 characters`,
    );
  }
  return name;
}

/** `index`, when it is a MessageBoxIndex; otherwise a TypeError. */
export function checkIndex(index: unknown, action: string): MessageBoxIndex {
  if (!(index instanceof MessageBoxIndex)) {
    throw new TypeError(`Cannot ${action}: expected a MessageBoxIndex`);
  }
  return index;
}

/**
 * One channel as its parts see it: its row id, name and ownership, the
 * shared context, and its capabilities (read from the store once).
 */
export class ChannelCore {
  readonly id: number;
  readonly name: string;
  readonly owned: boolean;
  readonly ctx: Context;
  #caps: Promise<{ writeCap: WriteCap | null; readCap: ReadCap }> | null = null;

  constructor(ctx: Context, id: number, name: string, owned: boolean) {
    this.ctx = ctx;
    this.id = id;
    this.name = name;
    this.owned = owned;
  }

  /** This channel's locks and in-flight set. */
  get state(): ChannelState {
    return this.ctx.state(this.id);
  }

  /** The capabilities, read and unsealed once (again after a failure). */
  loadCaps(): Promise<{ writeCap: WriteCap | null; readCap: ReadCap }> {
    this.#caps ??= (async () => {
      const row = this.ctx.db.channelById(this.id, this.name);
      return {
        writeCap: row.writeCap === null
          ? null
          : await this.#unseal("write_cap", row.writeCap, WriteCap),
        readCap: await this.#unseal("read_cap", row.readCap, ReadCap),
      };
    })();
    const p = this.#caps;
    p.catch(() => {
      if (this.#caps === p) this.#caps = null;
    });
    return p;
  }

  /** The write capability; a PersistentError for an imported channel. */
  async writeCap(action: string): Promise<WriteCap> {
    if (!this.owned) {
      throw new PersistentError(
        `Cannot ${action} on channel '${this.name}': it is imported (read only)`,
      );
    }
    return (await this.loadCaps()).writeCap!;
  }

  /** A stored index, unsealed and checked. */
  async unsealIndex(sealed: Uint8Array): Promise<MessageBoxIndex> {
    return await this.#unseal("index", sealed, MessageBoxIndex);
  }

  /** A stored capability or index, checked: a damaged row is a PersistentError. */
  async #unseal<T>(
    label: "write_cap" | "read_cap" | "index",
    sealed: Uint8Array,
    type: { readonly LENGTH: number } & (new (bytes: Uint8Array) => T),
  ): Promise<T> {
    const bytes = await this.ctx.sealer.open(label, sealed);
    if (bytes.length !== type.LENGTH) {
      throw new PersistentError(
        `Cannot use channel '${this.name}': its stored ${label} has ${bytes.length} bytes, expected ${type.LENGTH} (the store is damaged)`,
      );
    }
    return new type(bytes);
  }
}
