/**
 * The copy protocol in three steps on top of {@linkcode ThinClient}: have
 * the daemon build the copy stream for a payload (the signed and encrypted
 * writes of every destination box, cut into elements), upload the elements
 * into a temporary stream, then send the courier copy command, which writes
 * the destination boxes while the sender may already be gone. Readers of the
 * destination see nothing until the courier runs the copy.
 *
 * @module
 */
import type { MessageBoxIndex, WriteCap } from "./caps.ts";
import type { CallOptions, ThinClient } from "./client.ts";
import { callOptions } from "./_options.ts";
import type { Keypair } from "./pigeonhole.ts";
import { writeBoxes, type WriteCursor } from "./boxes.ts";

/**
 * A copy stream built by {@linkcode createCopyStream}.
 *
 * @example Usage
 * ```ts ignore
 * const stream: CopyStream = await createCopyStream(client, payload, writeCap, index);
 * console.log(`${stream.elements.length} temporary boxes, ${stream.destBoxes} destination boxes`);
 * ```
 */
export interface CopyStream {
  /** The elements, one per temporary box, in order. */
  elements: Uint8Array[];
  /** The destination index after the last box the copy writes. */
  nextDestIndex: MessageBoxIndex;
  /** How many destination boxes the copy writes. */
  destBoxes: number;
}

/**
 * Has the daemon build the copy stream that writes `payload` into the boxes
 * of a stream from `index` on (as one complete stream: first and last
 * element), and counts the destination boxes it covers.
 *
 * @param client A connected client.
 * @param payload 1 byte to 10 MiB ({@linkcode MAX_COPY_PAYLOAD}).
 * @param writeCap The destination stream's write capability.
 * @param index The first destination box.
 * @param options Abort signal.
 * @returns The elements, the index after the copy, and the box count.
 * @throws {PayloadTooLargeError} When the payload exceeds the limit.
 *
 * @example Usage
 * ```ts ignore
 * import { createCopyStream } from "@katzenpost/thinclient";
 *
 * const stream = await createCopyStream(client, payload, writeCap, index);
 * ```
 */
export async function createCopyStream(
  client: ThinClient,
  payload: Uint8Array,
  writeCap: WriteCap,
  index: MessageBoxIndex,
  options: CallOptions = {},
): Promise<CopyStream> {
  const built = await client.createCourierEnvelopesFromPayload(
    payload,
    writeCap,
    index,
    true,
    true,
    options,
  );
  const [a, b] = await Promise.all([
    client.getMessageBoxIndexCounter(index, options),
    client.getMessageBoxIndexCounter(built.nextDestIndex, options),
  ]);
  return {
    elements: built.envelopes,
    nextDestIndex: built.nextDestIndex,
    destBoxes: Number(b - a),
  };
}

/**
 * Options of {@linkcode uploadCopyStream} and {@linkcode sendCopyStream}.
 *
 * @example Usage
 * ```ts ignore
 * const options: CopyStreamOptions = { window: 8, signal: AbortSignal.timeout(600_000) };
 * ```
 */
export interface CopyStreamOptions extends CallOptions {
  /**
   * Temporary boxes in flight at most.
   * @default {8}
   */
  window?: number;
  /**
   * Resume an upload: where it stands (updated as boxes are acknowledged).
   * By default the upload starts at the temporary stream's first box.
   */
  cursor?: WriteCursor;
  /**
   * Index of the last element's box, when a resumed upload had already
   * written it (the upload then waits for that box before returning).
   */
  lastIndex?: MessageBoxIndex;
  /** Called after each acknowledgement of element `k` (at `index`). */
  onAck?: (k: number, index: MessageBoxIndex, cursor: WriteCursor) => void;
}

/**
 * Uploads copy-stream elements, in order, into the temporary stream `temp`
 * (a fresh keypair; reuse its seed only to resume this very upload), with a
 * bounded number of writes in flight, then waits until the last element is
 * readable, so the courier finds the whole stream.
 *
 * @param client A connected client.
 * @param temp The temporary stream.
 * @param elements The elements from {@linkcode createCopyStream}.
 * @param options Window, resume cursor, progress callback, abort signal.
 * @returns When every element is stored.
 * @throws The first failed write (the others are cancelled).
 *
 * @example Usage
 * ```ts ignore
 * import { createCopyStream, uploadCopyStream } from "@katzenpost/thinclient";
 *
 * const stream = await createCopyStream(client, payload, writeCap, index);
 * const temp = await client.newKeypair();
 * await uploadCopyStream(client, temp, stream.elements);
 * await client.startResendingCopyCommand(temp.writeCap);
 * ```
 */
export async function uploadCopyStream(
  client: ThinClient,
  temp: Keypair,
  elements: readonly Uint8Array[],
  options: CopyStreamOptions = {},
): Promise<void> {
  const signal = options.signal;
  const { last } = await writeBoxes(
    client,
    temp.writeCap,
    options.cursor ?? temp.firstMessageIndex,
    elements.length,
    (k) => elements[k]!,
    {
      ...callOptions(signal),
      ...(options.window === undefined ? {} : { window: options.window }),
      ...(options.onAck === undefined ? {} : { onAck: options.onAck }),
    },
  );
  const gateAt = last ?? options.lastIndex ?? null;
  if (gateAt === null) return;
  // Gate: the courier reads the temporary stream from its start; wait until
  // its last box is readable.
  const opts = callOptions(signal);
  const gate = await client.encryptRead(temp.readCap, gateAt, opts);
  await client.startResendingEncryptedMessage(
    { readCap: temp.readCap, messageBoxIndex: gateAt, ...gate },
    opts,
  );
}

/**
 * Runs a whole copy: uploads the elements into the temporary stream `temp`
 * ({@linkcode uploadCopyStream}), then sends the copy command and waits for
 * the courier's verdict.
 *
 * @param client A connected client.
 * @param temp A fresh temporary stream (a new keypair every attempt: the
 *   elements are encrypted with fresh randomness each time they are built).
 * @param elements The elements from {@linkcode createCopyStream}.
 * @param options Window, progress callback, abort signal.
 * @returns When the courier wrote every destination box.
 * @throws {CopyCommandError} When the courier failed (see {@linkcode isConflict}).
 *
 * @example Usage
 * ```ts ignore
 * import { createCopyStream, sendCopyStream } from "@katzenpost/thinclient";
 *
 * const stream = await createCopyStream(client, payload, writeCap, index);
 * await sendCopyStream(client, await client.newKeypair(), stream.elements);
 * // Readers find the payload in boxes index … stream.nextDestIndex (exclusive).
 * ```
 */
export async function sendCopyStream(
  client: ThinClient,
  temp: Keypair,
  elements: readonly Uint8Array[],
  options: CopyStreamOptions = {},
): Promise<void> {
  await uploadCopyStream(client, temp, elements, options);
  await client.startResendingCopyCommand(
    temp.writeCap,
    callOptions(options.signal),
  );
}
