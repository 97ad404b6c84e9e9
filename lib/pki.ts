/**
 * The PKI document pushed by the daemon, parsed into typed descriptors, and
 * service discovery over it.
 *
 * @module
 */
import { decodeCborMaps } from "./cbor.ts";
import { ProtocolError } from "./errors.ts";
import { blake2b256 } from "./hash.ts";

/**
 * A mix, gateway or service node as described in the PKI document.
 *
 * @example Usage
 * ```ts ignore
 * for (const node of client.pkiDocument().serviceNodes) console.log(node.name);
 * ```
 */
export interface MixDescriptor {
  /** Node name. */
  name: string;
  /** Epoch of the descriptor. */
  epoch: bigint;
  /** Identity public key bytes. */
  identityKey: Uint8Array;
  /** Link public key bytes. */
  linkKey: Uint8Array;
  /** Mix keys by epoch. */
  mixKeys: Map<bigint, Uint8Array>;
  /** Addresses by transport. */
  addresses: Record<string, string[]>;
  /** Services (capability → parameters, with `endpoint`). */
  kaetzchen: Record<string, Record<string, unknown>>;
  /** Extra advertised service data. */
  kaetzchenAdvertizedData: Record<string, Record<string, unknown>>;
  /** Whether this is a gateway node. */
  isGatewayNode: boolean;
  /** Whether this is a service node. */
  isServiceNode: boolean;
  /** Load weight. */
  loadWeight: number;
}

/**
 * A Pigeonhole storage replica as described in the PKI document.
 *
 * @example Usage
 * ```ts ignore
 * console.log(client.pkiDocument().storageReplicas.map((r) => r.name));
 * ```
 */
export interface ReplicaDescriptor {
  /** Replica name. */
  name: string;
  /** Replica id. */
  replicaId: number;
  /** Epoch of the descriptor. */
  epoch: bigint;
  /** Identity public key bytes. */
  identityKey: Uint8Array;
  /** Link public key bytes. */
  linkKey: Uint8Array;
  /** Envelope public keys by replica epoch. */
  envelopeKeys: Map<bigint, Uint8Array>;
  /** Addresses by transport. */
  addresses: Record<string, string[]>;
}

/**
 * The consensus document the daemon is using, as pushed in
 * `new_pki_document_event` (without signatures).
 *
 * @example Usage
 * ```ts ignore
 * const doc = client.pkiDocument();
 * console.log(doc.epoch, doc.serviceNodes.length);
 * ```
 */
export interface PkiDocument {
  /** Epoch this document is valid for. */
  epoch: bigint;
  /** Epoch the authorities started. */
  genesisEpoch: bigint;
  /** Poisson mean delay per hop. */
  mu: number;
  /** Client send rate (messages per millisecond). */
  lambdaP: number;
  /** Client loop decoy rate. */
  lambdaL: number;
  /** Mix loop rate. */
  lambdaM: number;
  /** Gateway loop rate. */
  lambdaG: number;
  /** Replica rate. */
  lambdaR: number;
  /** Mix layers. */
  topology: MixDescriptor[][];
  /** Gateway nodes. */
  gatewayNodes: MixDescriptor[];
  /** Service nodes. */
  serviceNodes: MixDescriptor[];
  /** Storage replicas. */
  storageReplicas: ReplicaDescriptor[];
  /** Document format version. */
  version: string;
  /** The decoded raw map, for fields not modelled here. */
  raw: Map<unknown, unknown>;
}

/**
 * A service found in the PKI document: where to send a message for it.
 *
 * @example Usage
 * ```ts ignore
 * const echo = client.getService("echo");
 * await client.sendMessageWithoutReply(payload, echo.destinationIdHash, echo.recipientQueueId);
 * ```
 */
export interface ServiceDescriptor {
  /** Capability name, e.g. `echo`. */
  capability: string;
  /** Endpoint (queue name) text, e.g. `+echo`. */
  endpoint: string;
  /** Name of the node offering it. */
  nodeName: string;
  /** BLAKE2b-256 of the node's identity key: `destinationIdHash` of sends. */
  destinationIdHash: Uint8Array;
  /** UTF-8 bytes of the endpoint: `recipientQueueId` of sends. */
  recipientQueueId: Uint8Array;
}

