/**
 * Realistic fake PKI material for the fake daemon: geometries, consensus
 * documents (with nested CBOR node descriptors and integer/byte-string keyed
 * maps), the signed certificate wrapper, and directory authorities.
 *
 * @module
 */
import { encodeCbor } from "../lib/cbor.ts";
import { blake2b256 } from "./_blake2b.ts";
import { encodeOrdered } from "./_wire.ts";
import { utf8 } from "../lib/_bytes.ts";

/**
 * The Sphinx geometry as it travels in `connection_status_event`
 * (PascalCase keys, docs/protocol.md#geometries).
 *
 * @example Usage
 * ```ts
 * import { DEFAULT_SPHINX_GEOMETRY, type WireSphinxGeometry } from "@katzenpost/thinclient/testing";
 * const geometry: WireSphinxGeometry = { ...DEFAULT_SPHINX_GEOMETRY, UserForwardPayloadLength: 3000 };
 * ```
 */
export interface WireSphinxGeometry {
  /** Total Sphinx packet length. */
  PacketLength: number;
  /** Hops in a path. */
  NrHops: number;
  /** Sphinx header length. */
  HeaderLength: number;
  /** Routing-info part of the header. */
  RoutingInfoLength: number;
  /** Per-hop routing info. */
  PerHopRoutingInfoLength: number;
  /** Length of a SURB. */
  SURBLength: number;
  /** Plaintext header length. */
  SphinxPlaintextHeaderLength: number;
  /** Payload tag length. */
  PayloadTagLength: number;
  /** Forward payload length. */
  ForwardPayloadLength: number;
  /** Largest `send_message` payload; echo replies are padded to it. */
  UserForwardPayloadLength: number;
  /** Next-node hop length. */
  NextNodeHopLength: number;
  /** SPRP key material length. */
  SPRPKeyMaterialLength: number;
  /** NIKE name (empty when a KEM is used). */
  NIKEName: string;
  /** KEM name (empty when a NIKE is used). */
  KEMName: string;
}

/**
 * The Pigeonhole geometry as it travels in `connection_status_event`
 * (PascalCase keys, docs/protocol.md#geometries).
 *
 * @example Usage
 * ```ts
 * import { DEFAULT_PIGEONHOLE_GEOMETRY, type WirePigeonholeGeometry } from "@katzenpost/thinclient/testing";
 * const geometry: WirePigeonholeGeometry = { ...DEFAULT_PIGEONHOLE_GEOMETRY, MaxPlaintextPayloadLength: 100 };
 * ```
 */
export interface WirePigeonholeGeometry {
  /** Largest plaintext per box, and largest copy-stream element. */
  MaxPlaintextPayloadLength: number;
  /** Wire size of a read query. */
  CourierQueryReadLength: number;
  /** Wire size of a write query. */
  CourierQueryWriteLength: number;
  /** Wire size of a courier reply to a read. */
  CourierQueryReplyReadLength: number;
  /** Wire size of a courier reply to a write. */
  CourierQueryReplyWriteLength: number;
  /** MKEM NIKE of the replicas. */
  NIKEName: string;
  /** Signature scheme of the boxes. */
  SignatureSchemeName: string;
}

/**
 * The Sphinx geometry of upstream's docker test network (docs/protocol.md#geometries)
 * (x25519, 5 hops, 2000-byte user payload).
 *
 * @example Usage
 * ```ts
 * import { DEFAULT_SPHINX_GEOMETRY } from "@katzenpost/thinclient/testing";
 * console.log(DEFAULT_SPHINX_GEOMETRY.UserForwardPayloadLength); // 2000
 * ```
 */
export const DEFAULT_SPHINX_GEOMETRY: Readonly<WireSphinxGeometry> = Object
  .freeze({
    // Keys in Go declaration order: orderedSphinxGeometry follows it.
    PacketLength: 3082,
    NrHops: 5,
    HeaderLength: 476,
    RoutingInfoLength: 410,
    PerHopRoutingInfoLength: 82,
    SURBLength: 572,
    SphinxPlaintextHeaderLength: 2,
    PayloadTagLength: 32,
    ForwardPayloadLength: 2574,
    UserForwardPayloadLength: 2000,
    NextNodeHopLength: 65,
    SPRPKeyMaterialLength: 64,
    NIKEName: "x25519",
    KEMName: "",
  });

