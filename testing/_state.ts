/**
 * The options of the fake daemon and the state its parts share: its
 * configuration, the replicas' box store, the couriers' copy results, the PKI
 * documents, the mixnet connectivity, the scripts and the background tasks;
 * and the records of one client connection, one session and one ARQ
 * operation.
 *
 * @module
 */
import { Notifier } from "../lib/_async.ts";
import { BoxStore } from "./_pigeonhole.ts";
import {
  buildDirectoryAuthorities,
  buildPkiDocument,
  DEFAULT_PIGEONHOLE_GEOMETRY,
  DEFAULT_SPHINX_GEOMETRY,
  type FakeDirectoryAuthority,
  type FakePkiDocument,
  orderedPigeonholeGeometry,
  orderedSphinxGeometry,
  type WirePigeonholeGeometry,
  type WireSphinxGeometry,
} from "./_pki.ts";
import {
  type FakeDaemonFaults,
  initialFaults,
  ScriptTable,
} from "./_scripting.ts";
import type { FakeTransport, ServerSocket } from "./_transport.ts";
import type { ReceivedRequest } from "./_types.ts";
import type { Rng } from "./_util.ts";
import type { DecodedRequest } from "./_wire.ts";

/**
 * Options of {@linkcode FakeDaemon.start}.
 *
 * @example Usage
 * ```ts
 * import type { FakeDaemonOptions } from "@katzenpost/thinclient/testing";
 * const options: FakeDaemonOptions = { transport: "memory", gracePeriodMs: 200 };
 * ```
 */
export interface FakeDaemonOptions {
  /** Where to listen. @default "tcp" (127.0.0.1, any free port) */
  transport?: FakeTransport;
  /** TCP/WebSocket port. @default 0 (any free port) */
  port?: number;
  /**
   * Unix socket path, or `@name` for a Linux abstract socket (a NUL byte and
   * the name, exact length, as Go binds it).
   * @default a socket in a new temporary directory
   */
  path?: string;
  /** Send Go full-form envelopes (all 25 keys, unused ones null). @default true */
  goFullForm?: boolean;
  /** The daemon's 16-byte instance token. @default 16 seeded random bytes */
  instanceToken?: Uint8Array;
  /** Initial mixnet connectivity (`is_connected`). @default true */
  connected?: boolean;
  /** Sphinx geometry sent in status events. @default DEFAULT_SPHINX_GEOMETRY */
  sphinxGeometry?: Readonly<WireSphinxGeometry>;
  /** Pigeonhole geometry sent in status events. @default DEFAULT_PIGEONHOLE_GEOMETRY */
  pigeonholeGeometry?: Readonly<WirePigeonholeGeometry>;
  /** Current PKI document; `null` = none (frame #2 null, encrypt → 4, get → 10). @default buildPkiDocument() */
  pkiDocument?: FakePkiDocument | null;
  /** `get_directory_authorities` answer; `null` or empty → error 10. @default buildDirectoryAuthorities() */
  directoryAuthorities?: readonly FakeDirectoryAuthority[] | null;
  /** How long a disconnected session with a token survives. @default 600000 */
  gracePeriodMs?: number;
  /** Release delay of each request in the per-connection mixnet FIFO. @default 0 */
  mixnetDelayMs?: number;
  /** Capacity of the mixnet FIFO; the reader stalls when it is full. @default 16 */
  mixnetQueueCapacity?: number;
  /** Delay between dispatch and the terminal reply of `start_resending_encrypted_message`. @default 0 */
  arqDelayMs?: number;
  /** Delay between dispatch and the reply of `start_resending_copy_command`. @default 0 */
  copyDelayMs?: number;
  /** Delay between `message_sent_event` and the echo service's reply. @default 0 */
  echoDelayMs?: number;
  /** `reply_eta` of `message_sent_event`, in nanoseconds. @default 1500000000 */
  replyEtaNs?: number;
  /** Legacy replies kept for a disconnected session. @default 1000 */
  maxQueuedReplies?: number;
  /** Clock for `sent_at`, in milliseconds. @default Date.now */
  now?: () => number;
  /** Seed of every random value the daemon makes. @default a per-process counter */
  seed?: number;
  /** Initial fault switches. */
  faults?: Partial<FakeDaemonFaults>;
}