function fail(what: string): ProtocolError {
  return new ProtocolError(`Cannot parse PKI document: ${what}`);
}

function asMap(v: unknown, where: string): Map<unknown, unknown> {
  if (!(v instanceof Map)) throw fail(`'${where}' is not a map`);
  return v;
}

function u64(v: unknown, where: string): bigint {
  if (v === undefined || v === null) return 0n;
  if (typeof v === "bigint") return v;
  if (typeof v === "number" && Number.isInteger(v) && v >= 0) return BigInt(v);
  throw fail(`'${where}' is not an unsigned integer`);
}

function num(v: unknown, where: string): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  throw fail(`'${where}' is not a number`);
}

function text(v: unknown, where: string): string {
  if (v === undefined || v === null) return "";
  if (typeof v !== "string") throw fail(`'${where}' is not a text string`);
  return v;
}

function bytes(v: unknown, where: string): Uint8Array {
  if (v === undefined || v === null) return new Uint8Array(0);
  if (!(v instanceof Uint8Array)) throw fail(`'${where}' is not a byte string`);
  return v;
}

function list(v: unknown, where: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw fail(`'${where}' is not an array`);
  return v;
}

function toObject(v: unknown): unknown {
  if (v instanceof Map) {
    const o: Record<string, unknown> = {};
    for (const [k, val] of v) o[String(k)] = toObject(val);
    return o;
  }
  if (Array.isArray(v)) return v.map(toObject);
  return v;
}

function stringLists(v: unknown, where: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  if (v === undefined || v === null) return out;
  for (const [k, val] of asMap(v, where)) {
    out[String(k)] = list(val, where).map((s) => text(s, where));
  }
  return out;
}

function keyMap(v: unknown, where: string): Map<bigint, Uint8Array> {
  const out = new Map<bigint, Uint8Array>();
  if (v === undefined || v === null) return out;
  for (const [k, val] of asMap(v, where)) {
    out.set(u64(k, where), bytes(val, where));
  }
  return out;
}

function nested(
  v: unknown,
  where: string,
): Record<string, Record<string, unknown>> {
  if (v === undefined || v === null) return {};
  return toObject(asMap(v, where)) as Record<string, Record<string, unknown>>;
}

function parseMix(v: unknown, where: string): MixDescriptor {
  let m: Map<unknown, unknown>;
  if (v instanceof Uint8Array) {
    try {
      m = asMap(decodeCborMaps(v), where);
    } catch (err) {
      if (err instanceof ProtocolError) throw err;
      throw new ProtocolError(
        `Cannot parse PKI document: '${where}' is not CBOR`,
        {
          cause: err,
        },
      );
    }
  } else {
    m = asMap(v, where);
  }
  return {
    name: text(m.get("Name"), `${where}.Name`),
    epoch: u64(m.get("Epoch"), `${where}.Epoch`),
    identityKey: bytes(m.get("IdentityKey"), `${where}.IdentityKey`),
    linkKey: bytes(m.get("LinkKey"), `${where}.LinkKey`),
    mixKeys: keyMap(m.get("MixKeys"), `${where}.MixKeys`),
    addresses: stringLists(m.get("Addresses"), `${where}.Addresses`),
    kaetzchen: nested(m.get("Kaetzchen"), `${where}.Kaetzchen`),
    kaetzchenAdvertizedData: nested(
      m.get("KaetzchenAdvertizedData"),
      `${where}.KaetzchenAdvertizedData`,
    ),
    isGatewayNode: m.get("IsGatewayNode") === true,
    isServiceNode: m.get("IsServiceNode") === true,
    loadWeight: num(m.get("LoadWeight"), `${where}.LoadWeight`),
  };
}

