/**
 * Box-level Pigeonhole flows on top of {@linkcode ThinClient}'s low-level
 * calls: read one box and get what it holds (data, a tombstone, or nothing
 * yet), write one box with or without the replica's verdict, write many
 * consecutive boxes with a bounded number in flight, and tell a "box already
 * holds other content" failure from any other.
 *
 * @module
 */
import type { MessageBoxIndex, ReadCap, WriteCap } from "./caps.ts";
import type { CallOptions, ThinClient } from "./client.ts";
import { delay } from "./_async.ts";
import { callOptions } from "./_options.ts";
import { CopyCommandError, ReplicaError, ReplicaErrorCode } from "./errors.ts";

/**
 * What one box holds, as {@linkcode readBox} found it. Every variant carries
 * the index of the following box.
 *
 * @example Usage
 * ```ts ignore
 * const box: BoxOutcome = await readBox(client, readCap, index, { noRetry: true });
 * if (box.kind === "data") console.log(box.plaintext.length);
 * ```
 */
export type BoxOutcome =
  | {
    /** The box was written. */
    kind: "data";
    /** Its bytes (at least one). */
    plaintext: Uint8Array;
    /** The index of the following box. */
    next: MessageBoxIndex;
  }
  | {
    /** The box was deleted (a tombstone was written over it). */
    kind: "tombstone";
    /** The index of the following box. */
    next: MessageBoxIndex;
  }
  | {
    /** The box is not written (yet). */
    kind: "empty";
    /** The index of the following box. */
    next: MessageBoxIndex;
  };

/**
 * Options of {@linkcode readBox}.
 *
 * @example Usage
 * ```ts ignore
 * const options: ReadBoxOptions = { noRetry: true, signal: AbortSignal.timeout(60_000) };
 * ```
 */
export interface ReadBoxOptions extends CallOptions {
  /**
   * Return `"empty"` at once when the box is not written yet, instead of
   * waiting for it.
   * @default {false}
   */
  noRetry?: boolean;
  /**
   * While the box is not written: milliseconds between reads, at most (the
   * first waits are 1 s, 2 s, 4 s, …), each drawn at random between half and
   * 1.5 times the step. Every read is a fresh envelope.
   * (The daemon's own retries resend one envelope, and kpclientd v0.0.99's
   * courier answers repeats from a cache: after five re-dispatches it stops
   * asking the replicas about that envelope for up to 5 minutes, so a box
   * written later would go unseen that long.)
   * @default {5000}
   */
  pollMs?: number;
}

/**
 * Reads one box. A deleted box (replica code 11, or an empty answer) is
 * `"tombstone"`; a box not written (replica code 1) is `"empty"` with
 * `noRetry`, and is otherwise read again every `pollMs` until it is written
 * or the signal aborts; other failures are thrown.
 *
 * @param client A connected client.
 * @param readCap The stream's read capability.
 * @param index The box.
 * @param options Abort signal; `noRetry` to get `"empty"` at once for an
 *   unwritten box; `pollMs` between reads while waiting.
 * @returns What the box holds, and the index of the following box.
 * @throws {ReplicaError} Any other replica answer.
 * @throws {ThinClientError} Daemon or connection failures.
 *
 * @example Usage
 * ```ts ignore
 * import { readBox } from "@katzenpost/thinclient";
 *
 * const box = await readBox(client, readCap, index, { noRetry: true });
 * if (box.kind === "data") console.log(new TextDecoder().decode(box.plaintext));
 * else if (box.kind === "empty") console.log("not written yet");
 * ```
 */
export async function readBox(
  client: ThinClient,
  readCap: ReadCap,
  index: MessageBoxIndex,
  options: ReadBoxOptions = {},
): Promise<BoxOutcome> {
  pollInterval(options); // a bad pollMs fails before anything is sent
  const box = await readOnce(client, readCap, index, options.signal);
  if (box.kind !== "empty" || options.noRetry === true) return box;
  return await readWhenWritten(client, readCap, index, options);
}

/**
 * Reads a box found empty again, with fresh envelopes, until it is written:
 * the waiting part of {@linkcode readBox}, for a caller that made the first
 * read itself (`noRetry` is ignored).
 */
export async function readWhenWritten(
  client: ThinClient,
  readCap: ReadCap,
  index: MessageBoxIndex,
  options: ReadBoxOptions = {},
): Promise<BoxOutcome> {
  const pollMs = pollInterval(options);
  // A box written a moment ago may not have reached every replica yet:
  // the first reads again come sooner (1 s, 2 s, 4 s, …, up to pollMs).
  for (let wait = Math.min(1000, pollMs);; wait = Math.min(wait * 2, pollMs)) {
    await delay(wait * (0.5 + Math.random()), options.signal);
    const box = await readOnce(client, readCap, index, options.signal);
    if (box.kind !== "empty") return box;
  }
}

function pollInterval(options: ReadBoxOptions): number {
  const pollMs = options.pollMs ?? 5000;
  if (!(Number.isFinite(pollMs) && pollMs > 0)) {
    throw new RangeError(
      `Cannot read box: pollMs '${pollMs}' is not a positive number of milliseconds`,
    );
  }
  return pollMs;
}

