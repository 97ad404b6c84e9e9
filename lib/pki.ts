/**
 * The PKI document pushed by the daemon, parsed into typed descriptors, and
 * service discovery over it.
 *
 * @module
 */
import { type CborBudget, decodeCborExact } from "./cbor.ts";
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

/**
 * Most array elements plus map pairs in a document and all its descriptors
 * together. A document of 108 nodes (bench/_pki_fixture.ts) has about 4,000.
 */
const PKI_MAX_ELEMENTS = 65_536;

function fail(what: string, cause?: unknown): ProtocolError {
  return new ProtocolError(
    `Cannot parse PKI document: ${what}`,
    cause === undefined ? undefined : { cause },
  );
}

// The document is decoded with every CBOR integer as a `bigint` and every
// float as a `number` (decodeCborExact), so the two can be told apart.
function describe(v: unknown): string {
  if (v === null) return "null";
  if (v instanceof Uint8Array) return "a byte string";
  if (v instanceof Map) return "a map";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "bigint") return `the integer ${v}`;
  if (typeof v === "number") return `the float ${v}`;
  if (typeof v === "string") return "a text string";
  return typeof v;
}

function wrong(where: string, expected: string, v: unknown): ProtocolError {
  return fail(`'${where}' is ${describe(v)}, expected ${expected}`);
}

function asMap(v: unknown, where: string): Map<unknown, unknown> {
  if (!(v instanceof Map)) throw wrong(where, "a map", v);
  return v;
}

/** An unsigned integer of Go type `uint<bits>`: a CBOR integer in range, never a float. */
function uint(v: unknown, where: string, bits: 8 | 64): bigint {
  if (v === undefined || v === null) return 0n;
  if (typeof v === "bigint" && v >= 0n && v < 1n << BigInt(bits)) return v;
  throw wrong(where, `an unsigned ${bits}-bit integer`, v);
}

function u64(v: unknown, where: string): bigint {
  return uint(v, where, 64);
}

function u8(v: unknown, where: string): number {
  return Number(uint(v, where, 8));
}

/** A Go `float64`: a CBOR float, or an integer (which Go converts). */
function float(v: unknown, where: string): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  throw wrong(where, "a number", v);
}

function bool(v: unknown, where: string): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v !== "boolean") throw wrong(where, "a boolean", v);
  return v;
}

function text(v: unknown, where: string): string {
  if (v === undefined || v === null) return "";
  if (typeof v !== "string") throw wrong(where, "a text string", v);
  return v;
}

function bytes(v: unknown, where: string): Uint8Array {
  if (v === undefined || v === null) return new Uint8Array(0);
  if (!(v instanceof Uint8Array)) throw wrong(where, "a byte string", v);
  return v;
}

function list(v: unknown, where: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw wrong(where, "an array", v);
  return v;
}

/** Sets an own property, even for the key `__proto__` (never the prototype). */
function setOwn(o: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(o, key, {
    value,
    enumerable: true,
    configurable: true,
    writable: true,
  });
}

/**
 * A decoded value as the rest of the library sees it: integers that fit a
 * `number` become one again (cborg's default), the rest stay `bigint`;
 * `asObjects` also turns maps into plain objects.
 */
function plain(v: unknown, asObjects: boolean): unknown {
  if (typeof v === "bigint") {
    return v >= -Number.MAX_SAFE_INTEGER && v <= Number.MAX_SAFE_INTEGER
      ? Number(v)
      : v;
  }
  if (Array.isArray(v)) return v.map((x) => plain(x, asObjects));
  if (v instanceof Map) {
    if (!asObjects) {
      const m = new Map<unknown, unknown>();
      for (const [k, val] of v) m.set(plain(k, false), plain(val, false));
      return m;
    }
    const o: Record<string, unknown> = {};
    for (const [k, val] of v) {
      setOwn(o, String(plain(k, true)), plain(val, true));
    }
    return o;
  }
  return v;
}

/** Go `map[string]T`: text keys only. */
function textKeyed(v: unknown, where: string): [string, unknown][] {
  if (v === undefined || v === null) return [];
  const out: [string, unknown][] = [];
  for (const [k, val] of asMap(v, where)) {
    if (typeof k !== "string") throw wrong(`${where} key`, "a text string", k);
    out.push([k, val]);
  }
  return out;
}

function stringLists(v: unknown, where: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, val] of textKeyed(v, where)) {
    const at = `${where}.${k}`;
    setOwn(out, k, list(val, at).map((s, i) => text(s, `${at}[${i}]`)));
  }
  return out;
}

function keyMap(v: unknown, where: string): Map<bigint, Uint8Array> {
  const out = new Map<bigint, Uint8Array>();
  if (v === undefined || v === null) return out;
  for (const [k, val] of asMap(v, where)) {
    out.set(u64(k, `${where} key`), bytes(val, `${where}.${k}`));
  }
  return out;
}

