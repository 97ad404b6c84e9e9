/**
 * Error classes of the thin client and the daemon's error-code tables.
 *
 * Every error the library throws on purpose is a {@linkcode ThinClientError}.
 * Daemon error codes become {@linkcode DaemonError} (thin-client namespace) or
 * {@linkcode ReplicaError} (replica namespace, from Pigeonhole operations).
 *
 * @module
 */

/**
 * Base class of every error raised by this library.
 *
 * @example Usage
 * ```ts
 * import { ThinClientError } from "@katzenpost/thinclient";
 * try {
 *   throw new ThinClientError("Cannot do it");
 * } catch (err) {
 *   console.log(err instanceof ThinClientError); // true
 * }
 * ```
 */
export class ThinClientError extends Error {
  /** The error class name. */
  override readonly name: string = "ThinClientError";
  /**
   * Creates an error.
   *
   * @param message What failed, in sentence case.
   * @param options The underlying cause, if any.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/**
 * The transport could not be opened, or it failed while in use.
 *
 * @example Usage
 * ```ts
 * import { ConnectionError } from "@katzenpost/thinclient";
 * const err = new ConnectionError("Cannot dial daemon at 'tcp 127.0.0.1:1'");
 * console.log(err.name); // "ConnectionError"
 * ```
 */
export class ConnectionError extends ThinClientError {
  /** The error class name. */
  override readonly name: string = "ConnectionError";
}

/**
 * The client was closed (or detached) while the call was pending, or the call
 * was made after that.
 *
 * @example Usage
 * ```ts
 * import { ClientClosedError } from "@katzenpost/thinclient";
 * console.log(new ClientClosedError().message); // "Client is closed"
 * ```
 */
export class ClientClosedError extends ThinClientError {
  /** The error class name. */
  override readonly name: string = "ClientClosedError";
  /**
   * Creates the error.
   *
   * @param message Defaults to "Client is closed".
   * @param options The underlying cause, if any.
   */
  constructor(message = "Client is closed", options?: ErrorOptions) {
    super(message, options);
  }
}

/**
 * The daemon sent bytes that do not follow the thin protocol: an oversize or
 * truncated frame, undecodable CBOR, or a message of the wrong shape.
 *
 * @example Usage
 * ```ts
 * import { ProtocolError } from "@katzenpost/thinclient";
 * const err = new ProtocolError("Cannot decode frame: field 'app_id' is not a byte string");
 * console.log(err instanceof Error); // true
 * ```
 */
export class ProtocolError extends ThinClientError {
  /** The error class name. */
  override readonly name: string = "ProtocolError";
}

/**
 * A configuration file or object is invalid.
 *
 * @example Usage
 * ```ts
 * import { ConfigError } from "@katzenpost/thinclient";
 * const err = new ConfigError("Cannot load config: unknown key 'Dial.Pipe'", { key: "Dial.Pipe" });
 * console.log(err.key); // "Dial.Pipe"
 * ```
 */
export class ConfigError extends ThinClientError {
  /** The error class name. */
  override readonly name: string = "ConfigError";
  /** The offending key, dotted (for example `Dial.Tcp.Adress`), when one is to blame. */
  readonly key: string | undefined;
  /**
   * Creates the error.
   *
   * @param message What is wrong and what to do.
   * @param options The offending key and the underlying cause.
   */
  constructor(message: string, options?: ErrorOptions & { key?: string }) {
    super(message, options);
    this.key = options?.key;
  }
}

/**
 * Error codes of the thin-client namespace (katzenpost `client/thin/thin_messages.go`).
 *
 * @example Usage
 * ```ts
 * import { ThinErrorCode } from "@katzenpost/thinclient";
 * console.log(ThinErrorCode.InvalidRequest); // 3
 * ```
 */
export const ThinErrorCode = {
  Success: 0,
  ConnectionLost: 1,
  Timeout: 2,
  InvalidRequest: 3,
  InternalError: 4,
  MaxRetries: 5,
  InvalidChannel: 6,
  ChannelNotFound: 7,
  PermissionDenied: 8,
  InvalidPayload: 9,
  ServiceUnavailable: 10,
  DuplicateCapability: 11,
  CourierCacheCorruption: 12,
  PropagationError: 13,
  InvalidWriteCapability: 14,
  InvalidReadCapability: 15,
  InvalidResumeWriteChannelRequest: 16,
  InvalidResumeReadChannelRequest: 17,
  ImpossibleHashError: 18,
  ImpossibleNewWriteCapError: 19,
  ImpossibleNewStatefulWriterError: 20,
  CapabilityAlreadyInUse: 21,
  MkemDecryptionFailed: 22,
  BacapDecryptionFailed: 23,
  StartResendingCancelled: 24,
  InvalidTombstoneSig: 25,
  CopyCommandFailed: 26,
  PayloadTooLarge: 27,
  VoucherHashMismatch: 28,
  VoucherSignatureInvalid: 29,
  VoucherSealOpenFailed: 30,
  CourierInvalidEnvelope: 31,
  CourierInvalidEpoch: 32,
} as const;

/**
 * Error codes of the replica namespace (katzenpost `pigeonhole/errors.go`).
 *
 * @example Usage
 * ```ts
 * import { ReplicaErrorCode } from "@katzenpost/thinclient";
 * console.log(ReplicaErrorCode.BoxIdNotFound); // 1
 * ```
 */
export const ReplicaErrorCode = {
  Success: 0,
  BoxIdNotFound: 1,
  InvalidBoxId: 2,
  InvalidSignature: 3,
  DatabaseFailure: 4,
  InvalidPayload: 5,
  StorageFull: 6,
  InternalError: 7,
  InvalidEpoch: 8,
  ReplicationFailed: 9,
  BoxAlreadyExists: 10,
  Tombstone: 11,
} as const;

const THIN_TEXT: readonly string[] = [
  "Success",
  "Connection lost",
  "Timeout",
  "Invalid request",
  "Internal error",
  "Maximum retries exceeded",
  "Invalid channel",
  "Channel not found",
  "Permission denied",
  "Invalid payload",
  "Service unavailable",
  "Duplicate capability",
  "Courier cache corruption",
  "Propagation error",
  "Invalid write capability",
  "Invalid read capability",
  "Invalid resume write channel request",
  "Invalid resume read channel request",
  "Impossible hash error",
  "Failed to create new write capability",
  "Failed to create new stateful writer",
  "Capability already in use",
  "MKEM decryption failed",
  "BACAP decryption failed",
  "Start resending cancelled",
  "Invalid tombstone signature",
  "Copy command failed",
  "Payload too large",
  "Voucher payload does not hash to the voucher",
  "Voucher signed please-add did not verify",
  "Voucher sealed reply could not be opened",
  "Courier rejected the envelope as malformed",
  "Courier rejected the envelope: replica epoch outside tolerance window",
];

const REPLICA_TEXT: readonly string[] = [
  "success",
  "box not found",
  "invalid box ID",
  "invalid signature",
  "database failure",
  "invalid payload",
  "storage full",
  "internal error",
  "invalid epoch",
  "replication failed",
  "box already exists",
  "tombstone",
];

/**
 * The daemon's text for a thin-namespace error code (Go `ThinClientErrorToString`).
 *
 * @param code An error code from a reply.
 * @returns The upstream text, or `Unknown thin client error code: <n>`.
 *
 * @example Usage
 * ```ts
 * import { thinErrorText } from "@katzenpost/thinclient";
 * console.log(thinErrorText(24)); // "Start resending cancelled"
 * ```
 */
export function thinErrorText(code: number): string {
  return THIN_TEXT[code] ?? `Unknown thin client error code: ${code}`;
}

/**
 * The replica's text for a replica-namespace error code (Go `ReplicaErrorToString`).
 *
 * @param code A replica error code.
 * @returns The upstream text, or `unknown replica error`.
 *
 * @example Usage
 * ```ts
 * import { replicaErrorText } from "@katzenpost/thinclient";
 * console.log(replicaErrorText(10)); // "box already exists"
 * ```
 */
export function replicaErrorText(code: number): string {
  return REPLICA_TEXT[code] ?? "unknown replica error";
}

/**
 * The daemon answered a request with a non-zero thin-namespace error code.
 * `code` is the raw value; `operation` names the request.
 *
 * @example Usage
 * ```ts
 * import { DaemonError, ThinErrorCode } from "@katzenpost/thinclient";
 * const err = new DaemonError(3, "new_keypair");
 * console.log(err.code === ThinErrorCode.InvalidRequest, err.message);
 * // true "Daemon refused 'new_keypair': Invalid request (code 3)"
 * ```
 */
export class DaemonError extends ThinClientError {
  /** The error class name. */
  override readonly name: string = "DaemonError";
  /** The thin-namespace error code. */
  readonly code: number;
  /** The request kind that failed, e.g. `encrypt_write`. */
  readonly operation: string;
  /**
   * Creates the error.
   *
   * @param code The thin-namespace error code.
   * @param operation The request kind that failed.
   * @param options An optional message override and cause.
   */
  constructor(
    code: number,
    operation: string,
    options?: ErrorOptions & { message?: string },
  ) {
    super(
      options?.message ??
        `Daemon refused '${operation}': ${thinErrorText(code)} (code ${code})`,
      options,
    );
    this.code = code;
    this.operation = operation;
  }
}

/**
 * The start-resending request was cancelled (code 24), by an abort signal or
 * an explicit cancel.
 *
 * @example Usage
 * ```ts
 * import { CancelledError } from "@katzenpost/thinclient";
 * console.log(new CancelledError("start_resending_copy_command").code); // 24
 * ```
 */
export class CancelledError extends DaemonError {
  /** The error class name. */
  override readonly name: string = "CancelledError";
  /**
   * Creates the error.
   *
   * @param operation The request kind that was cancelled.
   * @param options The underlying cause, if any.
   */
  constructor(operation: string, options?: ErrorOptions) {
    super(ThinErrorCode.StartResendingCancelled, operation, options);
  }
}

/**
 * A copy command failed (code 26). Carries the replica's reason and the
 * 1-based position in the copy stream of the envelope that failed.
 *
 * @example Usage
 * ```ts
 * import { CopyCommandError } from "@katzenpost/thinclient";
 * const err = new CopyCommandError(10, 3n);
 * console.log(err.message);
 * // "Copy command failed: box already exists (failed envelope index 3)"
 * ```
 */
export class CopyCommandError extends DaemonError {
  /** The error class name. */
  override readonly name: string = "CopyCommandError";
  /** Replica-namespace reason; 0 when the courier had no replica answer. */
  readonly replicaCode: number;
  /** 1-based position in the copy stream of the failed envelope. */
  readonly failedEnvelopeIndex: bigint;
  /**
   * Creates the error.
   *
   * @param replicaCode Replica-namespace reason, or 0.
   * @param failedEnvelopeIndex 1-based position of the failed envelope.
   */
  constructor(replicaCode: number, failedEnvelopeIndex: bigint) {
    super(ThinErrorCode.CopyCommandFailed, "start_resending_copy_command", {
      message: `Copy command failed: ${
        replicaCode === 0 ? "no replica reply" : replicaErrorText(replicaCode)
      } (failed envelope index ${failedEnvelopeIndex})`,
    });
    this.replicaCode = replicaCode;
    this.failedEnvelopeIndex = failedEnvelopeIndex;
  }
}

/**
 * A Pigeonhole read or write finished with a replica-namespace code
 * (box not found, box already exists, tombstone, or a replica failure).
 * Use {@linkcode isExpectedOutcome} to tell outcomes from failures.
 *
 * @example Usage
 * ```ts
 * import { isExpectedOutcome, ReplicaError, ReplicaErrorCode } from "@katzenpost/thinclient";
 * const err = new ReplicaError(ReplicaErrorCode.Tombstone);
 * console.log(err.message, isExpectedOutcome(err)); // "Replica answered: tombstone (code 11)" true
 * ```
 */
export class ReplicaError extends ThinClientError {
  /** The error class name. */
  override readonly name: string = "ReplicaError";
  /** The replica-namespace code. */
  readonly code: number;
  /**
   * Creates the error.
   *
   * @param code The replica-namespace code.
   * @param options The underlying cause, if any.
   */
  constructor(code: number, options?: ErrorOptions) {
    super(
      `Replica answered: ${replicaErrorText(code)} (code ${code})`,
      options,
    );
    this.code = code;
  }
}

/**
 * A payload exceeds a limit of the daemon's geometry. Raised locally, before
 * anything is sent.
 *
 * @example Usage
 * ```ts
 * import { PayloadTooLargeError } from "@katzenpost/thinclient";
 * const err = new PayloadTooLargeError(2001, 2000, "sendMessage payload");
 * console.log(err.message);
 * // "Cannot send sendMessage payload: size 2001 exceeds maximum 2000 bytes"
 * ```
 */
export class PayloadTooLargeError extends ThinClientError {
  /** The error class name. */
  override readonly name: string = "PayloadTooLargeError";
  /** Size given. */
  readonly size: number;
  /** The limit, from the daemon's geometry. */
  readonly limit: number;
  /**
   * Creates the error.
   *
   * @param size The size given.
   * @param limit The maximum allowed.
   * @param what What was too large.
   */
  constructor(size: number, limit: number, what: string) {
    super(`Cannot send ${what}: size ${size} exceeds maximum ${limit} bytes`);
    this.size = size;
    this.limit = limit;
  }
}

/**
 * Whether an error is a completed Pigeonhole outcome rather than a failure:
 * box not found, box already exists or tombstone (Go `IsExpectedOutcome`).
 *
 * @param err Any value caught.
 * @returns `true` for a {@linkcode ReplicaError} with code 1, 10 or 11.
 *
 * @example Usage
 * ```ts
 * import { isExpectedOutcome, ReplicaError } from "@katzenpost/thinclient";
 * console.log(isExpectedOutcome(new ReplicaError(1))); // true
 * console.log(isExpectedOutcome(new Error("x"))); // false
 * ```
 */
export function isExpectedOutcome(err: unknown): boolean {
  return err instanceof ReplicaError &&
    (err.code === ReplicaErrorCode.BoxIdNotFound ||
      err.code === ReplicaErrorCode.BoxAlreadyExists ||
      err.code === ReplicaErrorCode.Tombstone);
}

/**
 * Maps the mixed error field of `start_resending_encrypted_message_reply`
 * (replica codes 1–11 and thin codes 12+) to an error, following the Go
 * client's `errorCodeToSentinel`. Codes 3 and 4 collide; they are read as
 * replica codes, as upstream does.
 *
 * @param code The raw `error_code` (non-zero).
 * @returns A {@linkcode ReplicaError}, {@linkcode CancelledError} or {@linkcode DaemonError}.
 *
 * @example Usage
 * ```ts
 * import { errorFromResendCode } from "@katzenpost/thinclient";
 * console.log(errorFromResendCode(11).name, errorFromResendCode(24).name);
 * // "ReplicaError" "CancelledError"
 * ```
 */
export function errorFromResendCode(code: number): ThinClientError {
  const op = "start_resending_encrypted_message";
  if (code >= 1 && code <= 11) return new ReplicaError(code);
  if (code === ThinErrorCode.StartResendingCancelled) {
    return new CancelledError(op);
  }
  return new DaemonError(code, op);
}
