/**
 * Optional sealing of secrets at rest with an application-supplied key
 * (WebCrypto AES-256-GCM). A sealed value is `0x01 ‖ 12-byte IV ‖ ciphertext
 * ‖ 16-byte tag`; the additional data names the kind of value, so a sealed
 * plaintext cannot be passed off as a sealed capability.
 *
 * Without a key, values are stored as they are.
 *
 * @module
 */
import { PersistentError } from "./errors.ts";

const VERSION = 0x01;
const IV_LENGTH = 12;
const TAG_LENGTH = 16;
const encoder = new TextEncoder();

/** What a sealed value holds (bound into the AES-GCM additional data). */
export type SealLabel =
  | "write_cap"
  | "read_cap"
  | "index"
  | "plaintext"
  | "check";

/** Seals and opens values; the identity when no key is set. */
export interface Sealer {
  /** Whether a key is in use. */
  readonly sealed: boolean;
  /** Seals `data`. */
  seal(label: SealLabel, data: Uint8Array): Promise<Uint8Array>;
  /**
   * Opens a sealed value; rejects with a PersistentError when it was not
   * sealed with this key and label.
   */
  open(label: SealLabel, data: Uint8Array): Promise<Uint8Array>;
}

const PLAIN: Sealer = {
  sealed: false,
  seal: (_label, data) => Promise.resolve(data),
  open: (_label, data) => Promise.resolve(data),
};

function aad(label: SealLabel): Uint8Array<ArrayBuffer> {
  return encoder.encode(`katzenpost-thinclient/persistent/v1/${label}`);
}

/**
 * Makes a sealer for a key: a 32-byte raw AES key or an AES-GCM `CryptoKey`
 * usable for encrypt and decrypt.
 *
 * @param key The key, or `undefined` for no sealing.
 * @returns The sealer.
 * @throws {TypeError} When the key is neither 32 bytes nor an AES-GCM CryptoKey.
 */
export async function makeSealer(
  key: CryptoKey | Uint8Array | undefined,
): Promise<Sealer> {
  if (key === undefined) return PLAIN;
  let cryptoKey: CryptoKey;
  if (key instanceof Uint8Array) {
    if (key.length !== 32) {
      throw new RangeError(
        `Cannot use seal key: length ${key.length} is not 32 bytes`,
      );
    }
    cryptoKey = await crypto.subtle.importKey(
      "raw",
      key.slice(),
      { name: "AES-GCM" },
      false,
      ["encrypt", "decrypt"],
    );
  } else if (
    typeof CryptoKey !== "undefined" && key instanceof CryptoKey &&
    key.algorithm.name === "AES-GCM" && key.usages.includes("encrypt") &&
    key.usages.includes("decrypt")
  ) {
    cryptoKey = key;
  } else {
    throw new TypeError(
      "Cannot use seal key: expected 32 bytes or an AES-GCM CryptoKey with encrypt and decrypt usages",
    );
  }
  return {
    sealed: true,
    async seal(label, data) {
      const iv = new Uint8Array(IV_LENGTH);
      crypto.getRandomValues(iv);
      const ct = new Uint8Array(
        await crypto.subtle.encrypt(
          { name: "AES-GCM", iv, additionalData: aad(label) },
          cryptoKey,
          data as Uint8Array<ArrayBuffer>,
        ),
      );
      const out = new Uint8Array(1 + IV_LENGTH + ct.length);
      out[0] = VERSION;
      out.set(iv, 1);
      out.set(ct, 1 + IV_LENGTH);
      return out;
    },
    async open(label, data) {
      if (data.length < 1 + IV_LENGTH + TAG_LENGTH || data[0] !== VERSION) {
        throw new PersistentError(
          `Cannot unseal the stored ${label}: it is malformed (${data.length} bytes)`,
        );
      }
      try {
        const plain = await crypto.subtle.decrypt(
          {
            name: "AES-GCM",
            iv: data.slice(1, 1 + IV_LENGTH),
            additionalData: aad(label),
          },
          cryptoKey,
          data.slice(1 + IV_LENGTH),
        );
        return new Uint8Array(plain);
      } catch (err) {
        throw new PersistentError(
          `Cannot unseal the stored ${label}: it is damaged or was sealed with another key`,
          { cause: err },
        );
      }
    },
  };
}