/**
 * The Pigeonhole geometry derived from {@linkcode DEFAULT_SPHINX_GEOMETRY}
 * (1549 / 2000 / 2000 / 1718 / 1718, docs/protocol.md#geometries).
 *
 * @example Usage
 * ```ts
 * import { DEFAULT_PIGEONHOLE_GEOMETRY } from "@katzenpost/thinclient/testing";
 * console.log(DEFAULT_PIGEONHOLE_GEOMETRY.MaxPlaintextPayloadLength); // 1549
 * ```
 */
export const DEFAULT_PIGEONHOLE_GEOMETRY: Readonly<WirePigeonholeGeometry> =
  Object.freeze({
    // Keys in Go declaration order: orderedPigeonholeGeometry follows it.
    MaxPlaintextPayloadLength: 1549,
    CourierQueryReadLength: 2000,
    CourierQueryWriteLength: 2000,
    CourierQueryReplyReadLength: 1718,
    CourierQueryReplyWriteLength: 1718,
    NIKEName: "CTIDH1024-X25519",
    SignatureSchemeName: "Ed25519",
  });

/**
 * Copies a geometry with its keys in Go declaration order, which is the key
 * order of the default geometries above.
 */
function ordered<T extends object>(
  g: Readonly<T>,
  template: Readonly<T>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(template) as (keyof T & string)[]) {
    out[key] = g[key];
  }
  return out;
}

/** Orders a Sphinx geometry's keys as Go declares them. */
export function orderedSphinxGeometry(
  g: Readonly<WireSphinxGeometry>,
): Record<string, unknown> {
  return ordered(g, DEFAULT_SPHINX_GEOMETRY);
}

/** Orders a Pigeonhole geometry's keys as Go declares them. */
export function orderedPigeonholeGeometry(
  g: Readonly<WirePigeonholeGeometry>,
): Record<string, unknown> {
  return ordered(g, DEFAULT_PIGEONHOLE_GEOMETRY);
}

/**
 * One voting authority as returned by `get_directory_authorities_reply`
 * (wire keys, docs/protocol.md#requests-and-replies).
 *
 * @example Usage
 * ```ts
 * import { buildDirectoryAuthorities } from "@katzenpost/thinclient/testing";
 * const [first] = buildDirectoryAuthorities();
 * console.log(first?.identifier); // "auth1"
 * ```
 */
export interface FakeDirectoryAuthority {
  /** Authority name. */
  "identifier": string;
  /** Signature scheme of its identity key. */
  "pki_signature_scheme": string;
  /** KEM scheme of its link key. */
  "wire_kem_scheme": string;
  /** Its addresses (URLs). */
  "addresses": string[];
  /** Identity public key in PEM (may be empty). */
  "identity_public_key_pem": string;
  /** Link public key in PEM (may be empty). */
  "link_public_key_pem": string;
  /** BLAKE2b-256 of the identity public key (32 bytes). */
  "identity_key_hash": Uint8Array;
}

function derive(label: string, ...parts: (string | number)[]): Uint8Array {
  return blake2b256(utf8(`fake-pki/${label}/${parts.join("/")}`));
}

function pem(kind: string, key: Uint8Array): string {
  const b64 = btoa(String.fromCharCode(...key));
  return `-----BEGIN ${kind}-----\n${b64}\n-----END ${kind}-----\n`;
}

/**
 * Builds a deterministic set of fake directory authorities. Their identity
 * keys sign the certificates made by {@linkcode buildPkiDocument} (with the
 * same `seed`), so `identity_key_hash` matches the certificate's `Signatures`
 * keys.
 *
 * @param count How many authorities (default 3).
 * @param seed Label that makes the keys differ between sets (default "fake").
 * @returns The authorities, with wire keys.
 *
 * @example Usage
 * ```ts
 * import { buildDirectoryAuthorities } from "@katzenpost/thinclient/testing";
 * console.log(buildDirectoryAuthorities(2).length); // 2
 * ```
 */