/** A mixnet request waiting in a connection's FIFO. */
export interface Queued {
  /** The decoded request. */
  req: DecodedRequest;
  /** Its record. */
  rec: ReceivedRequest;
}

/** One client connection. */
export interface ConnState {
  /** 1 for the first accepted connection, … */
  id: number;
  /** The daemon's end of it. */
  socket: ServerSocket;
  /** The session it serves (a provisional one until `session_token`). */
  session: Session;
  /** Whether frames #1 and #2 were sent. */
  ready: boolean;
  /** Whether it was closed. */
  closed: boolean;
  /** Aborted when it closes. */
  abort: AbortController;
  /** The writes in order. */
  writeChain: Promise<void>;
  /** Frames waiting to be merged into one write (`coalesceWrites`). */
  pendingCoalesce: Uint8Array[] | null;
  /** The mixnet FIFO. */
  queue: Queued[];
  /** Notified when the FIFO changes. */
  queueChanged: Notifier;
}

/** A started `start_resending_*` operation. */
export interface ArqOp {
  /** Which of the two. */
  kind: "encrypted" | "copy";
  /** Hex of the envelope hash or of the write cap's hash; `null` if none. */
  key: string | null;
  /** The request's query id. */
  queryId: Uint8Array | null;
  /** The session it belongs to. */
  session: Session;
  /** Aborted on cancel or when the session ends. */
  abort: AbortController;
  /** Whether it has ended (replied, cancelled, forgotten or stranded). */
  done: boolean;
  /** The courier's identity hash. */
  courierHash: Uint8Array | null;
  /** The courier's queue id. */
  courierQueue: Uint8Array | null;
}

/** A client's session (app id, token, operations, queued legacy replies). */
export interface Session {
  /** The 16-byte app id. */
  appId: Uint8Array;
  /** Hex of the client instance token, once `session_token` came. */
  token: string | null;
  /** The connection serving it, `null` while the client is away. */
  conn: ConnState | null;
  /** Ends the grace period. */
  graceTimer: ReturnType<typeof setTimeout> | null;
  /** Legacy replies kept while the client is away. */
  queued: [string, Record<string, unknown>][];
  /** Encrypted-message operations by envelope hash. */
  encOps: Map<string, ArqOp>;
  /** Copy operations by write cap hash. */
  copyOps: Map<string, ArqOp>;
  /** Every running operation. */
  ops: Set<ArqOp>;
  /** Whether it was destroyed. */
  destroyed: boolean;
}

/** The outcome of a copy command, kept by write cap hash. */
export interface CopyResult {
  /** `error_code`. */
  code: number;
  /** `replica_error_code`. */
  replica: number;
  /** `failed_envelope_index`. */
  failed: number;
}

/** A courier's identity hash and queue id (null without a courier). */
export interface Courier {
  /** `courier_identity_hash`. */
  hash: Uint8Array | null;
  /** `courier_queue_id`. */
  queue: Uint8Array | null;
}

let defaultDocument: FakePkiDocument | null = null;

