/**
 * Errors of the persistent channel layer. All extend
 * {@linkcode ThinClientError}, so one `instanceof` catches every error of the
 * library.
 *
 * @module
 */
import { ThinClientError } from "../lib/errors.ts";

/**
 * A persistent-store operation failed: the database cannot be opened or is
 * closed, a name is already taken, the seal key is wrong, a message id does
 * not belong to the channel, or a write was refused.
 *
 * @example Usage
 * ```ts
 * import { PersistentError } from "@katzenpost/thinclient/persistent";
 * const err = new PersistentError("Cannot create channel 'news': name already in use");
 * console.log(err.name); // "PersistentError"
 * ```
 */
export class PersistentError extends ThinClientError {
  /** Always `"PersistentError"`. */
  override readonly name: string = "PersistentError";
}

/**
 * No channel of that name exists in the store (or it was deleted while a
 * handle to it was still in use).
 *
 * @example Usage
 * ```ts
 * import { ChannelNotFoundError } from "@katzenpost/thinclient/persistent";
 * const err = new ChannelNotFoundError("news");
 * console.log(err.message, err.channel); // "Channel 'news' not found" "news"
 * ```
 */
export class ChannelNotFoundError extends PersistentError {
  /** Always `"ChannelNotFoundError"`. */
  override readonly name: string = "ChannelNotFoundError";
  /** The channel name looked up. */
  readonly channel: string;
  /**
   * Creates the error.
   *
   * @param channel The channel name that was not found.
   * @param options The underlying cause, if any.
   */
  constructor(channel: string, options?: ErrorOptions) {
    super(`Channel '${channel}' not found`, options);
    this.channel = channel;
  }
}

/**
 * A write of new content found its box already occupied by other content
 * (replica code 10, box already exists). With a correct store this means the
 * channel's write cursor was rewound, for example by restoring an old copy of
 * the database, or another store writes the same channel. The message was
 * NOT delivered: it stays in the outbox as `failed` (see
 * `Channel.outbox()`), so it can be sent again or discarded.
 *
 * @example Usage
 * ```ts
 * import { BoxConflictError } from "@katzenpost/thinclient/persistent";
 * const err = new BoxConflictError("news", 7, 3);
 * console.log(err.message);
 * // "Cannot send on channel 'news': box 3 already holds other content (outbox item 7)"
 * ```
 */
export class BoxConflictError extends PersistentError {
  /** Always `"BoxConflictError"`. */
  override readonly name: string = "BoxConflictError";
  /** The channel written. */
  readonly channel: string;
  /** The outbox item (see `Channel.outbox()`), kept as `failed`. */
  readonly outboxId: number;
  /** Position of the first box of the write in the channel. */
  readonly seq: number;
  /**
   * Creates the error.
   *
   * @param channel The channel written.
   * @param outboxId The failed outbox item.
   * @param seq Position of the box in the channel.
   * @param options The underlying cause (the replica error), if any.
   */
  constructor(
    channel: string,
    outboxId: number,
    seq: number,
    options?: ErrorOptions,
  ) {
    super(
      `Cannot send on channel '${channel}': box ${seq} already holds other content (outbox item ${outboxId})`,
      options,
    );
    this.channel = channel;
    this.outboxId = outboxId;
    this.seq = seq;
  }
}
