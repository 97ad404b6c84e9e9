/**
 * Builds a PKI-document-like CBOR payload (docs/protocol.md#pki-document), the shape
 * `new_pki_document_event.payload` has: a PascalCase top-level map whose
 * mix, gateway and service descriptors are nested CBOR items inside byte
 * strings, replica descriptors as plain maps, maps with `uint64` keys
 * (`MixKeys`, `EnvelopeKeys`) and with 32-byte byte-string keys
 * (`SharedRandomCommit`, `SharedRandomReveal`), and float Poisson parameters.
 *
 * The bytes are written by a small encoder in this file, not by any CBOR
 * library under test, and follow what the Go encoders emit (docs/protocol.md#cbor-encoding): definite
 * lengths, shortest integer heads, no tags, keys in struct order with floats as
 * 8-byte doubles (default mode), or keys sorted length-first with floats in
 * their shortest exact width (`canonical: true`, the handshake copy).
 *
 * Everything is deterministic: the same options give the same bytes.
 *
 * @example Usage
 * ```ts
 * import { buildPkiDocument } from "./_pki_fixture.ts";
 *
 * const doc = buildPkiDocument();
 * console.log(doc.bytes.length > 150_000); // true
 * console.log(doc.expected.descriptorNames.length); // 108
 * ```
 *
 * @module
 */
import { concatBytes } from "../lib/_bytes.ts";

/** Options of {@linkcode buildPkiDocument}. */
export interface PkiFixtureOptions {
  /** Number of mix layers in `Topology`. @default {3} */
  layers?: number;
  /** Mix descriptors per layer. @default {32} */
  mixesPerLayer?: number;
  /** Entries of `GatewayNodes`. @default {6} */
  gateways?: number;
  /** Entries of `ServiceNodes`. @default {6} */
  services?: number;
  /** Entries of `StorageReplicas`. @default {8} */
  replicas?: number;
  /** Directory authorities (entries of `SharedRandomCommit`/`Reveal`). @default {5} */
  authorities?: number;
  /** Document epoch (`Epoch`). @default {262_500} */
  epoch?: number;
  /** Canonical mode (sorted keys, shortest floats) instead of default mode. @default {false} */
  canonical?: boolean;
}

/** Values a decoder of the fixture must reproduce. */
export interface PkiFixtureExpected {
  /** `Epoch` of the document and of every descriptor. */
  epoch: number;
  /** `GenesisEpoch`. */
  genesisEpoch: number;
  /** `LambdaP`, a float that needs 8 bytes. */
  lambdaP: number;
  /** `LambdaG`, a float that fits in 2 bytes (half) in canonical mode. */
  lambdaG: number;
  /** Number of `Topology` layers. */
  layers: number;
  /** `Name` of every nested descriptor: topology (layer by layer), gateways, services. */
  descriptorNames: string[];
  /** Keys of every descriptor's `MixKeys` map (the same three epochs everywhere). */
  mixKeyEpochs: number[];
  /** Length of every `LinkKey`. */
  linkKeyLength: number;
  /** Keys of `SharedRandomCommit` and `SharedRandomReveal`. */
  authorityHashes: Uint8Array[];
  /** `Name` of every replica in `StorageReplicas`. */
  replicaNames: string[];
}

/** The encoded document and what a decoder must find in it. */
export interface PkiFixture {
  /** The CBOR bytes of the document (the `payload` of the event). */
  bytes: Uint8Array;
  /** Values to check after decoding. */
  expected: PkiFixtureExpected;
}

/**
 * Builds the document. The defaults give about 200 KB (about 1.7 KB per nested
 * descriptor: a 1216-byte X-Wing link key, a 64-byte hybrid identity key,
 * three 32-byte mix keys).
 *
 * @param options Sizes and encoding mode.
 * @returns The bytes and the values a decoder must find.
 * @throws {RangeError} If a count is negative or not an integer.
 *
 * @example Usage
 * ```ts
 * import { buildPkiDocument } from "./_pki_fixture.ts";
 *
 * const small = buildPkiDocument({ mixesPerLayer: 1, gateways: 1, services: 1 });
 * console.log(small.expected.descriptorNames); // [ "mix-0-0", "mix-1-0", "mix-2-0", "gateway-0", "service-0" ]
 * ```
 */
