/**
 * Length-prefixed framing of the thin protocol: a 4-byte big-endian length,
 * then that many bytes of one CBOR item. This file only handles lengths and
 * bytes.
 *
 * @module
 */
import { ProtocolError } from "./errors.ts";

/**
 * The largest frame body either side accepts: 40 MiB.
 *
 * @example Usage
 * ```ts
 * import { MAX_FRAME_SIZE } from "@katzenpost/thinclient";
 * console.log(MAX_FRAME_SIZE); // 41943040
 * ```
 */
export const MAX_FRAME_SIZE: number = 41_943_040;

/**
 * The largest frame body a client accepts before it has sent its session
 * token: 4 MiB. Those first frames are the daemon's connection status (about
 * 600 bytes) and its PKI document, which is tens of kilobytes on a small
 * network and about 200 KB for 108 nodes with 1216-byte post-quantum link
 * keys (bench/_pki_fixture.ts), so this leaves 20 times that. A peer that is
 * not kpclientd cannot make the client buffer 40 MiB before it has proved
 * anything. Raise it with the `handshakeMaxFrameSize` option of
 * `ThinClient.connect` for a larger network.
 *
 * @example Usage
 * ```ts
 * import { HANDSHAKE_MAX_FRAME_SIZE } from "@katzenpost/thinclient";
 * console.log(HANDSHAKE_MAX_FRAME_SIZE); // 4194304
 * ```
 */
export const HANDSHAKE_MAX_FRAME_SIZE: number = 4_194_304;

/**
 * Prefixes a body with its 4-byte big-endian length.
 *
 * @param body The CBOR body.
 * @param maxFrameSize Largest body allowed.
 * @returns A new buffer holding prefix and body.
 * @throws {RangeError} When the body exceeds `maxFrameSize`.
 *
 * @example Usage
 * ```ts
 * import { encodeFrame } from "@katzenpost/thinclient";
 * console.log(encodeFrame(new Uint8Array([0xa0]))); // Uint8Array(5) [ 0, 0, 0, 1, 160 ]
 * ```
 */
export function encodeFrame(
  body: Uint8Array,
  maxFrameSize: number = MAX_FRAME_SIZE,
): Uint8Array {
  if (body.length > maxFrameSize) {
    throw new RangeError(
      `Cannot write frame: length ${body.length} exceeds maximum ${maxFrameSize}`,
    );
  }
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length, false);
  out.set(body, 4);
  return out;
}

/**
 * Incremental frame decoder: feed it chunks cut anywhere, get whole bodies
 * back. The announced length is checked before the body buffer is allocated.
 *
 * @example Usage
 * ```ts
 * import { FrameDecoder } from "@katzenpost/thinclient";
 * const decoder = new FrameDecoder();
 * console.log(decoder.push(new Uint8Array([0, 0, 0]))); // []
 * console.log(decoder.push(new Uint8Array([1, 0xa0]))); // [ Uint8Array(1) [ 160 ] ]
 * ```
 */
export class FrameDecoder {
  #max: number;
  readonly #header = new Uint8Array(4);
  #headerFill = 0;
  #body: Uint8Array | null = null;
  #bodyFill = 0;

  /**
   * Creates a decoder.
   *
   * @param maxFrameSize Largest body accepted; larger announced lengths throw.
   */
  constructor(maxFrameSize: number = MAX_FRAME_SIZE) {
    this.#max = maxFrameSize;
  }

  /**
   * Largest body accepted from now on. It may change between frames (a
   * client accepts larger frames once the handshake has got far enough); a
   * body already being read keeps the limit it was checked against.
   */
  get maxFrameSize(): number {
    return this.#max;
  }

  set maxFrameSize(value: number) {
    this.#max = value;
  }

  /** Whether a frame has been started but not completed. */
  get partial(): boolean {
    return this.#headerFill > 0 || this.#body !== null;
  }

  /** A description of the partial frame, for error messages. */
  get partialDescription(): string {
    return this.#body === null
      ? `${this.#headerFill} of 4 length bytes`
      : `${this.#bodyFill} of ${this.#body.length} body bytes`;
  }

  /**
   * Adds bytes and returns every frame body they complete.
   *
   * @param chunk Any number of bytes.
   * @returns Completed bodies, in order (possibly none).
   * @throws {ProtocolError} When a length prefix exceeds the maximum.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      if (this.#body === null) {
        const take = Math.min(4 - this.#headerFill, chunk.length - pos);
        this.#header.set(chunk.subarray(pos, pos + take), this.#headerFill);
        this.#headerFill += take;
        pos += take;
        if (this.#headerFill < 4) break;
        const len = new DataView(this.#header.buffer).getUint32(0, false);
        if (len > this.#max) {
          throw new ProtocolError(
            `Cannot read frame: length ${len} exceeds maximum ${this.#max}`,
          );
        }
        this.#headerFill = 0;
        if (len === 0) {
          out.push(new Uint8Array(0));
          continue;
        }
        this.#body = new Uint8Array(len);
        this.#bodyFill = 0;
      }
      const body: Uint8Array = this.#body;
      const take = Math.min(body.length - this.#bodyFill, chunk.length - pos);
      body.set(chunk.subarray(pos, pos + take), this.#bodyFill);
      this.#bodyFill += take;
      pos += take;
      if (this.#bodyFill === body.length) {
        out.push(body);
        this.#body = null;
      }
    }
    return out;
  }
}

/**
 * Reads frame bodies from a byte stream until it ends.
 *
 * @param readable The byte stream.
 * @param maxFrameSize Largest body accepted, or the {@linkcode FrameDecoder}
 *   to use (its `maxFrameSize` may then be changed between frames).
 * @returns An async iterator of bodies.
 * @throws {ProtocolError} On an oversize length or a stream that ends mid-frame.
 *
 * @example Usage
 * ```ts
 * import { readFrames } from "@katzenpost/thinclient";
 * const stream = ReadableStream.from([new Uint8Array([0, 0, 0, 1, 0xa0])]);
 * for await (const body of readFrames(stream)) console.log(body); // Uint8Array(1) [ 160 ]
 * ```
 */
export async function* readFrames(
  readable: ReadableStream<Uint8Array>,
  maxFrameSize: number | FrameDecoder = MAX_FRAME_SIZE,
): AsyncGenerator<Uint8Array, void, undefined> {
  const decoder = maxFrameSize instanceof FrameDecoder
    ? maxFrameSize
    : new FrameDecoder(maxFrameSize);
  const reader = readable.getReader();
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const body of decoder.push(value)) yield body;
    }
  } finally {
    reader.releaseLock();
  }
  if (decoder.partial) {
    throw new ProtocolError(
      `Cannot read frame: stream ended after ${decoder.partialDescription}`,
    );
  }
}
