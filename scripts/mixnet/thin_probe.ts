// Minimal, self-contained thin-protocol client used only by the mixnet harness
// (readiness checks and echo probes). It is NOT the project's client (that lives in
// lib/); it speaks just enough of the kpclientd protocol: 4-byte big-endian length +
// one CBOR map per frame, the daemon-first handshake, `send_message` with a SURB to the
// `echo` service, and decoding of the pushed PKI document.

import { decode, encode } from "cborg";
import { blake2b } from "@noble/hashes/blake2";

export type Listen =
  | { kind: "tcp"; address: string } // host:port
  | { kind: "unix"; address: string } // socket path
  | { kind: "ws"; address: string }; // ws://host:port

const MAX_FRAME = 40 * 1024 * 1024;

// deno-lint-ignore no-explicit-any
type Any = any;

export interface ServiceInfo {
  capability: string;
  endpoint: string;
  node: string;
  destinationIdHash: Uint8Array;
}

export interface DocSummary {
  epoch: bigint | number;
  replicas: string[];
  services: ServiceInfo[];
  mixes: string[];
  gateways: string[];
}

interface ByteStream {
  read(): Promise<Uint8Array | null>;
  write(b: Uint8Array): Promise<void>;
  close(): void;
}

async function openStream(l: Listen): Promise<ByteStream> {
  if (l.kind === "ws") return await openWs(l.address);
  let conn: Deno.Conn;
  if (l.kind === "tcp") {
    const i = l.address.lastIndexOf(":");
    conn = await Deno.connect({
      hostname: l.address.slice(0, i),
      port: Number(l.address.slice(i + 1)),
    });
    try {
      (conn as Deno.TcpConn).setNoDelay(true);
    } catch { /* ignore */ }
  } else {
    conn = await Deno.connect({ transport: "unix", path: l.address });
  }
  const reader = conn.readable.getReader();
  const writer = conn.writable.getWriter();
  return {
    async read() {
      const r = await reader.read();
      return r.done ? null : r.value;
    },
    write: (b) => writer.write(b),
    close() {
      try {
        conn.close();
      } catch { /* already closed */ }
    },
  };
}

function openWs(url: string): Promise<ByteStream> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    const queue: (Uint8Array | null)[] = [];
    let waiter: ((v: Uint8Array | null) => void) | null = null;
    const push = (v: Uint8Array | null) => {
      if (waiter) {
        const w = waiter;
        waiter = null;
        w(v);
      } else queue.push(v);
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data === "string") return push(null); // text is a protocol error
      push(new Uint8Array(ev.data as ArrayBuffer));
    };
    ws.onclose = () => push(null);
    ws.onerror = () => {
      if (ws.readyState !== WebSocket.OPEN) {
        reject(new Error(`websocket connect to ${url} failed`));
      }
      push(null);
    };
    ws.onopen = () =>
      resolve({
        read: () =>
          queue.length
            ? Promise.resolve(queue.shift()!)
            : new Promise((r) => (waiter = r)),
        write: (b) => Promise.resolve(ws.send(b)),
        close: () => ws.close(),
      });
  });
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Pick the single non-null variant of a daemon envelope map. */
function variant(msg: Record<string, Any>): [string, Any] | null {
  for (const [k, v] of Object.entries(msg)) {
    if (v !== null && v !== undefined) return [k, v];
  }
  return null;
}

function mapGet(m: Any, k: string): Any {
  return m instanceof Map ? m.get(k) : m?.[k];
}

export function summarizeDocument(payload: Uint8Array): DocSummary {
  const doc = decode(payload, { useMaps: true });
  const nodeName = (b: Uint8Array) =>
    mapGet(decode(b, { useMaps: true }), "Name") as string;
  const services: ServiceInfo[] = [];
  for (const b of (mapGet(doc, "ServiceNodes") ?? []) as Uint8Array[]) {
    const d = decode(b, { useMaps: true });
    const kaetzchen = mapGet(d, "Kaetzchen");
    if (!(kaetzchen instanceof Map)) continue;
    for (const [cap, params] of kaetzchen) {
      services.push({
        capability: String(cap),
        endpoint: String(mapGet(params, "endpoint") ?? ""),
        node: mapGet(d, "Name"),
        destinationIdHash: blake2b(mapGet(d, "IdentityKey") as Uint8Array, {
          dkLen: 32,
        }),
      });
    }
  }
  return {
    epoch: mapGet(doc, "Epoch"),
    replicas: ((mapGet(doc, "StorageReplicas") ?? []) as Any[]).map((r) =>
      String(mapGet(r, "Name"))
    ),
    services,
    mixes: ((mapGet(doc, "Topology") ?? []) as Uint8Array[][]).flat().map(
      nodeName,
    ),
    gateways: ((mapGet(doc, "GatewayNodes") ?? []) as Uint8Array[]).map(
      nodeName,
    ),
  };
}