/** Configuration and shared state of one fake daemon. */
export class DaemonState {
  /** The transport listened on. */
  readonly transport: FakeTransport;
  /** Go full-form envelopes. */
  readonly fullForm: boolean;
  /** Sphinx geometry. */
  readonly sphinx: Readonly<WireSphinxGeometry>;
  /** Pigeonhole geometry. */
  readonly pigeonhole: Readonly<WirePigeonholeGeometry>;
  /** `get_directory_authorities` answer. */
  readonly authorities: readonly FakeDirectoryAuthority[] | null;
  /** Grace period of a session, in ms. */
  readonly graceMs: number;
  /** Release delay of the mixnet FIFO, in ms. */
  readonly mixnetDelayMs: number;
  /** Capacity of the mixnet FIFO. */
  readonly capacity: number;
  /** Delay of `start_resending_encrypted_message`, in ms. */
  readonly arqDelayMs: number;
  /** Delay of `start_resending_copy_command`, in ms. */
  readonly copyDelayMs: number;
  /** Delay of the echo service, in ms. */
  readonly echoDelayMs: number;
  /** `reply_eta`, in ns. */
  readonly replyEtaNs: number;
  /** Legacy replies kept for a disconnected session. */
  readonly maxQueued: number;
  /** Clock, in ms. */
  readonly now: () => number;
  /** Seeded randomness. */
  readonly rng: Rng;
  /** Fault switches. */
  readonly faults: FakeDaemonFaults;
  /** Aborted when the daemon closes. */
  readonly lifetime: AbortController = new AbortController();
  /** The replicas. */
  readonly boxes: BoxStore = new BoxStore();
  /** The couriers' copy results by write cap hash. */
  readonly copyResults: Map<string, CopyResult> = new Map();
  /** Scripts in force. */
  readonly scripts: ScriptTable = new ScriptTable();
  /** Background work that `close()` waits for. */
  readonly tasks: Set<Promise<unknown>> = new Set();
  /** Documents `get_pki_document` serves by epoch. */
  readonly docs: Map<number, FakePkiDocument> = new Map();
  /** Notified when `connected` changes. */
  readonly connectedChanged: Notifier = new Notifier();
  /** The current document. */
  doc: FakePkiDocument | null;
  /** The daemon's instance token. */
  instanceToken: Uint8Array;
  /** Mixnet connectivity. */
  connected: boolean;

  /** Takes the options, with their defaults. */
  constructor(options: FakeDaemonOptions, rng: Rng) {
    this.rng = rng;
    this.transport = options.transport ?? "tcp";
    this.fullForm = options.goFullForm ?? true;
    this.sphinx = options.sphinxGeometry ?? DEFAULT_SPHINX_GEOMETRY;
    this.pigeonhole = options.pigeonholeGeometry ?? DEFAULT_PIGEONHOLE_GEOMETRY;
    this.authorities = options.directoryAuthorities === undefined
      ? buildDirectoryAuthorities()
      : options.directoryAuthorities;
    this.graceMs = options.gracePeriodMs ?? 600_000;
    this.mixnetDelayMs = options.mixnetDelayMs ?? 0;
    this.capacity = options.mixnetQueueCapacity ?? 16;
    this.arqDelayMs = options.arqDelayMs ?? 0;
    this.copyDelayMs = options.copyDelayMs ?? 0;
    this.echoDelayMs = options.echoDelayMs ?? 0;
    this.replyEtaNs = options.replyEtaNs ?? 1_500_000_000;
    this.maxQueued = options.maxQueuedReplies ?? 1000;
    this.now = options.now ?? Date.now;
    this.instanceToken = options.instanceToken?.slice() ?? rng.bytes(16);
    this.connected = options.connected ?? true;
    this.doc = options.pkiDocument === undefined
      ? (defaultDocument ??= buildPkiDocument())
      : options.pkiDocument;
    if (this.doc !== null) this.docs.set(this.doc.epoch, this.doc);
    this.faults = initialFaults(options.faults);
  }

  /** Whether the daemon is closing or closed. */
  get closed(): boolean {
    return this.lifetime.signal.aborted;
  }

  /** Keeps `p` among the tasks until it settles (its failure is ignored). */
  track(p: Promise<unknown>): void {
    const tracked = p.catch(() => {}).finally(() => this.tasks.delete(tracked));
    this.tasks.add(tracked);
  }

  /** The body of a `connection_status_event` from the current state. */
  statusBody(): Record<string, unknown> {
    return {
      "is_connected": this.connected,
      "err": null,
      "instance_token": this.instanceToken.slice(),
      "sphinx_geometry": orderedSphinxGeometry(this.sphinx),
      "pigeonhole_geometry": orderedPigeonholeGeometry(this.pigeonhole),
    };
  }

  /** The courier of the current document. */
  courier(): Courier {
    const service = this.doc?.services.find((s) => s.capability === "courier");
    return service === undefined
      ? { hash: null, queue: null }
      : { hash: service.destinationIdHash, queue: service.recipientQueueId };
  }
}