/**
 * Go `map[string]map[string]interface{}` (Kaetzchen): a null inner map (how
 * Go encodes a nil one) becomes an empty object.
 */
function nested(
  v: unknown,
  where: string,
): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const [k, val] of textKeyed(v, where)) {
    const params: Record<string, unknown> = {};
    for (const [pk, pv] of textKeyed(val, `${where}.${k}`)) {
      setOwn(params, pk, plain(pv, true));
    }
    setOwn(out, k, params);
  }
  return out;
}

/**
 * A descriptor: a map, or (mixes, gateways, services) a byte string holding
 * one, decoded within the document's element budget.
 */
function descriptor(
  v: unknown,
  where: string,
  budget: CborBudget,
): Map<unknown, unknown> {
  if (!(v instanceof Uint8Array)) return asMap(v, where);
  let decoded: unknown;
  try {
    decoded = decodeCborExact(v, budget);
  } catch (err) {
    throw fail(`'${where}' is not CBOR: ${(err as Error).message}`, err);
  }
  return asMap(decoded, where);
}

function parseMix(
  v: unknown,
  where: string,
  budget: CborBudget,
): MixDescriptor {
  const m = descriptor(v, where, budget);
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
    isGatewayNode: bool(m.get("IsGatewayNode"), `${where}.IsGatewayNode`),
    isServiceNode: bool(m.get("IsServiceNode"), `${where}.IsServiceNode`),
    loadWeight: u8(m.get("LoadWeight"), `${where}.LoadWeight`),
  };
}

function parseReplica(
  v: unknown,
  where: string,
  budget: CborBudget,
): ReplicaDescriptor {
  const m = descriptor(v, where, budget);
  return {
    name: text(m.get("Name"), `${where}.Name`),
    replicaId: u8(m.get("ReplicaID"), `${where}.ReplicaID`),
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
 * @throws {ProtocolError} When the payload is not a well-formed document:
 *   not CBOR, beyond the CBOR limits, or a field of the wrong type or range
 *   (a float or negative number where Go has an unsigned integer, say).
 * @throws {TypeError} When `payload` is not a `Uint8Array`.
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
  if (!(payload instanceof Uint8Array)) {
    throw new TypeError(
      "Cannot parse PKI document: payload is not a Uint8Array",
    );
  }
  // One element budget for the document and every descriptor nested in its
  // byte strings, so nesting cannot multiply the limit.
  const budget: CborBudget = { elements: PKI_MAX_ELEMENTS };
  let decoded: unknown;
  try {
    decoded = decodeCborExact(payload, budget);
  } catch (err) {
    throw fail(`payload is not CBOR: ${(err as Error).message}`, err);
  }
  const raw = asMap(decoded, "document");
  return {
    epoch: u64(raw.get("Epoch"), "Epoch"),
    genesisEpoch: u64(raw.get("GenesisEpoch"), "GenesisEpoch"),
    mu: float(raw.get("Mu"), "Mu"),
    lambdaP: float(raw.get("LambdaP"), "LambdaP"),
    lambdaL: float(raw.get("LambdaL"), "LambdaL"),
    lambdaM: float(raw.get("LambdaM"), "LambdaM"),
    lambdaG: float(raw.get("LambdaG"), "LambdaG"),
    lambdaR: float(raw.get("LambdaR"), "LambdaR"),
    topology: list(raw.get("Topology"), "Topology").map((layer, i) =>
      list(layer, `Topology[${i}]`).map((n, j) =>
        parseMix(n, `Topology[${i}][${j}]`, budget)
      )
    ),
    gatewayNodes: list(raw.get("GatewayNodes"), "GatewayNodes").map((n, i) =>
      parseMix(n, `GatewayNodes[${i}]`, budget)
    ),
    serviceNodes: list(raw.get("ServiceNodes"), "ServiceNodes").map((n, i) =>
      parseMix(n, `ServiceNodes[${i}]`, budget)
    ),
    storageReplicas: list(raw.get("StorageReplicas"), "StorageReplicas").map((
      n,
      i,
    ) => parseReplica(n, `StorageReplicas[${i}]`, budget)),
    version: text(raw.get("Version"), "Version"),
    raw: plain(raw, false) as Map<unknown, unknown>,
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
    // Own properties only: a capability named "constructor" or "__proto__"
    // must not find Object.prototype. A null entry (Go's nil map) offers nothing.
    const services = node.kaetzchen;
    if (typeof services !== "object" || services === null) continue;
    if (!Object.hasOwn(services, capability)) continue;
    const params: unknown = services[capability];
    if (typeof params !== "object" || params === null) continue;
    if (!Object.hasOwn(params, "endpoint")) continue;
    const endpoint = (params as Record<string, unknown>)["endpoint"];
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