export function buildPkiDocument(options: PkiFixtureOptions = {}): PkiFixture {
  const layers = _count(options.layers ?? 3, "layers");
  const mixesPerLayer = _count(options.mixesPerLayer ?? 32, "mixesPerLayer");
  const gateways = _count(options.gateways ?? 6, "gateways");
  const services = _count(options.services ?? 6, "services");
  const replicas = _count(options.replicas ?? 8, "replicas");
  const authorities = _count(options.authorities ?? 5, "authorities");
  const epoch = _count(options.epoch ?? 262_500, "epoch");
  const canonical = options.canonical ?? false;
  const rand = new _Bytes(epoch);
  const mixKeyEpochs = [epoch - 1, epoch, epoch + 1];
  const linkKeyLength = 1216;
  const names: string[] = [];

  const descriptor = (name: string, kind: "mix" | "gateway" | "service") => {
    names.push(name);
    const kaetzchen = kind === "service"
      ? _map([
        ["echo", _map([["endpoint", "+echo"]])],
        ["courier", _map([["endpoint", "+courier"]])],
      ])
      : null;
    const advertized = kind === "service"
      ? _map([["courier", _map([["linkPublicKey", rand.next(1216)]])]])
      : null;
    const body = _map([
      ["Name", name],
      ["Epoch", epoch],
      ["IdentityKey", rand.next(64)],
      ["LinkKey", rand.next(linkKeyLength)],
      ["MixKeys", _map(mixKeyEpochs.map((e) => [e, rand.next(32)]))],
      [
        "Addresses",
        _map([["tcp", [
          `tcp://10.0.${names.length >> 8}.${names.length & 255}:30000`,
        ]], [
          "quic",
          [`quic://10.0.${names.length >> 8}.${names.length & 255}:30001`],
        ]]),
      ],
      ["Kaetzchen", kaetzchen],
      ["KaetzchenAdvertizedData", advertized],
      ["IsGatewayNode", kind === "gateway"],
      ["IsServiceNode", kind === "service"],
      ["LoadWeight", 0],
      ["AuthenticationType", "Ed25519 Sphincs+"],
      ["Version", "v1"],
    ]);
    // Descriptors are always canonical CBOR inside their byte strings (docs/protocol.md#pki-document).
    return _encode(body, true);
  };

  const topology: Uint8Array[][] = [];
  for (let l = 0; l < layers; l++) {
    const layer: Uint8Array[] = [];
    for (let m = 0; m < mixesPerLayer; m++) {
      layer.push(descriptor(`mix-${l}-${m}`, "mix"));
    }
    topology.push(layer);
  }
  const gatewayNodes: Uint8Array[] = [];
  for (let g = 0; g < gateways; g++) {
    gatewayNodes.push(descriptor(`gateway-${g}`, "gateway"));
  }
  const serviceNodes: Uint8Array[] = [];
  for (let s = 0; s < services; s++) {
    serviceNodes.push(descriptor(`service-${s}`, "service"));
  }
  const replicaNames: string[] = [];
  const storageReplicas: _Value[] = [];
  for (let r = 0; r < replicas; r++) {
    replicaNames.push(`replica-${r}`);
    storageReplicas.push(_map([
      ["Name", `replica-${r}`],
      ["ReplicaID", r],
      ["Epoch", epoch],
      ["IdentityKey", rand.next(64)],
      ["LinkKey", rand.next(linkKeyLength)],
      [
        "EnvelopeKeys",
        _map([[epoch >> 3, rand.next(160)], [
          (epoch >> 3) + 1,
          rand.next(160),
        ]]),
      ],
      ["Addresses", _map([["tcp", [`tcp://10.1.0.${r}:31000`]]])],
    ]));
  }
  const authorityHashes: Uint8Array[] = [];
  for (let a = 0; a < authorities; a++) authorityHashes.push(rand.next(32));
  const lambdaP = 0.00025;
  const lambdaG = 0.125;

  const doc = _map([
    ["Epoch", epoch],
    ["GenesisEpoch", epoch - 500],
    ["SendRatePerMinute", 0],
    ["Mu", new _Float(0.005)],
    ["MuMaxDelay", 90_000],
    ["LambdaP", new _Float(lambdaP)],
    ["LambdaPMaxDelay", 30_000],
    ["LambdaL", new _Float(0.0005)],
    ["LambdaLMaxDelay", 30_000],
    ["LambdaD", new _Float(0.0005)],
    ["LambdaDMaxDelay", 30_000],
    ["LambdaM", new _Float(0.2)],
    ["LambdaG", new _Float(lambdaG)],
    ["LambdaMMaxDelay", 100],
    ["LambdaGMaxDelay", 100],
    ["LambdaR", new _Float(0.0001)],
    ["LambdaRMaxDelay", 30_000],
    ["Topology", topology],
    ["GatewayNodes", gatewayNodes],
    ["ServiceNodes", serviceNodes],
    ["StorageReplicas", storageReplicas],
    ["ConfiguredReplicaIDs", Uint8Array.from(replicaNames, (_, i) => i)],
    ["ConfiguredReplicaIdentityKeys", replicaNames.map(() => rand.next(64))],
    [
      "SharedRandomCommit",
      _map(authorityHashes.map((h) => [h, rand.next(40)])),
    ],
    [
      "SharedRandomReveal",
      _map(authorityHashes.map((h) => [h, rand.next(40)])),
    ],
    ["SharedRandomValue", rand.next(32)],
    ["PriorSharedRandom", [rand.next(32), rand.next(32)]],
    ["SphinxGeometryHash", rand.next(32)],
    ["PKISignatureScheme", "Ed25519 Sphincs+"],
    ["Version", "v1"],
  ]);

  return {
    bytes: _encode(doc, canonical),
    expected: {
      epoch,
      genesisEpoch: epoch - 500,
      lambdaP,
      lambdaG,
      layers,
      descriptorNames: names,
      mixKeyEpochs,
      linkKeyLength,
      authorityHashes,
      replicaNames,
    },
  };
}

