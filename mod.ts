/**
 * TypeScript thin client for the Katzenpost mix network daemon (kpclientd,
 * katzenpost v0.0.99): the daemon protocol, events, reconnection with session
 * resumption, the PKI document and services, legacy messages, and the full
 * Pigeonhole storage API, with box-level flows on top of it: read a box as
 * data, tombstone or empty (`readBox`), confirmed writes (`writeBox`), many
 * writes in flight (`writeBoxes`), the copy protocol (`createCopyStream`,
 * `sendCopyStream`) and the share text of a read capability.
 *
 * Runs on Deno, Node ≥ 22 and browsers (WebSocket transport). Sockets are
 * opened by the `./transport` module; `./persistent` keeps named channels in
 * SQLite; `./testing` has a fake daemon for tests.
 *
 * @example Usage
 * ```ts ignore
 * import { connect } from "@katzenpost/thinclient/transport";
 *
 * await using client = await connect("thinclient.toml");
 * const echo = client.getService("echo");
 * const reply = await client.blockingSendMessage(
 *   new TextEncoder().encode("hello"),
 *   echo.destinationIdHash,
 *   echo.recipientQueueId,
 *   { signal: AbortSignal.timeout(60_000) },
 * );
 * ```
 *
 * @module
 */
export { ThinClient } from "./lib/client.ts";
export { ThinClientCore } from "./lib/client_core.ts";
export type {
  CallOptions,
  CallRecord,
  ReconnectOptions,
  ReplyKindFor,
  ThinClientOptions,
} from "./lib/_options.ts";
export type {
  SendMessageOptions,
  SignedPkiDocument,
} from "./lib/client_core.ts";
export type { Conn, Dialer, DialOptions } from "./lib/conn.ts";
export { EVENT_TYPES } from "./lib/events.ts";
export type {
  ClientState,
  EventOf,
  EventsOptions,
  ThinClientEvent,
} from "./lib/events.ts";
export {
  CancelledError,
  ClientClosedError,
  ConfigError,
  ConnectionError,
  CopyCommandError,
  DaemonError,
  errorFromResendCode,
  isExpectedOutcome,
  PayloadTooLargeError,
  ProtocolError,
  ReplicaError,
  ReplicaErrorCode,
  replicaErrorText,
  ThinClientError,
  ThinErrorCode,
  thinErrorText,
} from "./lib/errors.ts";
export {
  encodeFrame,
  FrameDecoder,
  HANDSHAKE_MAX_FRAME_SIZE,
  MAX_FRAME_SIZE,
  readFrames,
} from "./lib/framing.ts";
export { blake2b256 } from "./lib/hash.ts";
export { findServices, parsePkiDocument } from "./lib/pki.ts";
export type {
  MixDescriptor,
  PkiDocument,
  ReplicaDescriptor,
  ServiceDescriptor,
} from "./lib/pki.ts";
export {
  decodeResponse,
  encodeRequest,
  HASH_LENGTH,
  ID_LENGTH,
} from "./lib/protocol.ts";
export type {
  CopyDestination,
  DirectoryAuthority,
  PigeonholeGeometry,
  Request,
  RequestKind,
  Response,
  ResponseKind,
  ResponseOf,
  SphinxGeometry,
} from "./lib/protocol.ts";
export {
  formatShareText,
  MessageBoxIndex,
  parseShareText,
  ReadCap,
  WriteCap,
} from "./lib/caps.ts";
export type { SharedChannel } from "./lib/caps.ts";
export { isConflict, readBox, writeBox, writeBoxes } from "./lib/boxes.ts";
export type {
  BoxOutcome,
  ReadBoxOptions,
  WriteBoxesOptions,
  WriteBoxOptions,
  WriteCursor,
} from "./lib/boxes.ts";
export {
  createCopyStream,
  sendCopyStream,
  uploadCopyStream,
} from "./lib/copy_stream.ts";
export type { CopyStream, CopyStreamOptions } from "./lib/copy_stream.ts";
export { MAX_COPY_PAYLOAD } from "./lib/pigeonhole.ts";
export type {
  CopyCommandOptions,
  CopyDestinationInput,
  CourierEnvelopes,
  CourierPin,
  EncryptedMessage,
  Keypair,
  MultiCourierEnvelopes,
  StartResendingOptions,
  StartResendingParams,
  StartResendingResult,
  TombstoneCourierEnvelopes,
  TombstoneEnvelope,
  TombstoneRange,
  VoucherInductResult,
  VoucherMintResult,
  VoucherOpenResult,
  VoucherStream,
} from "./lib/pigeonhole.ts";
