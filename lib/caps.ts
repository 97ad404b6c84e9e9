/**
 * Pigeonhole capabilities and box indices as small typed wrappers that check
 * their length when built (a wrong length makes the daemon drop the
 * connection), plus text forms with a checksum for sharing with a peer: a
 * read capability alone (`kprc1…`), or a read capability with the index a
 * reader starts at (the share text, `kpch1…`).
 *
 * @module
 */
import { bytesEqual, fromBase64Url, toBase64Url } from "./_bytes.ts";
import { blake2b256 } from "./hash.ts";

/** Set while {@linkcode _adopt} builds a wrapper around bytes it owns. */
let adopting = false;

function check(what: string, bytes: Uint8Array, length: number): Uint8Array {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(`Cannot build ${what}: expected a Uint8Array`);
  }
  if (bytes.length !== length) {
    throw new RangeError(
      `Cannot build ${what}: length ${bytes.length} is not ${length} bytes`,
    );
  }
  return adopting ? bytes : bytes.slice();
}

/**
 * Builds a wrapper around bytes nobody else holds (a field of a reply just
 * decoded), without the defensive copy the public constructors make.
 */
export function _adopt<T>(
  type: new (bytes: Uint8Array) => T,
  bytes: Uint8Array,
): T {
  adopting = true;
  try {
    return new type(bytes);
  } finally {
    adopting = false;
  }
}

/**
 * The index of one box in a BACAP stream (104 bytes, opaque). Ask the daemon
 * for successors (`nextMessageBoxIndex`); do not compute them.
 *
 * @example Usage
 * ```ts
 * import { MessageBoxIndex } from "@katzenpost/thinclient";
 * const index = new MessageBoxIndex(new Uint8Array(104));
 * console.log(index.bytes.length); // 104
 * ```
 */
export class MessageBoxIndex {
  /** Length in bytes. */
  static readonly LENGTH: number = 104;
  /** The binary form sent to the daemon. */
  readonly bytes: Uint8Array;
  /**
   * Wraps the binary form.
   *
   * @param bytes Exactly 104 bytes.
   * @throws {RangeError} On any other length.
   */
  constructor(bytes: Uint8Array) {
    this.bytes = check("MessageBoxIndex", bytes, MessageBoxIndex.LENGTH);
  }
  /**
   * Whether two indices are the same.
   *
   * @param other Another index.
   * @returns `true` when the bytes are equal.
   */
  equals(other: MessageBoxIndex): boolean {
    return bytesEqual(this.bytes, other.bytes);
  }
  /** Keeps the key material out of logs. */
  toString(): string {
    return "MessageBoxIndex(<secret>)";
  }
  /** Keeps the key material out of JSON. */
  toJSON(): string {
    return "MessageBoxIndex(<secret>)";
  }
}

/**
 * The write capability of a BACAP stream (168 bytes). Secret: whoever holds it
 * can write the stream. Never log it.
 *
 * @example Usage
 * ```ts ignore
 * const { writeCap } = await client.newKeypair();
 * await Deno.writeFile("channel.wcap", writeCap.bytes, { mode: 0o600 });
 * ```
 */
export class WriteCap {
  /** Length in bytes. */
  static readonly LENGTH: number = 168;
  /** The binary form sent to the daemon. */
  readonly bytes: Uint8Array;
  /**
   * Wraps the binary form.
   *
   * @param bytes Exactly 168 bytes.
   * @throws {RangeError} On any other length.
   */
  constructor(bytes: Uint8Array) {
    this.bytes = check("WriteCap", bytes, WriteCap.LENGTH);
  }
  /**
   * BLAKE2b-256 of the capability: the key that cancels a copy command.
   *
   * @returns The 32-byte hash.
   */
  hash(): Uint8Array {
    return blake2b256(this.bytes);
  }
  /** Keeps the secret out of logs. */
  toString(): string {
    return "WriteCap(<secret>)";
  }
  /** Keeps the secret out of JSON. */
  toJSON(): string {
    return "WriteCap(<secret>)";
  }
}

const TEXT_PREFIX = "kprc1";

/**
 * The read capability of a BACAP stream (136 bytes). Give it to the readers
 * of a channel; it cannot write.
 *
 * @example Usage
 * ```ts
 * import { ReadCap } from "@katzenpost/thinclient";
 * const cap = new ReadCap(new Uint8Array(136).fill(7));
 * const text = cap.toText(); // "kprc1…", safe to paste into a chat
 * console.log(ReadCap.fromText(text).bytes[0]); // 7
 * ```
 */
export class ReadCap {
  /** Length in bytes. */
  static readonly LENGTH: number = 136;
  /** The binary form sent to the daemon. */
  readonly bytes: Uint8Array;
  /**
   * Wraps the binary form.
   *
   * @param bytes Exactly 136 bytes.
   * @throws {RangeError} On any other length.
   */
  constructor(bytes: Uint8Array) {
    this.bytes = check("ReadCap", bytes, ReadCap.LENGTH);
  }

  /**
   * Text form for sharing: `kprc1` + base64url(cap ‖ first 4 bytes of
   * BLAKE2b-256(cap)). A typo fails the checksum instead of producing a
   * capability for nobody.
   *
   * @returns The text.
   */
  toText(): string {
    const sum = blake2b256(this.bytes).subarray(0, 4);
    const all = new Uint8Array(this.bytes.length + 4);
    all.set(this.bytes);
    all.set(sum, this.bytes.length);
    return TEXT_PREFIX + toBase64Url(all);
  }