export type ThinEvent = { kind: string; body: Any };

/** One thin-client connection with a background frame reader. */
export class ThinConn {
  #s: ByteStream;
  #buf = new Uint8Array(0);
  #events: ThinEvent[] = [];
  #waiters: (() => void)[] = [];
  closed = false;
  closeReason = "";
  connected = false;
  doc: DocSummary | null = null;
  docRaw: Uint8Array | null = null;
  instanceToken: Uint8Array | null = null;
  sphinxGeometry: Any = null;
  pigeonholeGeometry: Any = null;
  onEvent: ((e: ThinEvent) => void) | null = null;

  private constructor(s: ByteStream) {
    this.#s = s;
    this.#pump();
  }

  static async open(l: Listen): Promise<ThinConn> {
    return new ThinConn(await openStream(l));
  }

  async #pump() {
    try {
      for (;;) {
        const chunk = await this.#s.read();
        if (chunk === null) break;
        const nb = new Uint8Array(this.#buf.length + chunk.length);
        nb.set(this.#buf);
        nb.set(chunk, this.#buf.length);
        this.#buf = nb;
        while (this.#buf.length >= 4) {
          const n = new DataView(this.#buf.buffer, this.#buf.byteOffset)
            .getUint32(0, false);
          if (n > MAX_FRAME) throw new Error(`oversize frame ${n}`);
          if (this.#buf.length < 4 + n) break;
          const body = this.#buf.slice(4, 4 + n);
          this.#buf = this.#buf.slice(4 + n);
          this.#dispatch(decode(body));
        }
      }
      this.closeReason ||= "connection closed by daemon";
    } catch (e) {
      this.closeReason ||= String(e);
    }
    this.closed = true;
    this.#wake();
  }

  #dispatch(msg: Record<string, Any>) {
    const v = variant(msg);
    if (!v) return;
    const [kind, body] = v;
    if (kind === "connection_status_event") {
      this.connected = !!body.is_connected;
      this.instanceToken = body.instance_token ?? null;
      this.sphinxGeometry = body.sphinx_geometry ?? null;
      this.pigeonholeGeometry = body.pigeonhole_geometry ?? null;
    } else if (
      kind === "new_pki_document_event" && body.payload instanceof Uint8Array &&
      body.payload.length
    ) {
      try {
        this.docRaw = body.payload;
        this.doc = summarizeDocument(body.payload);
      } catch { /* ignore unparsable documents */ }
    }
    const ev = { kind, body };
    this.#events.push(ev);
    this.onEvent?.(ev);
    this.#wake();
  }

  #wake() {
    const w = this.#waiters;
    this.#waiters = [];
    w.forEach((f) => f());
  }

  /** Wait until pred(event) matches a queued/new event, or the deadline. Consumes events up to it. */
  async next(
    pred: (e: ThinEvent) => boolean,
    deadlineMs: number,
  ): Promise<ThinEvent | null> {
    for (;;) {
      const i = this.#events.findIndex(pred);
      if (i >= 0) return this.#events.splice(0, i + 1)[i] ?? null;
      this.#events = [];
      if (this.closed) return null;
      const left = deadlineMs - Date.now();
      if (left <= 0) return null;
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 1000));
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  async send(req: Record<string, Any>): Promise<void> {
    const body = encode(req);
    const f = new Uint8Array(4 + body.length);
    new DataView(f.buffer).setUint32(0, body.length, false);
    f.set(body, 4);
    await this.#s.write(f);
  }

  /** Daemon-first handshake: status, document, then our session token. */
  async handshake(deadlineMs: number): Promise<void> {
    const st = await this.next(
      (e) => e.kind === "connection_status_event",
      deadlineMs,
    );
    if (!st) {
      throw new Error(
        `no connection_status_event (${this.closeReason || "timeout"})`,
      );
    }
    const doc = await this.next(
      (e) => e.kind === "new_pki_document_event",
      deadlineMs,
    );
    if (!doc) {
      throw new Error(
        `no new_pki_document_event (${this.closeReason || "timeout"})`,
      );
    }
    await this.send({
      session_token: {
        client_instance_token: crypto.getRandomValues(new Uint8Array(16)),
      },
    });
    const rep = await this.next(
      (e) => e.kind === "session_token_reply",
      deadlineMs,
    );
    if (!rep) {
      throw new Error(
        `no session_token_reply (${this.closeReason || "timeout"})`,
      );
    }
  }

  /** One echo round trip; returns the RTT in ms. */
  async echo(timeoutMs: number, service = "echo"): Promise<number> {
    const svc = this.doc?.services.find((s) => s.capability === service);
    if (!svc) throw new Error(`no '${service}' service in the PKI document`);
    const surbid = crypto.getRandomValues(new Uint8Array(16));
    const text = new TextEncoder().encode(`mixnet-probe ${hex(surbid)}`);
    const t0 = performance.now();
    await this.send({
      send_message: {
        id: crypto.getRandomValues(new Uint8Array(16)),
        with_surb: true,
        surbid,
        destination_id_hash: svc.destinationIdHash,
        recipient_queue_id: new TextEncoder().encode(svc.endpoint),
        payload: text,
      },
    });
    const deadline = Date.now() + timeoutMs;
    const same = (b: Any) =>
      b?.surbid instanceof Uint8Array && hex(b.surbid) === hex(surbid);
    for (;;) {
      const ev = await this.next(
        (e) =>
          (e.kind === "message_sent_event" ||
            e.kind === "message_reply_event") && same(e.body),
        deadline,
      );
      if (!ev) {
        throw new Error(
          `echo: no reply within ${timeoutMs} ms (${
            this.closeReason || "timeout"
          })`,
        );
      }
      if (ev.kind === "message_sent_event") {
        if (ev.body.err) throw new Error(`echo: send failed: ${ev.body.err}`);
        continue;
      }
      const p: Uint8Array = ev.body.payload;
      if (!p || hex(p.subarray(0, text.length)) !== hex(text)) {
        throw new Error("echo: reply payload mismatch");
      }
      return performance.now() - t0;
    }
  }

  /** Send a request carrying a fresh query_id and wait for the reply of `replyKind` with it. */
  async request(
    kind: string,
    body: Record<string, Any>,
    replyKind: string,
    timeoutMs: number,
  ): Promise<Any> {
    const queryId = crypto.getRandomValues(new Uint8Array(16));
    await this.send({ [kind]: { query_id: queryId, ...body } });
    const ev = await this.next(
      (e) =>
        e.kind === replyKind && e.body?.query_id instanceof Uint8Array &&
        hex(e.body.query_id) === hex(queryId),
      Date.now() + timeoutMs,
    );
    if (!ev) {
      throw new Error(
        `${kind}: no ${replyKind} within ${timeoutMs} ms (${
          this.closeReason || "timeout"
        })`,
      );
    }
    if (ev.body.error_code) {
      throw new Error(`${kind}: error_code ${ev.body.error_code}`);
    }
    return ev.body;
  }

  /**
   * Pigeonhole write then read of one box through a courier; returns both durations in ms.
   * With `confirm`, the write waits for a replica's own reply (the box is stored)
   * instead of the courier's ACK, which only says the courier took the envelope.
   */
  async pigeonhole(
    timeoutMs: number,
    confirm = false,
  ): Promise<{ writeMs: number; readMs: number }> {
    const kp = await this.request(
      "new_keypair",
      { seed: crypto.getRandomValues(new Uint8Array(32)) },
      "new_keypair_reply",
      30000,
    );
    const idx = kp.first_message_index as Uint8Array;
    const text = new TextEncoder().encode(
      `mixnet-probe pigeonhole ${Date.now()}`,
    );
    let t0 = performance.now();
    const w = await this.request(
      "encrypt_write",
      { plaintext: text, write_cap: kp.write_cap, message_box_index: idx },
      "encrypt_write_reply",
      60000,
    );
    await this.request(
      "start_resending_encrypted_message",
      {
        read_cap: null,
        write_cap: kp.write_cap,
        message_box_index: idx,
        envelope_descriptor: w.envelope_descriptor,
        message_ciphertext: w.message_ciphertext,
        envelope_hash: w.envelope_hash,
        no_idempotent_box_already_exists: confirm,
      },
      "start_resending_encrypted_message_reply",
      timeoutMs,
    );
    const writeMs = performance.now() - t0;
    t0 = performance.now();
    const r = await this.request(
      "encrypt_read",
      { read_cap: kp.read_cap, message_box_index: idx },
      "encrypt_read_reply",
      60000,
    );
    const got = await this.request(
      "start_resending_encrypted_message",
      {
        read_cap: kp.read_cap,
        write_cap: null,
        message_box_index: idx,
        envelope_descriptor: r.envelope_descriptor,
        message_ciphertext: r.message_ciphertext,
        envelope_hash: r.envelope_hash,
      },
      "start_resending_encrypted_message_reply",
      timeoutMs,
    );
    const readMs = performance.now() - t0;
    if (
      !(got.plaintext instanceof Uint8Array) || hex(got.plaintext) !== hex(text)
    ) {
      throw new Error("pigeonhole: read returned different plaintext");
    }
    return { writeMs, readMs };
  }

  async closeGracefully(): Promise<void> {
    try {
      await this.send({ thin_close: {} });
    } catch { /* ignore */ }
    this.#s.close();
  }

  close(): void {
    this.#s.close();
  }
}
