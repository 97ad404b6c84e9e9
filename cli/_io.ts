/**
 * Small I/O helpers of pigeonhole-cp: an ordered text/bytes writer over a
 * web `WritableStream`, stream reading, SHA-256, and file helpers.
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import { CliError, ExitCode, fsReason } from "./_errors.ts";
import { concatBytes } from "../lib/_bytes.ts";

const encoder = new TextEncoder();

/** Writes text and bytes to a `WritableStream` in order; errors are kept for `flush`. */
export class Output {
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #chain: Promise<void> = Promise.resolve();
  #error: unknown = undefined;

  /** @param stream The stream to write; it is locked until {@linkcode Output.release}. */
  constructor(stream: WritableStream<Uint8Array>) {
    this.#writer = stream.getWriter();
  }

  /** Queues text (fire and forget). */
  text(text: string): void {
    void this.bytes(encoder.encode(text));
  }

  /** Queues bytes; the promise settles when they are written. */
  bytes(bytes: Uint8Array): Promise<void> {
    const p = this.#chain.then(async () => {
      if (this.#error !== undefined) throw this.#error;
      await this.#writer.ready;
      await this.#writer.write(bytes);
    });
    this.#chain = p.catch((err) => {
      this.#error ??= err;
    });
    return p;
  }

  /**
   * Waits for everything queued.
   *
   * @throws The first write error.
   */
  async flush(): Promise<void> {
    await this.#chain;
    if (this.#error !== undefined) throw this.#error;
  }

  /** Flushes (ignoring errors) and releases the stream without closing it. */
  async release(): Promise<void> {
    await this.#chain;
    this.#writer.releaseLock();
  }
}

/** Reads a whole stream, failing with `tooLarge()` past `limit` bytes. */
export async function readAll(
  stream: ReadableStream<Uint8Array>,
  limit: number,
  tooLarge: (size: number) => Error,
): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let size = 0;
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > limit) throw tooLarge(size);
      parts.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  return concatBytes(parts);
}

/** A running SHA-256. */
export function sha256(): Hash {
  return createHash("sha256");
}

/** SHA-256 of bytes. */
export function sha256Of(...parts: Uint8Array[]): Uint8Array {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/** Standard base64 with padding (what upstream prints and parses). */
export function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/** Reads exactly `length` bytes at `offset` of an open file (fewer at EOF). */
export async function readAt(
  file: Deno.FsFile,
  offset: number,
  length: number,
): Promise<Uint8Array> {
  await file.seek(offset, Deno.SeekMode.Start);
  const buf = new Uint8Array(length);
  let at = 0;
  while (at < length) {
    const n = await file.read(buf.subarray(at));
    if (n === null) break;
    at += n;
  }
  return at === length ? buf : buf.subarray(0, at);
}

const BLOCK_SIZE = 64 * 1024;

/**
 * Reads ranges of an open file a block at a time (64 KiB): one read for many
 * boxes, each range a view of its block. A block is never reused, so a view
 * stays valid while a box is in flight.
 */
export class BlockReader {
  readonly #file: Deno.FsFile;
  #block: Uint8Array = new Uint8Array(0);
  #start = 0;

  /** @param file The open file. */
  constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  /**
   * Reads `length` bytes at `offset` (fewer at the end of the file).
   *
   * @returns A view of the block holding them.
   */
  async read(offset: number, length: number): Promise<Uint8Array> {
    const at = offset - this.#start;
    if (at < 0 || at + length > this.#block.length) {
      this.#block = await readAt(
        this.#file,
        offset,
        Math.max(BLOCK_SIZE, length),
      );
      this.#start = offset;
      return this.#block.subarray(0, Math.min(length, this.#block.length));
    }
    return this.#block.subarray(at, at + length);
  }
}

/**
 * Writes to an open file through a 64 KiB buffer: one write for many boxes.
 * Call {@linkcode BufferedWriter.flush} before syncing or closing the file.
 */
export class BufferedWriter {
  readonly #file: Deno.FsFile;
  readonly #buffer = new Uint8Array(BLOCK_SIZE);
  #used = 0;
  /** The first write error: buffered bytes are then lost, so every later call throws it. */
  #failed: { error: unknown } | null = null;

  /** @param file The open file, positioned where the bytes go. */
  constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  /** Appends bytes (written once the buffer is full). */
  async write(bytes: Uint8Array): Promise<void> {
    if (this.#failed !== null) throw this.#failed.error;
    if (this.#used + bytes.length > this.#buffer.length) await this.flush();
    if (bytes.length >= this.#buffer.length) {
      await this.#writeAll(bytes);
      return;
    }
    this.#buffer.set(bytes, this.#used);
    this.#used += bytes.length;
  }

  /** Writes what is buffered. */
  async flush(): Promise<void> {
    if (this.#failed !== null) throw this.#failed.error;
    if (this.#used === 0) return;
    const n = this.#used;
    this.#used = 0;
    await this.#writeAll(this.#buffer.subarray(0, n));
  }

  async #writeAll(bytes: Uint8Array): Promise<void> {
    try {
      await writeAllTo(this.#file, bytes);
    } catch (err) {
      this.#failed = { error: err };
      throw err;
    }
  }
}

/** Hashes a file's first `length` bytes (all when omitted) by streaming it, into `into` when given. */
export async function hashFile(
  path: string,
  length?: number,
  into?: Hash,
): Promise<{ digest: Hash; size: number }> {
  const h = into ?? sha256();
  using file = await Deno.open(path, { read: true });
  const buf = new Uint8Array(1 << 20);
  let size = 0;
  for (;;) {
    const want = length === undefined
      ? buf.length
      : Math.min(buf.length, length - size);
    if (want === 0) break;
    const n = await file.read(buf.subarray(0, want));
    if (n === null) break;
    h.update(buf.subarray(0, n));
    size += n;
  }
  return { digest: h, size };
}

/** Writes all bytes to a file at its current position. */
export async function writeAllTo(
  file: Deno.FsFile,
  bytes: Uint8Array,
): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await file.write(bytes.subarray(at));
}

/**
 * Copies a stream into a new private temporary file while hashing it.
 *
 * @returns The path, size and SHA-256.
 */
export async function spool(
  stream: ReadableStream<Uint8Array>,
  dir: string | undefined,
): Promise<{ path: string; size: number; sha256: Uint8Array }> {
  let path: string;
  try {
    path = await Deno.makeTempFile({
      prefix: "pigeonhole-cp-stdin-",
      ...(dir === undefined ? {} : { dir }),
    });
    await Deno.chmod(path, 0o600).catch(() => {});
  } catch (err) {
    throw new CliError(
      ExitCode.Input,
      `Cannot spool standard input to a temporary file: ${fsReason(err)}`,
      { cause: err },
    );
  }
  const h = sha256();
  let size = 0;
  try {
    using file = await Deno.open(path, { write: true });
    const reader = stream.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        h.update(value);
        size += value.length;
        await writeAllTo(file, value);
      }
    } finally {
      reader.releaseLock();
    }
  } catch (err) {
    await Deno.remove(path).catch(() => {});
    throw new CliError(
      ExitCode.Input,
      `Cannot read standard input: ${fsReason(err)}`,
      { cause: err },
    );
  }
  return { path, size, sha256: new Uint8Array(h.digest()) };
}