  /**
   * Parses the text form made by {@linkcode ReadCap.toText}. Surrounding
   * white space is ignored.
   *
   * @param text The text.
   * @returns The capability.
   * @throws {TypeError} When the text is not a read capability or its checksum fails.
   */
  static fromText(text: string): ReadCap {
    const t = text.trim();
    if (!t.startsWith(TEXT_PREFIX)) {
      throw new TypeError(
        `Cannot parse read capability: text does not start with '${TEXT_PREFIX}'`,
      );
    }
    const raw = fromBase64Url(t.slice(TEXT_PREFIX.length));
    if (raw === null || raw.length !== ReadCap.LENGTH + 4) {
      throw new TypeError(
        `Cannot parse read capability: expected ${
          ReadCap.LENGTH + 4
        } base64url bytes after '${TEXT_PREFIX}'`,
      );
    }
    const cap = raw.subarray(0, ReadCap.LENGTH);
    if (
      !bytesEqual(blake2b256(cap).subarray(0, 4), raw.subarray(ReadCap.LENGTH))
    ) {
      throw new TypeError(
        "Cannot parse read capability: checksum mismatch (text damaged?)",
      );
    }
    return new ReadCap(cap);
  }
}

/**
 * What a reader needs to follow a channel: its read capability and first box.
 *
 * @example Usage
 * ```ts
 * import { MessageBoxIndex, ReadCap, type SharedChannel } from "@katzenpost/thinclient";
 * const shared: SharedChannel = {
 *   readCap: new ReadCap(new Uint8Array(136)),
 *   startIndex: new MessageBoxIndex(new Uint8Array(104)),
 * };
 * console.log(shared.readCap.bytes.length); // 136
 * ```
 */
export interface SharedChannel {
  /** The channel's read capability. */
  readCap: ReadCap;
  /** The box the reader starts at. */
  startIndex: MessageBoxIndex;
}

const SHARE_PREFIX = "kpch1";
const SHARE_BODY = ReadCap.LENGTH + MessageBoxIndex.LENGTH;

/**
 * Encodes a read capability and a start index as text to give to a reader:
 * `kpch1` + base64url(read cap ‖ start index ‖ first 4 bytes of
 * BLAKE2b-256(read cap ‖ start index)). The text is a secret for readers:
 * whoever has it can read the channel from the start index on.
 *
 * @param shared The read capability and start index.
 * @returns The text.
 *
 * @example Usage
 * ```ts
 * import { MessageBoxIndex, ReadCap } from "@katzenpost/thinclient";
 * import { formatShareText, parseShareText } from "@katzenpost/thinclient";
 * const text = formatShareText({
 *   readCap: new ReadCap(new Uint8Array(136).fill(1)),
 *   startIndex: new MessageBoxIndex(new Uint8Array(104).fill(2)),
 * });
 * console.log(parseShareText(text).startIndex.bytes[0]); // 2
 * ```
 */
export function formatShareText(shared: SharedChannel): string {
  if (
    !(shared.readCap instanceof ReadCap) ||
    !(shared.startIndex instanceof MessageBoxIndex)
  ) {
    throw new TypeError(
      "Cannot format share text: expected a ReadCap and a MessageBoxIndex",
    );
  }
  const all = new Uint8Array(SHARE_BODY + 4);
  all.set(shared.readCap.bytes);
  all.set(shared.startIndex.bytes, ReadCap.LENGTH);
  all.set(blake2b256(all.subarray(0, SHARE_BODY)).subarray(0, 4), SHARE_BODY);
  return SHARE_PREFIX + toBase64Url(all);
}

/**
 * Parses the text made by {@linkcode formatShareText} (for example by
 * `Channel.shareReadCap()`). Surrounding white space is ignored.
 *
 * @param text The share text.
 * @returns The read capability and start index.
 * @throws {TypeError} When the text is not a share text or its checksum fails.
 *
 * @example Usage
 * ```ts
 * import { parseShareText } from "@katzenpost/thinclient";
 * try {
 *   parseShareText("kpch1AAAA");
 * } catch (err) {
 *   console.log((err as Error).name); // "TypeError"
 * }
 * ```
 */
export function parseShareText(text: string): SharedChannel {
  if (typeof text !== "string") {
    throw new TypeError("Cannot parse share text: expected a string");
  }
  const t = text.trim();
  if (!t.startsWith(SHARE_PREFIX)) {
    throw new TypeError(
      `Cannot parse share text: text does not start with '${SHARE_PREFIX}'`,
    );
  }
  const raw = fromBase64Url(t.slice(SHARE_PREFIX.length));
  if (raw === null || raw.length !== SHARE_BODY + 4) {
    throw new TypeError(
      `Cannot parse share text: expected ${
        SHARE_BODY + 4
      } base64url bytes after '${SHARE_PREFIX}'`,
    );
  }
  const body = raw.subarray(0, SHARE_BODY);
  if (!bytesEqual(blake2b256(body).subarray(0, 4), raw.subarray(SHARE_BODY))) {
    throw new TypeError(
      "Cannot parse share text: checksum mismatch (text damaged?)",
    );
  }
  return {
    readCap: new ReadCap(body.subarray(0, ReadCap.LENGTH)),
    startIndex: new MessageBoxIndex(body.subarray(ReadCap.LENGTH)),
  };
}