function parseReplica(v: unknown, where: string): ReplicaDescriptor {
  const m = v instanceof Uint8Array
    ? asMap(decodeCborMaps(v), where)
    : asMap(v, where);
  return {
    name: text(m.get("Name"), `${where}.Name`),
    replicaId: num(m.get("ReplicaID"), `${where}.ReplicaID`),
    epoch: u64(m.get("Epoch"), `${where}.Epoch`),
    identityKey: bytes(m.get("IdentityKey"), `${where}.IdentityKey`),
    linkKey: bytes(m.get("LinkKey"), `${where}.LinkKey`),
    envelopeKeys: keyMap(m.get("EnvelopeKeys"), `${where}.EnvelopeKeys`),
    addresses: stringLists(m.get("Addresses"), `${where}.Addresses`),
  };
}

/**
 * Parses the CBOR payload of a `new_pki_document_event` (or the `Certified`
 * part of a signed document) into a {@linkcode PkiDocument}.
 *
 * @param payload The CBOR-encoded document.
 * @returns The parsed document.
 * @throws {ProtocolError} When the payload is not a well-formed document.
 *
 * @example Usage
 * ```ts
 * import { parsePkiDocument } from "@katzenpost/thinclient";
 * import { buildPkiDocument } from "@katzenpost/thinclient/testing";
 * const doc = parsePkiDocument(buildPkiDocument({ epoch: 42 }).payload);
 * console.log(doc.epoch); // 42n
 * ```
 */
export function parsePkiDocument(payload: Uint8Array): PkiDocument {
  let raw: Map<unknown, unknown>;
  try {
    raw = asMap(decodeCborMaps(payload), "document");
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    throw new ProtocolError("Cannot parse PKI document: payload is not CBOR", {
      cause: err,
    });
  }
  return {
    epoch: u64(raw.get("Epoch"), "Epoch"),
    genesisEpoch: u64(raw.get("GenesisEpoch"), "GenesisEpoch"),
    mu: num(raw.get("Mu"), "Mu"),
    lambdaP: num(raw.get("LambdaP"), "LambdaP"),
    lambdaL: num(raw.get("LambdaL"), "LambdaL"),
    lambdaM: num(raw.get("LambdaM"), "LambdaM"),
    lambdaG: num(raw.get("LambdaG"), "LambdaG"),
    lambdaR: num(raw.get("LambdaR"), "LambdaR"),
    topology: list(raw.get("Topology"), "Topology").map((layer, i) =>
      list(layer, `Topology[${i}]`).map((n, j) =>
        parseMix(n, `Topology[${i}][${j}]`)
      )
    ),
    gatewayNodes: list(raw.get("GatewayNodes"), "GatewayNodes").map((n, i) =>
      parseMix(n, `GatewayNodes[${i}]`)
    ),
    serviceNodes: list(raw.get("ServiceNodes"), "ServiceNodes").map((n, i) =>
      parseMix(n, `ServiceNodes[${i}]`)
    ),
    storageReplicas: list(raw.get("StorageReplicas"), "StorageReplicas").map((
      n,
      i,
    ) => parseReplica(n, `StorageReplicas[${i}]`)),
    version: text(raw.get("Version"), "Version"),
    raw,
  };
}

/**
 * Lists every service node offering a capability (katzenpost `FindServices`).
 *
 * @param doc The PKI document.
 * @param capability The capability name, e.g. `echo` or `courier`.
 * @returns One descriptor per node offering it (possibly none).
 *
 * @example Usage
 * ```ts
 * import { findServices, parsePkiDocument } from "@katzenpost/thinclient";
 * import { buildPkiDocument } from "@katzenpost/thinclient/testing";
 * const doc = parsePkiDocument(buildPkiDocument().payload);
 * console.log(findServices(doc, "echo")[0]?.endpoint); // "+echo"
 * ```
 */
export function findServices(
  doc: PkiDocument,
  capability: string,
): ServiceDescriptor[] {
  const out: ServiceDescriptor[] = [];
  for (const node of doc.serviceNodes) {
    const params = node.kaetzchen[capability];
    if (params === undefined) continue;
    const endpoint = params["endpoint"];
    if (typeof endpoint !== "string" || endpoint.length === 0) continue;
    out.push({
      capability,
      endpoint,
      nodeName: node.name,
      destinationIdHash: blake2b256(node.identityKey),
      recipientQueueId: new TextEncoder().encode(endpoint),
    });
  }
  return out;
}