/** One read of a box, answered "empty" at once when it is not written. */
async function readOnce(
  client: ThinClient,
  readCap: ReadCap,
  index: MessageBoxIndex,
  signal: AbortSignal | undefined,
): Promise<BoxOutcome> {
  const env = await client.encryptRead(readCap, index, callOptions(signal));
  const next = env.nextMessageBoxIndex;
  try {
    const r = await client.startResendingEncryptedMessage(
      { readCap, messageBoxIndex: index, ...env },
      { ...callOptions(signal), noRetryOnBoxIdNotFound: true },
    );
    if (r.plaintext === null || r.plaintext.length === 0) {
      return { kind: "tombstone", next };
    }
    return { kind: "data", plaintext: r.plaintext, next };
  } catch (err) {
    if (err instanceof ReplicaError) {
      if (err.code === ReplicaErrorCode.Tombstone) {
        return { kind: "tombstone", next };
      }
      if (err.code === ReplicaErrorCode.BoxIdNotFound) {
        return { kind: "empty", next };
      }
    }
    throw err;
  }
}

/**
 * Options of {@linkcode writeBox}.
 *
 * @example Usage
 * ```ts ignore
 * const options: WriteBoxOptions = { confirm: true, signal: AbortSignal.timeout(60_000) };
 * ```
 */
export interface WriteBoxOptions extends CallOptions {
  /**
   * Wait for the replica's verdict, so that a box already holding other
   * content fails with a conflict (see {@linkcode isConflict}) instead of
   * passing as success. Costs the daemon more round trips to the courier.
   * @default {false}
   */
  confirm?: boolean;
}

/**
 * Writes one box: encrypts `payload` for it and sends it until it is
 * acknowledged (with `confirm`, until the replica accepted it).
 *
 * @param client A connected client.
 * @param writeCap The stream's write capability.
 * @param index The box.
 * @param payload 1 to `maxPlaintextPayloadLength` bytes (an empty payload
 *   writes a tombstone).
 * @param options Abort signal; `confirm` to wait for the replica.
 * @returns The index of the following box.
 * @throws {ReplicaError} Code 10 when the box holds other content (`confirm`).
 * @throws {PayloadTooLargeError} When the payload does not fit a box.
 *
 * @example Usage
 * ```ts ignore
 * import { isConflict, writeBox } from "@katzenpost/thinclient";
 *
 * try {
 *   const next = await writeBox(client, writeCap, index, bytes, { confirm: true });
 * } catch (err) {
 *   if (isConflict(err)) console.log("that box already holds other content");
 *   else throw err;
 * }
 * ```
 */
export async function writeBox(
  client: ThinClient,
  writeCap: WriteCap,
  index: MessageBoxIndex,
  payload: Uint8Array,
  options: WriteBoxOptions = {},
): Promise<MessageBoxIndex> {
  const env = await client.encryptWrite(
    payload,
    writeCap,
    index,
    callOptions(options.signal),
  );
  await client.startResendingEncryptedMessage({ writeCap, ...env }, {
    ...callOptions(options.signal),
    noIdempotentBoxAlreadyExists: options.confirm ?? false,
  });
  return env.nextMessageBoxIndex;
}

/**
 * Whether `err` says a box already held other content: a replica's
 * `BoxAlreadyExists` (code 10) for a confirmed write, or a copy command that
 * failed with that code.
 *
 * @param err Anything thrown.
 * @returns `true` for a conflict.
 *
 * @example Usage
 * ```ts
 * import { isConflict, ReplicaError, ReplicaErrorCode } from "@katzenpost/thinclient";
 * console.log(isConflict(new ReplicaError(ReplicaErrorCode.BoxAlreadyExists))); // true
 * console.log(isConflict(new Error("no"))); // false
 * ```
 */
export function isConflict(err: unknown): boolean {
  return (err instanceof ReplicaError &&
    err.code === ReplicaErrorCode.BoxAlreadyExists) ||
    (err instanceof CopyCommandError &&
      err.replicaCode === ReplicaErrorCode.BoxAlreadyExists);
}

/**
 * Progress of a {@linkcode writeBoxes} run, for resuming it: box numbers
 * count from 0 at the run's first box.
 *
 * @example Usage
 * ```ts ignore
 * const cursor: WriteCursor = { low: 0, lowIndex: index, ahead: new Set() };
 * ```
 */
export interface WriteCursor {
  /** First box not yet acknowledged. */
  low: number;
  /** Index of box `low`. */
  lowIndex: MessageBoxIndex;
  /** Boxes above `low` already acknowledged. */
  ahead: Set<number>;
}

/**
 * Options of {@linkcode writeBoxes}.
 *
 * @example Usage
 * ```ts ignore
 * const options: WriteBoxesOptions = { window: 16, confirm: "first" };
 * ```
 */
