/**
 * What the client knows of its daemon: the mixnet link status, tokens,
 * geometries, and the PKI documents of the last few epochs.
 *
 * @module
 */
import { ThinClientError } from "./errors.ts";
import {
  findServices,
  parsePkiDocument,
  type PkiDocument,
  type ServiceDescriptor,
} from "./pki.ts";
import {
  ID_LENGTH,
  type PigeonholeGeometry,
  type ResponseOf,
  type SphinxGeometry,
} from "./protocol.ts";

const PKI_CACHE_EPOCHS = 5n;

/** The daemon's state as its frames last reported it. */
export class DaemonState {
  /** Whether the daemon is connected to the mixnet. */
  isConnected = false;
  /** The daemon's instance token. */
  daemonToken: Uint8Array = new Uint8Array(ID_LENGTH);
  /** The application id of this session. */
  appId: Uint8Array = new Uint8Array(ID_LENGTH);
  /** Whether the latest handshake resumed a session. */
  resumed = false;
  /** Set by the first connection status. */
  sphinx: SphinxGeometry | null = null;
  /** Set by the first connection status. */
  pigeonhole: PigeonholeGeometry | null = null;
  /** The latest document. */
  document: PkiDocument | null = null;
  readonly #documents = new Map<bigint, PkiDocument>();

  /** Takes in a connection status. */
  applyStatus(ev: ResponseOf<"connection_status_event">): void {
    this.isConnected = ev.isConnected;
    this.daemonToken = ev.instanceToken;
    if (ev.sphinxGeometry !== null) this.sphinx = ev.sphinxGeometry;
    if (ev.pigeonholeGeometry !== null) {
      this.pigeonhole = ev.pigeonholeGeometry;
    }
  }

  /**
   * Takes in a PKI document payload: the parsed document, or `null` when
   * the payload is empty or fails to parse (ignored, as upstream does).
   */
  applyDocument(payload: Uint8Array | null): PkiDocument | null {
    if (payload === null || payload.length === 0) return null;
    let doc: PkiDocument;
    try {
      doc = parsePkiDocument(payload);
    } catch {
      return null;
    }
    this.document = doc;
    this.#documents.set(doc.epoch, doc);
    for (const epoch of this.#documents.keys()) {
      if (epoch + PKI_CACHE_EPOCHS <= doc.epoch) this.#documents.delete(epoch);
    }
    return doc;
  }

  /** The current document; throws when there is none yet. */
  pkiDocument(): PkiDocument {
    if (this.document === null) {
      throw new ThinClientError(
        "Cannot get PKI document: the daemon has not delivered one yet",
      );
    }
    return this.document;
  }

  /** The cached document of an epoch, else the current one. */
  pkiDocumentForEpoch(epoch: bigint): PkiDocument {
    return this.#documents.get(epoch) ?? this.pkiDocument();
  }

  /** The services offering a capability in the current document. */
  getServices(capability: string): ServiceDescriptor[] {
    return this.document === null
      ? []
      : findServices(this.document, capability);
  }

  /** One service offering a capability, chosen at random. */
  getService(capability: string): ServiceDescriptor {
    const all = this.getServices(capability);
    if (all.length === 0) {
      throw new ThinClientError(
        `Cannot find service '${capability}': no service node offers it in the current PKI document`,
      );
    }
    const pick = new Uint32Array(1);
    crypto.getRandomValues(pick);
    return all[pick[0]! % all.length]!;
  }
}