export function buildDirectoryAuthorities(
  count = 3,
  seed = "fake",
): FakeDirectoryAuthority[] {
  const out: FakeDirectoryAuthority[] = [];
  for (let i = 1; i <= count; i++) {
    const identity = derive("authority-identity", seed, i);
    const link = derive("authority-link", seed, i);
    out.push({
      "identifier": `auth${i}`,
      "pki_signature_scheme": "Ed25519",
      "wire_kem_scheme": "xwing",
      "addresses": [`tcp://127.0.0.1:${30000 + i}`],
      "identity_public_key_pem": pem("ED25519 PUBLIC KEY", identity),
      "link_public_key_pem": pem("XWING PUBLIC KEY", link),
      "identity_key_hash": blake2b256(identity),
    });
  }
  return out;
}

/**
 * A service node of a fake PKI document: its name and the capabilities it
 * advertises (capability name → endpoint).
 *
 * @example Usage
 * ```ts
 * import type { FakeServiceNodeOptions } from "@katzenpost/thinclient/testing";
 * const node: FakeServiceNodeOptions = { name: "sn1", kaetzchen: { echo: "+echo" } };
 * ```
 */
export interface FakeServiceNodeOptions {
  /** Node name. */
  name: string;
  /** Capability name → endpoint (the queue id), e.g. `{ echo: "+echo" }`. */
  kaetzchen: Readonly<Record<string, string>>;
}

/**
 * A service advertised in a fake PKI document, with the values a client puts
 * in `send_message`.
 *
 * @example Usage
 * ```ts
 * import { buildPkiDocument } from "@katzenpost/thinclient/testing";
 * const echo = buildPkiDocument().services.find((s) => s.capability === "echo");
 * console.log(echo?.endpoint); // "+echo"
 * ```
 */
export interface FakeService {
  /** Capability name (`echo`, `courier`, …). */
  readonly capability: string;
  /** Endpoint text, e.g. `+echo`. */
  readonly endpoint: string;
  /** Name of the node offering it. */
  readonly nodeName: string;
  /** The node's `IdentityKey` bytes. */
  readonly identityKey: Uint8Array;
  /** BLAKE2b-256 of `identityKey`: `send_message.destination_id_hash`. */
  readonly destinationIdHash: Uint8Array;
  /** UTF-8 of `endpoint`: `send_message.recipient_queue_id`. */
  readonly recipientQueueId: Uint8Array;
}

/**
 * Options of {@linkcode buildPkiDocument}.
 *
 * @example Usage
 * ```ts
 * import { buildPkiDocument, type PkiDocumentOptions } from "@katzenpost/thinclient/testing";
 * const options: PkiDocumentOptions = { epoch: 7, replicas: 2 };
 * console.log(buildPkiDocument(options).epoch); // 7
 * ```
 */
export interface PkiDocumentOptions {
  /** Epoch of the document. @default 120000 */
  epoch?: number;
  /** Epoch the authorities started. @default 100000 */
  genesisEpoch?: number;
  /** Mix layers in `Topology`. @default 3 */
  mixLayers?: number;
  /** Mix nodes per layer. @default 2 */
  mixesPerLayer?: number;
  /** Gateway nodes. @default 1 */
  gateways?: number;
  /**
   * Service nodes. @default one node "servicenode1" offering echo (`+echo`),
   * testdest (`+testdest`) and courier (`courier`)
   */
  serviceNodes?: readonly FakeServiceNodeOptions[];
  /** Storage replicas. @default 3 */
  replicas?: number;
  /** Poisson rate of the client's sends. @default 0.005 */
  lambdaP?: number;
  /** Authorities that sign the certificate. @default buildDirectoryAuthorities() */
  authorities?: readonly FakeDirectoryAuthority[];
  /** Label that makes all keys differ between documents. @default "fake" */
  seed?: string;
}

/**
 * A fake consensus document in the forms the daemon sends it.
 *
 * @example Usage
 * ```ts
 * import { buildPkiDocument } from "@katzenpost/thinclient/testing";
 * const doc = buildPkiDocument({ epoch: 42 });
 * console.log(doc.epoch, doc.payload.length > 0); // 42 true
 * ```
 */
