/**
 * The message format inside a channel's boxes: a box holding one message is
 * `0x00 ‖ message`; a large message written with a copy command is
 * `0x01 ‖ uint32 BE length ‖ message`, cut by the daemon into consecutive
 * boxes.
 *
 * @module
 */
import { MAX_COPY_PAYLOAD } from "../lib/pigeonhole.ts";
import type { OutboxKind } from "./db.ts";

const FRAME_SINGLE = 0x00;
const FRAME_LARGE = 0x01;
const LARGE_HEADER = 5;

/** No bytes: the payload of a tombstone. */
export const EMPTY: Uint8Array = new Uint8Array(0);

/** Largest message `Channel.sendLarge` accepts: 10 MiB minus its 5-byte header. */
export const MAX_LARGE_MESSAGE: number = MAX_COPY_PAYLOAD - LARGE_HEADER;

/** A message as the content of one box. */
export function frameSingle(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(message.length + 1);
  out[0] = FRAME_SINGLE;
  out.set(message, 1);
  return out;
}

/** A large message as the payload of a copy command. */
export function frameLarge(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(message.length + LARGE_HEADER);
  out[0] = FRAME_LARGE;
  new DataView(out.buffer).setUint32(1, message.length, false);
  out.set(message, LARGE_HEADER);
  return out;
}

/** The message inside an outbox item's framed payload. */
export function unframe(kind: OutboxKind, payload: Uint8Array): Uint8Array {
  if (kind === "message") return payload.subarray(1);
  if (kind === "copy") return payload.subarray(LARGE_HEADER);
  return EMPTY;
}

/**
 * What the first box of a message says: the whole message, or the start of
 * a large one and its full length, or that it is not in this format.
 */
export type FirstBox =
  | { type: "single"; message: Uint8Array }
  | { type: "large"; length: number; head: Uint8Array }
  | { type: "malformed" };

/** Parses the first box of a message. */
export function parseFirstBox(data: Uint8Array): FirstBox {
  if (data[0] === FRAME_SINGLE) {
    return { type: "single", message: data.subarray(1) };
  }
  if (data[0] === FRAME_LARGE && data.length >= LARGE_HEADER) {
    const length = new DataView(data.buffer, data.byteOffset, data.length)
      .getUint32(1, false);
    if (length === 0 || length > MAX_LARGE_MESSAGE) {
      return { type: "malformed" };
    }
    return { type: "large", length, head: data.subarray(LARGE_HEADER) };
  }
  return { type: "malformed" };
}
