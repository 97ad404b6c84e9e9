/**
 * Pigeonhole capabilities and box indices as small typed wrappers that check
 * their length when built (a wrong length makes the daemon drop the
 * connection), plus a text form of a read capability with a checksum, for
 * sharing it with a peer.
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
