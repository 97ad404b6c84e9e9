/**
 * The legacy message API: `send_message` with or without a SURB, and the
 * wait for a SURB reply.
 *
 * @module
 */
import { idKey, randomBytes } from "./_bytes.ts";
import { abortReason, deferred } from "./_async.ts";
import { checkLength } from "./_requests.ts";
import type { Session } from "./_session.ts";
import { ConnectionError, PayloadTooLargeError } from "./errors.ts";
import { HASH_LENGTH, ID_LENGTH } from "./protocol.ts";

function checkSend(
  session: Session,
  payload: Uint8Array,
  destinationIdHash: Uint8Array,
  queueId: Uint8Array,
): void {
  session.assertOpen();
  if (!(payload instanceof Uint8Array)) {
    throw new TypeError("Cannot send message: payload is not a Uint8Array");
  }
  checkLength("destinationIdHash", destinationIdHash, HASH_LENGTH);
  if (
    !(queueId instanceof Uint8Array) || queueId.length < 1 ||
    queueId.length > 32
  ) {
    throw new RangeError(
      `Cannot send message: recipientQueueId must be 1 to 32 bytes, got ${
        queueId instanceof Uint8Array ? queueId.length : typeof queueId
      }`,
    );
  }
  const limit = session.state.sphinx!.userForwardPayloadLength;
  if (payload.length > limit) {
    throw new PayloadTooLargeError(payload.length, limit, "message payload");
  }
  if (!session.state.isConnected) {
    throw new ConnectionError(
      "Cannot send message: the daemon is offline (not connected to the mixnet)",
    );
  }
  if (!session.reachable) {
    throw new ConnectionError(
      `Cannot send message: not connected to the daemon at '${session.address}'`,
    );
  }
}

/**
 * The one path of the message methods: checks a message and writes its
 * `send_message` (with a SURB when `surbId` is set).
 *
 * @returns When the request has been written.
 */
export function postMessage(
  session: Session,
  surbId: Uint8Array | null,
  id: Uint8Array | null,
  payload: Uint8Array,
  destinationIdHash: Uint8Array,
  recipientQueueId: Uint8Array,
): Promise<void> {
  checkSend(session, payload, destinationIdHash, recipientQueueId);
  return session.write({
    kind: "send_message",
    id,
    withSurb: surbId !== null,
    surbId,
    destinationIdHash,
    recipientQueueId,
    payload,
  });
}

/** Sends a message with a fresh SURB and waits for its reply payload. */
export async function sendAndWait(
  session: Session,
  payload: Uint8Array,
  destinationIdHash: Uint8Array,
  recipientQueueId: Uint8Array,
  signal: AbortSignal | undefined,
): Promise<Uint8Array> {
  signal?.throwIfAborted();
  const surbId = randomBytes(ID_LENGTH);
  const key = idKey(surbId);
  const waiter = deferred<Uint8Array>();
  const dispatcher = session.dispatcher;
  dispatcher.addSurbWaiter(key, waiter);
  const onAbort = (): void => {
    dispatcher.removeSurbWaiter(key);
    waiter.reject(abortReason(signal!));
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    // Checks the message: a bad one rejects here, and the waiter goes.
    await postMessage(
      session,
      surbId,
      null,
      payload,
      destinationIdHash,
      recipientQueueId,
    );
    return await waiter.promise;
  } finally {
    signal?.removeEventListener("abort", onAbort);
    dispatcher.removeSurbWaiter(key);
  }
}