// ---------------------------------------------------------------------------
// A minimal Go-like CBOR writer (unsigned ints, bytes, text, arrays, ordered
// maps, floats, bools, null). Not a general encoder.

type _Value =
  | null
  | boolean
  | number
  | string
  | Uint8Array
  | _Float
  | _Map
  | _Value[];

class _Float {
  constructor(readonly value: number) {}
}

class _Map {
  constructor(readonly entries: [_Value, _Value][]) {}
}

function _map(entries: [_Value, _Value][]): _Map {
  return new _Map(entries);
}

function _count(n: number, what: string): number {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(
      `Cannot build PKI fixture: "${what}" is "${n}", expected a non-negative integer`,
    );
  }
  return n;
}

/** Deterministic pseudo-random bytes (xorshift32), so fixtures are stable. */
class _Bytes {
  #state: number;
  constructor(seed: number) {
    this.#state = (seed ^ 0x9e3779b9) >>> 0 || 1;
  }
  next(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let x = this.#state;
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      out[i] = x & 0xff;
    }
    this.#state = x;
    return out;
  }
}

const _utf8 = new TextEncoder();

function _encode(value: _Value, canonical: boolean): Uint8Array {
  const parts: Uint8Array[] = [];
  _write(value, canonical, parts);
  return concatBytes(parts);
}

function _head(major: number, n: number): Uint8Array {
  const m = major << 5;
  if (n < 24) return Uint8Array.of(m | n);
  if (n < 0x100) return Uint8Array.of(m | 24, n);
  if (n < 0x10000) return Uint8Array.of(m | 25, n >> 8, n & 0xff);
  if (n < 0x100000000) {
    return Uint8Array.of(
      m | 26,
      n >>> 24,
      (n >> 16) & 0xff,
      (n >> 8) & 0xff,
      n & 0xff,
    );
  }
  const out = new Uint8Array(9);
  out[0] = m | 27;
  new DataView(out.buffer).setBigUint64(1, BigInt(n));
  return out;
}

function _write(value: _Value, canonical: boolean, parts: Uint8Array[]): void {
  if (value === null) {
    parts.push(Uint8Array.of(0xf6));
  } else if (typeof value === "boolean") {
    parts.push(Uint8Array.of(value ? 0xf5 : 0xf4));
  } else if (typeof value === "number") {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(
        `Cannot encode fixture value "${value}": expected an unsigned integer`,
      );
    }
    parts.push(_head(0, value));
  } else if (typeof value === "string") {
    const bytes = _utf8.encode(value);
    parts.push(_head(3, bytes.length), bytes);
  } else if (value instanceof Uint8Array) {
    parts.push(_head(2, value.length), value);
  } else if (value instanceof _Float) {
    parts.push(_float(value.value, canonical));
  } else if (value instanceof _Map) {
    let entries = value.entries.map(([k, v]) =>
      [_encode(k, canonical), v] as const
    );
    if (canonical) {
      entries = entries.sort((a, b) => _compareLengthFirst(a[0], b[0]));
    }
    parts.push(_head(5, entries.length));
    for (const [k, v] of entries) {
      parts.push(k);
      _write(v, canonical, parts);
    }
  } else {
    parts.push(_head(4, value.length));
    for (const item of value) _write(item, canonical, parts);
  }
}

function _compareLengthFirst(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return a.length - b.length;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return a[i]! - b[i]!;
  }
  return 0;
}

function _float(v: number, canonical: boolean): Uint8Array {
  if (canonical) {
    const half = _toHalf(v);
    if (half !== undefined) return Uint8Array.of(0xf9, half >> 8, half & 0xff);
    if (Math.fround(v) === v) {
      const out = new Uint8Array(5);
      out[0] = 0xfa;
      new DataView(out.buffer).setFloat32(1, v);
      return out;
    }
  }
  const out = new Uint8Array(9);
  out[0] = 0xfb;
  new DataView(out.buffer).setFloat64(1, v);
  return out;
}

/** Half-precision bits of `v` if it is a normal half exactly, else undefined. */
function _toHalf(v: number): number | undefined {
  if (v === 0) return Object.is(v, -0) ? 0x8000 : 0;
  const sign = v < 0 ? 0x8000 : 0;
  const a = Math.abs(v);
  const e = Math.floor(Math.log2(a));
  if (e < -14 || e > 15) return undefined;
  const mantissa = (a / 2 ** e - 1) * 1024;
  if (!Number.isInteger(mantissa) || (1 + mantissa / 1024) * 2 ** e !== a) {
    return undefined;
  }
  return sign | ((e + 15) << 10) | mantissa;
}