export interface WriteBoxesOptions extends CallOptions {
  /**
   * Boxes in flight at most.
   * @default {8}
   */
  window?: number;
  /**
   * Which writes wait for the replica's verdict, so that a box already
   * holding other content fails instead of passing as success: `"all"`,
   * `"first"` (the first box written by this run: enough to catch a reused
   * stream at the cost of one confirmation) or `"none"`.
   * @default {"none"}
   */
  confirm?: "all" | "first" | "none";
  /**
   * Called after each acknowledgement of box `k` (at `index`), with the
   * cursor already moved. An exception stops the run like a failed write.
   */
  onAck?: (k: number, index: MessageBoxIndex, cursor: WriteCursor) => void;
}

/**
 * Writes boxes `0 … count − 1` of a stream in order of index, with at most
 * `window` writes in flight (the daemon's send queue never idles while one
 * write waits for its round trip). The first failure cancels every write
 * still in flight and is thrown once they settled; so does an abort.
 *
 * To resume, pass a {@linkcode WriteCursor} instead of the first index: the
 * run starts at `cursor.low` and skips the boxes in `cursor.ahead`, and moves
 * the cursor as boxes are acknowledged.
 *
 * @param client A connected client.
 * @param writeCap The stream's write capability.
 * @param from The index of box 0, or a cursor to resume from (updated).
 * @param count Boxes in all.
 * @param payload The bytes of box `k` (asked for in order, just before
 *   its write).
 * @param options Window, confirmation, progress callback, abort signal.
 * @returns The index after the last box, and the last box's index (`null`
 *   when a resumed run started past it).
 * @throws The first failure (of a write, of `payload` or of `onAck`).
 *
 * @example Usage
 * ```ts ignore
 * import { writeBoxes } from "@katzenpost/thinclient";
 *
 * const chunks = ["one", "two"].map((s) => new TextEncoder().encode(s)); // one box each
 * const { next } = await writeBoxes(client, writeCap, index, chunks.length, (k) => chunks[k]!, {
 *   window: 8,
 *   onAck: (k) => console.log(`box ${k} acknowledged`),
 * });
 * ```
 */
export async function writeBoxes(
  client: ThinClient,
  writeCap: WriteCap,
  from: MessageBoxIndex | WriteCursor,
  count: number,
  payload: (k: number) => Uint8Array | Promise<Uint8Array>,
  options: WriteBoxesOptions = {},
): Promise<{ next: MessageBoxIndex; last: MessageBoxIndex | null }> {
  const cursor: WriteCursor = "lowIndex" in from
    ? from
    : { low: 0, lowIndex: from, ahead: new Set() };
  const window = options.window ?? 8;
  if (!Number.isSafeInteger(window) || window < 1) {
    throw new RangeError(
      `Cannot write boxes: window '${window}' is not a positive integer`,
    );
  }
  const ctl = new AbortController();
  const signal = options.signal === undefined
    ? ctl.signal
    : AbortSignal.any([options.signal, ctl.signal]);
  // Boxes in flight, and who waits for one to finish (one promise per wait,
  // not a race over every box in flight).
  let active = 0;
  let wake: (() => void) | null = null;
  const finished = (): void => {
    active--;
    const w = wake;
    wake = null;
    w?.();
  };
  const someFinished = (): Promise<void> =>
    new Promise<void>((resolve) => wake = resolve);
  const indices = new Map<number, MessageBoxIndex>();
  let failure: { error: unknown } | null = null;
  const fail = (error: unknown): void => {
    failure ??= { error };
    if (!ctl.signal.aborted) ctl.abort(error);
  };
  let k = cursor.low;
  let index = cursor.lowIndex;
  let last: MessageBoxIndex | null = null;
  let first = true;
  indices.set(k, index);
  const acked = (box: number, at: MessageBoxIndex): void => {
    cursor.ahead.add(box);
    while (cursor.ahead.has(cursor.low)) {
      cursor.ahead.delete(cursor.low);
      indices.delete(cursor.low);
      cursor.low++;
    }
    cursor.lowIndex = indices.get(cursor.low) ?? cursor.lowIndex;
    options.onAck?.(box, at, cursor);
  };
  try {
    while (k < count && failure === null) {
      if (cursor.ahead.has(k)) {
        if (k === count - 1) last = index;
        index = await client.nextMessageBoxIndex(index, { signal });
        k++;
        indices.set(k, index);
        continue;
      }
      while (active >= window) await someFinished();
      if (failure !== null) break;
      const data = await payload(k);
      const env = await client.encryptWrite(data, writeCap, index, { signal });
      const box = k;
      const at = index;
      if (box === count - 1) last = index;
      const confirm = options.confirm === "all" ||
        (options.confirm === "first" && first);
      first = false;
      active++;
      client.startResendingEncryptedMessage({ writeCap, ...env }, {
        signal,
        noIdempotentBoxAlreadyExists: confirm,
      }).then(() => {
        try {
          acked(box, at);
        } catch (err) {
          fail(err);
        }
        finished();
      }, (err) => {
        fail(err);
        finished();
      });
      index = env.nextMessageBoxIndex;
      k++;
      indices.set(k, index);
    }
  } catch (err) {
    fail(err);
  }
  while (active > 0) await someFinished();
  if (failure !== null) throw (failure as { error: unknown }).error;
  return { next: index, last };
}