export interface FakePkiDocument {
  /** The document's `Epoch`. */
  readonly epoch: number;
  /**
   * Canonical CBOR of the document without signatures: what the daemon puts
   * in the handshake's `new_pki_document_event.payload`.
   */
  readonly payload: Uint8Array;
  /**
   * The same document in Go's default encoding (struct key order, every
   * float as an 8-byte double): what later `new_pki_document_event`s carry.
   */
  readonly pushedPayload: Uint8Array;
  /**
   * The certificate-wrapped, signed document: `get_pki_document_reply.payload`.
   */
  readonly certificate: Uint8Array;
  /** Every advertised service (capability, endpoint, destination hash). */
  readonly services: readonly FakeService[];
}

const DEFAULT_SERVICE_NODES: readonly FakeServiceNodeOptions[] = [{
  name: "servicenode1",
  kaetzchen: { echo: "+echo", testdest: "+testdest", courier: "courier" },
}];

interface NodeSpec {
  name: string;
  kind: "mix" | "gateway" | "service";
  kaetzchen: Readonly<Record<string, string>> | null;
  port: number;
}

function descriptor(
  node: NodeSpec,
  epoch: number,
  seed: string,
): { bytes: Uint8Array; identityKey: Uint8Array } {
  const identityKey = derive("node-identity", seed, node.name);
  const mixKeys = new Map<number, Uint8Array>();
  for (let e = epoch; e < epoch + 3; e++) {
    mixKeys.set(e, derive("mix-key", seed, node.name, e));
  }
  let kaetzchen: Record<string, unknown> | null = null;
  let advertized: Record<string, unknown> | null = null;
  if (node.kaetzchen !== null) {
    kaetzchen = {};
    for (const [cap, endpoint] of Object.entries(node.kaetzchen)) {
      kaetzchen[cap] = { endpoint };
      if (cap === "courier") {
        advertized ??= {};
        advertized[cap] = {
          linkPublicKey: pem(
            "XWING PUBLIC KEY",
            derive("courier-link", seed, node.name),
          ),
        };
      }
    }
  }
  const doc = {
    Name: node.name,
    Epoch: epoch,
    IdentityKey: identityKey,
    LinkKey: derive("node-link", seed, node.name),
    MixKeys: mixKeys,
    Addresses: { tcp: [`tcp://127.0.0.1:${node.port}`] },
    Kaetzchen: kaetzchen,
    KaetzchenAdvertizedData: advertized,
    IsGatewayNode: node.kind === "gateway",
    IsServiceNode: node.kind === "service",
    LoadWeight: 0,
    AuthenticationType: "",
    Version: "v1",
  };
  return { bytes: encodeCbor(doc), identityKey };
}

/**
 * Builds a realistic fake PKI document: `Topology`, `GatewayNodes` and
 * `ServiceNodes` hold node descriptors as CBOR inside byte strings, `MixKeys`
 * and `EnvelopeKeys` have integer keys, `SharedRandomCommit` and
 * `SharedRandomReveal` have byte-string keys, and floats are present. The
 * result is deterministic in its options.
 *
 * @param options Shape of the document.
 * @returns The document in its three wire forms plus the advertised services.
 *
 * @example Usage
 * ```ts
 * import { buildPkiDocument } from "@katzenpost/thinclient/testing";
 * const doc = buildPkiDocument({ epoch: 5 });
 * const courier = doc.services.find((s) => s.capability === "courier");
 * console.log(courier?.destinationIdHash.length); // 32
 * ```
 */
