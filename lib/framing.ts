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
  out.set(body, 4);
  return _sealFrame(out, maxFrameSize);
}

/**
 * Fills in the length prefix of a frame built with 4 bytes of headroom
 * before its body (see `encodeCbor`'s `headroom`).
 *
 * @throws {RangeError} When the body exceeds `maxFrameSize`.
 */
export function _sealFrame(
  frame: Uint8Array,
  maxFrameSize: number = MAX_FRAME_SIZE,
): Uint8Array {
  const length = frame.length - 4;
  if (length > maxFrameSize) {
    throw new RangeError(
      `Cannot write frame: length ${length} exceeds maximum ${maxFrameSize}`,
    );
  }
  frame[0] = length >>> 24;
  frame[1] = (length >>> 16) & 0xff;
  frame[2] = (length >>> 8) & 0xff;
  frame[3] = length & 0xff;
  return frame;
}

/** Set by {@linkcode FrameDecoder}'s static block: its push without copies. */
let pushViews: (decoder: FrameDecoder, chunk: Uint8Array) => Uint8Array[];

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
    return this.#push(chunk, true);
  }

  static {
    pushViews = (decoder, chunk) => decoder.#push(chunk, false);
  }

  /**
   * `copy` false: a body that lies whole inside `chunk` is returned as a
   * view of it (no allocation); only bodies cut across chunks are copied.
   */
  #push(chunk: Uint8Array, copy: boolean): Uint8Array[] {
    const out: Uint8Array[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      if (this.#body === null) {
        let len: number;
        if (this.#headerFill === 0 && chunk.length - pos >= 4) {
          len = readLength(chunk, pos);
          pos += 4;
        } else {
          const take = Math.min(4 - this.#headerFill, chunk.length - pos);
          this.#header.set(chunk.subarray(pos, pos + take), this.#headerFill);
          this.#headerFill += take;
          pos += take;
          if (this.#headerFill < 4) break;
          len = readLength(this.#header, 0);
        }
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
        if (!copy && chunk.length - pos >= len) {
          out.push(chunk.subarray(pos, pos + len));
          pos += len;
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

function readLength(bytes: Uint8Array, at: number): number {
  return bytes[at]! * 0x1000000 +
    ((bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!);
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
  const frames = new _FrameReader(
    _streamSource(readable),
    maxFrameSize,
    true,
  );
  try {
    for (;;) {
      const body = frames.take();
      if (body !== undefined) yield body;
      else if (!(await frames.fill())) return;
    }
  } finally {
    frames.release();
  }
}

/** Where a {@linkcode _FrameReader} gets its bytes. */
export interface _ChunkSource {
  /** The next chunk, or `null` at the end. */
  read(): Promise<Uint8Array | null>;
  /** Lets go of the underlying stream, if any. */
  release(): void;
}

/** A {@linkcode _ChunkSource} reading a stream (locked until released). */
export function _streamSource(
  readable: ReadableStream<Uint8Array>,
): _ChunkSource {
  const reader = readable.getReader();
  return {
    read: async () => {
      const { value, done } = await reader.read();
      return done ? null : value;
    },
    release: () => reader.releaseLock(),
  };
}

/**
 * Frame bodies from a chunk source, without an async generator's promise per
 * frame: {@linkcode _FrameReader.take} hands out the bodies already read and
 * {@linkcode _FrameReader.fill} reads the next chunk.
 */
export class _FrameReader {
  readonly #decoder: FrameDecoder;
  readonly #source: _ChunkSource;
  readonly #copy: boolean;
  #bodies: Uint8Array[] = [];
  #next = 0;

  /**
   * @param source Where the bytes come from; released by {@linkcode _FrameReader.release}.
   * @param maxFrameSize Largest body accepted, or the {@linkcode FrameDecoder}
   *   to use (its `maxFrameSize` may then be changed between frames).
   * @param copy `false`: a body inside one chunk is a view of that chunk,
   *   for a caller that is done with each body before it reads again.
   */
  constructor(
    source: _ChunkSource,
    maxFrameSize: number | FrameDecoder,
    copy: boolean,
  ) {
    this.#decoder = maxFrameSize instanceof FrameDecoder
      ? maxFrameSize
      : new FrameDecoder(maxFrameSize);
    this.#source = source;
    this.#copy = copy;
  }

  /** The next body already read, or `undefined` when a chunk must be read first. */
  take(): Uint8Array | undefined {
    if (this.#next === this.#bodies.length) return undefined;
    const body = this.#bodies[this.#next]!;
    this.#bodies[this.#next++] = EMPTY;
    return body;
  }

  /**
   * Reads one chunk into the reader.
   *
   * @returns `false` when the stream has ended.
   * @throws {ProtocolError} On an oversize length or a stream that ends mid-frame.
   */
  async fill(): Promise<boolean> {
    const value = await this.#source.read();
    if (value === null) {
      if (this.#decoder.partial) {
        throw new ProtocolError(
          `Cannot read frame: stream ended after ${this.#decoder.partialDescription}`,
        );
      }
      return false;
    }
    const bodies = this.#copy
      ? this.#decoder.push(value)
      : pushViews(this.#decoder, value);
    if (bodies.length > 0) {
      this.#bodies = bodies;
      this.#next = 0;
    }
    return true;
  }

  /**
   * The next body, reading chunks as needed.
   *
   * @returns The body, or `null` at the end of the stream.
   */
  async next(): Promise<Uint8Array | null> {
    for (;;) {
      const body = this.take();
      if (body !== undefined) return body;
      if (!(await this.fill())) return null;
    }
  }

  /** Releases the source. */
  release(): void {
    this.#source.release();
  }
}

const EMPTY = new Uint8Array(0);

/** Largest batch of queued frames joined into one write. */
const BATCH_BYTES = 64 * 1024;

/**
 * Writes frames in order, joining those queued while a write is under way
 * into one write, so that pipelined requests cost one system call (and one
 * wake-up of the daemon) per batch instead of one per frame.
 */
export class _FrameWriter {
  readonly #write: (chunk: Uint8Array) => Promise<void>;
  #queue: Uint8Array[] = [];
  #flushing: Promise<void> | null = null;

  /** @param write Writes one chunk to the connection. */
  constructor(write: (chunk: Uint8Array) => Promise<void>) {
    this.#write = write;
  }

  /**
   * Queues a frame.
   *
   * @returns When the frame has been written (with the frames batched with it).
   * @throws The writer's error, for every frame queued when a write failed.
   */
  write(frame: Uint8Array): Promise<void> {
    this.#queue.push(frame);
    if (this.#flushing === null) {
      this.#flushing = this.#flush();
      // Callers that do not wait (fire and forget) must not leave it unhandled.
      this.#flushing.catch(() => {});
    }
    return this.#flushing;
  }

  /** Resolves when nothing is queued or being written; never rejects. */
  idle(): Promise<void> {
    return this.#flushing === null
      ? Promise.resolve()
      : this.#flushing.catch(() => {});
  }

  async #flush(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        await this.#write(this.#batch());
      }
    } catch (err) {
      this.#queue = [];
      throw err;
    } finally {
      this.#flushing = null;
    }
  }

  /** Takes the next chunk to write off the queue: one frame, or several joined. */
  #batch(): Uint8Array {
    const queue = this.#queue;
    let n = 0;
    let size = 0;
    while (
      n < queue.length && (n === 0 || size + queue[n]!.length <= BATCH_BYTES)
    ) {
      size += queue[n]!.length;
      n++;
    }
    if (n === queue.length) this.#queue = [];
    else this.#queue = queue.slice(n);
    if (n === 1) return queue[0]!;
    const out = new Uint8Array(size);
    let at = 0;
    for (let i = 0; i < n; i++) {
      out.set(queue[i]!, at);
      at += queue[i]!.length;
    }
    return out;
  }
}
