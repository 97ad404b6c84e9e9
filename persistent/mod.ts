/**
 * Persistent Pigeonhole channels in SQLite: named channels that applications
 * use instead of handling capabilities and box indices. Create or import
 * channels, send and receive messages (large ones through copy commands),
 * keep an inbox, share a channel's read capability as text.
 *
 * Sends and receives are crash-safe: a send is recorded, and its box
 * reserved, before anything leaves, and is sent again after a crash into the
 * same box; a received message and the read cursor move together. Several
 * handles and processes may share one store.
 *
 * Uses `node:sqlite` (Deno, Node ≥ 22.13). Capabilities and messages can be
 * sealed at rest with an application key (AES-256-GCM).
 *
 * @example Usage
 * ```ts ignore
 * import { connect } from "@katzenpost/thinclient/transport";
 * import { PigeonholeClient } from "@katzenpost/thinclient/persistent";
 *
 * await using client = await connect("thinclient.toml");
 * using alice = await PigeonholeClient.open(client, "alice.db");
 * const ch = await alice.createChannel("to-bob");
 * const share = await ch.shareReadCap(); // give this text to Bob
 * await ch.send(new TextEncoder().encode("hi Bob"));
 *
 * using bob = await PigeonholeClient.open(client, "bob.db");
 * const fromAlice = await bob.importChannel("alice", share);
 * for await (const msg of fromAlice.messages({ signal: AbortSignal.timeout(120_000) })) {
 *   console.log(new TextDecoder().decode(msg.plaintext));
 *   fromAlice.markRead(msg.id);
 * }
 * ```
 *
 * @module
 */
export { PigeonholeClient } from "./channel.ts";
export { MAX_LARGE_MESSAGE } from "./_box_format.ts";
export { PigeonholeStore, SCHEMA_VERSION } from "./db.ts";
export type { PigeonholeStoreOptions } from "./db.ts";
export {
  BoxConflictError,
  ChannelNotFoundError,
  PersistentError,
} from "./errors.ts";
export { formatShareText, parseShareText } from "./models.ts";
export type {
  BoxRead,
  Channel,
  ChannelInfo,
  Cursor,
  DeleteChannelOptions,
  InboxMessage,
  InboxOptions,
  OutboxItem,
  PigeonholeClientOptions,
  ReceiveOptions,
  ReceiveResult,
  ResumeReport,
  SentMessage,
  SharedChannel,
  ShareOptions,
  TombstoneOptions,
} from "./models.ts";