export function buildPkiDocument(
  options: PkiDocumentOptions = {},
): FakePkiDocument {
  const epoch = options.epoch ?? 120000;
  const seed = options.seed ?? "fake";
  const authorities = options.authorities ?? buildDirectoryAuthorities(3, seed);
  let port = 31000;
  const layers: Uint8Array[][] = [];
  for (let l = 0; l < (options.mixLayers ?? 3); l++) {
    const layer: Uint8Array[] = [];
    for (let m = 0; m < (options.mixesPerLayer ?? 2); m++) {
      const node: NodeSpec = {
        name: `mix${l + 1}-${m + 1}`,
        kind: "mix",
        kaetzchen: null,
        port: port++,
      };
      layer.push(descriptor(node, epoch, seed).bytes);
    }
    layers.push(layer);
  }
  const gateways: Uint8Array[] = [];
  for (let g = 0; g < (options.gateways ?? 1); g++) {
    const node: NodeSpec = {
      name: `gateway${g + 1}`,
      kind: "gateway",
      kaetzchen: null,
      port: port++,
    };
    gateways.push(descriptor(node, epoch, seed).bytes);
  }
  const serviceNodes: Uint8Array[] = [];
  const services: FakeService[] = [];
  for (const sn of options.serviceNodes ?? DEFAULT_SERVICE_NODES) {
    const node: NodeSpec = {
      name: sn.name,
      kind: "service",
      kaetzchen: sn.kaetzchen,
      port: port++,
    };
    const { bytes, identityKey } = descriptor(node, epoch, seed);
    serviceNodes.push(bytes);
    const destinationIdHash = blake2b256(identityKey);
    for (const [capability, endpoint] of Object.entries(sn.kaetzchen)) {
      services.push({
        capability,
        endpoint,
        nodeName: sn.name,
        identityKey,
        destinationIdHash,
        recipientQueueId: utf8(endpoint),
      });
    }
  }
  const replicaCount = options.replicas ?? 3;
  const replicaEpoch = Math.floor(epoch / 504);
  const replicas: Record<string, unknown>[] = [];
  const replicaIds = new Uint8Array(replicaCount);
  const replicaKeys: Uint8Array[] = [];
  for (let r = 0; r < replicaCount; r++) {
    const name = `replica${r + 1}`;
    const identityKey = derive("replica-identity", seed, name);
    replicaIds[r] = r;
    replicaKeys.push(identityKey);
    replicas.push({
      Name: name,
      ReplicaID: r,
      Epoch: epoch,
      IdentityKey: identityKey,
      LinkKey: derive("replica-link", seed, name),
      EnvelopeKeys: new Map<number, Uint8Array>([
        [replicaEpoch, derive("envelope-key", seed, name, replicaEpoch)],
        [
          replicaEpoch + 1,
          derive("envelope-key", seed, name, replicaEpoch + 1),
        ],
      ]),
      Addresses: { tcp: [`tcp://127.0.0.1:${port++}`] },
    });
  }
  const commits = new Map<Uint8Array, Uint8Array>();
  const reveals = new Map<Uint8Array, Uint8Array>();
  for (const a of authorities) {
    commits.set(a["identity_key_hash"], derive("commit", seed, a.identifier));
    reveals.set(a["identity_key_hash"], derive("reveal", seed, a.identifier));
  }
  const doc = {
    Epoch: epoch,
    GenesisEpoch: options.genesisEpoch ?? 100000,
    Mu: 0.005,
    LambdaP: options.lambdaP ?? 0.005,
    LambdaL: 0.0005,
    LambdaM: 0.2,
    LambdaG: 0.0025,
    LambdaR: 0.0625,
    Topology: layers,
    GatewayNodes: gateways,
    ServiceNodes: serviceNodes,
    StorageReplicas: replicas,
    ConfiguredReplicaIDs: replicaCount > 0 ? replicaIds : undefined,
    ConfiguredReplicaIdentityKeys: replicaCount > 0 ? replicaKeys : undefined,
    SharedRandomCommit: commits,
    SharedRandomReveal: reveals,
    SharedRandomValue: derive("srv", seed, epoch),
    PriorSharedRandom: [derive("srv", seed, epoch - 1)],
    SphinxGeometryHash: derive("sphinx-geometry", seed),
    Version: "v1",
    PKISignatureScheme: "Ed25519",
  };
  const canonical: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(doc)) {
    if (v !== undefined) canonical[k] = v;
  }
  const payload = encodeCbor(canonical);
  const pushedPayload = encodeOrdered(doc);
  const expiration = epoch + 5;
  const signatures = new Map<Uint8Array, Record<string, unknown>>();
  for (const a of authorities) {
    const sig = new Uint8Array(64);
    sig.set(derive("signature", seed, a.identifier, epoch));
    sig.set(blake2b256(a["identity_key_hash"], payload), 32);
    signatures.set(a["identity_key_hash"], {
      PublicKeySum256: a["identity_key_hash"],
      Payload: sig,
    });
  }
  const certificate = encodeCbor({
    Version: 0,
    Expiration: expiration,
    KeyType: "Ed25519",
    Certified: payload,
    Signatures: signatures,
  });
  return { epoch, payload, pushedPayload, certificate, services };
}
