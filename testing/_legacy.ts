/**
 * The fake daemon's legacy messaging: `send_message` with its
 * `message_sent_event` and the echo service's `message_reply_event` (the
 * hub keeps them for a session while its client is away).
 *
 * @module
 */
import { delay } from "../lib/_async.ts";
import { bytesEqual, fromUtf8 } from "../lib/_bytes.ts";
import type { MixnetJob, SessionHub } from "./_sessions.ts";
import { bytesOrNull, responseBody } from "./_wire.ts";

/** Why kpclientd would refuse to send, or `null`. */
function sendError(
  hub: SessionHub,
  payload: Uint8Array,
  queueId: Uint8Array,
  destination: Uint8Array | null,
): string | null {
  const { doc, sphinx } = hub.state;
  const max = sphinx.UserForwardPayloadLength;
  if (payload.length > max) {
    return `message too large: ${payload.length} > ${max}`;
  }
  if (destination === null) return "request.DestinationIdHash is nil";
  if (queueId.length === 0 || queueId.length > 32) {
    return `invalid recipient queue ID length: ${queueId.length}`;
  }
  if (doc === null) return "no PKI document";
  const service = doc.services.find((s) =>
    bytesEqual(s.destinationIdHash, destination)
  );
  return service === undefined ? "client: recipient is nil" : null;
}

/** Runs `send_message` (after the mixnet FIFO), with the echo service. */
export async function sendMessage(job: MixnetJob): Promise<void> {
  const { hub, session, req, rec } = job;
  const state = hub.state;
  const lifetime = state.lifetime.signal;
  const f = req.fields;
  const ids = { "message_id": f["id"], "surbid": f["surbid"] };
  const action = await state.scripts.resolve(req.kind, rec, lifetime);
  const sentAt = Math.floor(state.now() / 1000);
  const sent = (values: Record<string, unknown>) =>
    hub.deliverOrQueue(
      session,
      "message_sent_event",
      responseBody("message_sent_event", { ...ids, ...values }),
    );
  switch (action.type) {
    case "none":
      return;
    case "reply":
      return sent({ ...action.body });
    case "error":
      return sent({
        "sent_at": sentAt,
        "reply_eta": 0,
        "err": "scripted failure",
        ...action.fields,
      });
  }
  if (f["with_surb"] !== true) return;
  const payload = bytesOrNull(f["payload"]) ?? new Uint8Array();
  const queueId = bytesOrNull(f["recipient_queue_id"]) ?? new Uint8Array();
  const destination = bytesOrNull(f["destination_id_hash"]);
  const error = sendError(hub, payload, queueId, destination);
  if (error !== null) {
    return sent({ "sent_at": sentAt, "reply_eta": 0, "err": error });
  }
  sent({ "sent_at": sentAt, "reply_eta": state.replyEtaNs });
  const isEcho =
    state.doc?.services.some((s) =>
      s.capability === "echo" && destination !== null &&
      bytesEqual(s.destinationIdHash, destination) &&
      s.endpoint === fromUtf8(queueId)
    ) ?? false;
  if (!isEcho) return;
  if (state.echoDelayMs > 0) await delay(state.echoDelayMs, lifetime);
  // kpclientd v0.0.99 delivers the whole SURB payload: ForwardPayloadLength bytes.
  const padded = new Uint8Array(
    Math.max(state.sphinx.ForwardPayloadLength, payload.length),
  );
  padded.set(payload);
  hub.deliverOrQueue(
    session,
    "message_reply_event",
    responseBody("message_reply_event", {
      ...ids,
      "payload": padded,
      "error_code": 0,
    }),
  );
}
