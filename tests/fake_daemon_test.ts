// Tests of the fake daemon (testing/), driven with raw frames only: no
// lib/client.ts, no lib/protocol.ts.
import assert from "node:assert/strict";
import { decodeCbor, decodeCborMaps, encodeCbor } from "../lib/cbor.ts";
import type { Conn } from "../lib/conn.ts";
import { ConnectionError } from "../lib/errors.ts";
import { encodeFrame, FrameDecoder } from "../lib/framing.ts";
import {
  buildPkiDocument,
  DEFAULT_PIGEONHOLE_GEOMETRY,
  DEFAULT_SPHINX_GEOMETRY,
  FakeDaemon,
  type FakeDaemonOptions,
  fakeIndexCounter,
  fakeKeypair,
  fakeNextIndex,
} from "../testing/mod.ts";
import { TcpDialer, UnixDialer, WebSocketDialer } from "../transport/mod.ts";
import { blake2b256 } from "../testing/_blake2b.ts";
import { RESPONSE_VARIANTS } from "../testing/_wire.ts";

type Body = Record<string, unknown>;

const QID = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
const TOKEN = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
const SEED = Uint8Array.from({ length: 32 }, (_, i) => i);
const utf8 = (s: string) => new TextEncoder().encode(s);

function qid(n: number): Uint8Array {
  const q = new Uint8Array(16);
  q[0] = n;
  return q;
}

/** A raw thin client: frames in, decoded envelopes out. */
class RawClient {
  readonly conn: Conn;
  readonly frames: Uint8Array[] = [];
  readonly chunkSizes: number[] = [];
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #pump: Promise<void>;
  #wake: (() => void) | null = null;
  eof = false;

  constructor(conn: Conn) {
    this.conn = conn;
    this.#writer = conn.writable.getWriter();
    const reader = conn.readable.getReader();
    const decoder = new FrameDecoder();
    this.#pump = (async () => {
      try {
        while (true) {
          const { value, done } = await reader.read();
          if (done) break;
          this.chunkSizes.push(value.length);
          this.frames.push(...decoder.push(value));
          this.#wake?.();
        }
      } catch {
        // closed
      } finally {
        this.eof = true;
        this.#wake?.();
      }
    })();
  }

  static async open(
    daemon: FakeDaemon,
    token: Uint8Array | null = TOKEN,
  ): Promise<RawClient> {
    const client = new RawClient(await daemon.dialer.dial());
    if (token !== null) {
      await client.expect("connection_status_event");
      await client.expect("new_pki_document_event");
      await client.send({
        "session_token": { "client_instance_token": token },
      });
      await client.expect("session_token_reply");
    }
    return client;
  }

  send(request: unknown): Promise<void> {
    return this.#writer.write(encodeFrame(encodeCbor(request)));
  }

  sendBytes(bytes: Uint8Array): Promise<void> {
    return this.#writer.write(bytes);
  }

  async nextRaw(timeoutMs = 10_000): Promise<Uint8Array> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length === 0) {
      if (this.eof) throw new Error("connection closed");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("timed out waiting for a frame");
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
      this.#wake = null;
    }
    return this.frames.shift() as Uint8Array;
  }

  async next(timeoutMs = 10_000): Promise<[string, Body, Uint8Array]> {
    const raw = await this.nextRaw(timeoutMs);
    const envelope = decodeCbor(raw) as Body;
    const live = Object.entries(envelope).filter(([, v]) => v !== null);
    assert.equal(live.length, 1, "exactly one non-null variant");
    const [variant, body] = live[0] as [string, Body];
    return [variant, body, raw];
  }

  async expect(variant: string, timeoutMs = 10_000): Promise<Body> {
    const [got, body] = await this.next(timeoutMs);
    assert.equal(got, variant);
    return body;
  }

  async nothingWithin(ms = 40): Promise<void> {
    await new Promise((r) => setTimeout(r, ms));
    assert.equal(this.frames.length, 0, "no frame expected");
  }

  async closedWithin(ms = 1000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.eof && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.ok(this.eof, "connection should be closed");
  }

  async close(): Promise<void> {
    this.#writer.releaseLock();
    this.conn.close();
    await this.#pump;
  }
}

async function withDaemon(
  options: FakeDaemonOptions,
  fn: (daemon: FakeDaemon) => Promise<void>,
): Promise<void> {
  await using daemon = await FakeDaemon.start({
    transport: "memory",
    ...options,
  });
  await fn(daemon);
}

async function keypair(client: RawClient, seed = SEED) {
  await client.send({ "new_keypair": { "query_id": QID, "seed": seed } });
  const r = await client.expect("new_keypair_reply");
  return {
    writeCap: r["write_cap"] as Uint8Array,
    readCap: r["read_cap"] as Uint8Array,
    index: r["first_message_index"] as Uint8Array,
  };
}

async function encrypt(
  client: RawClient,
  kind: "read" | "write",
  cap: Uint8Array,
  index: Uint8Array,
  plaintext?: Uint8Array | null,
): Promise<Body> {
  const body: Body = kind === "read"
    ? { "query_id": QID, "read_cap": cap, "message_box_index": index }
    : {
      "query_id": QID,
      "plaintext": plaintext,
      "write_cap": cap,
      "message_box_index": index,
    };
  await client.send({ [`encrypt_${kind}`]: body });
  return await client.expect(`encrypt_${kind}_reply`);
}

function startBody(
  kind: "read" | "write",
  cap: Uint8Array,
  index: Uint8Array,
  enc: Body,
  extra: Body = {},
  queryId: Uint8Array = QID,
): Body {
  return {
    "start_resending_encrypted_message": {
      "query_id": queryId,
      "read_cap": kind === "read" ? cap : null,
      "write_cap": kind === "write" ? cap : null,
      "message_box_index": index,
      "envelope_descriptor": enc["envelope_descriptor"],
      "message_ciphertext": enc["message_ciphertext"],
      "envelope_hash": enc["envelope_hash"],
      ...extra,
    },
  };
}

async function writeBox(
  client: RawClient,
  writeCap: Uint8Array,
  index: Uint8Array,
  plaintext: Uint8Array,
  extra: Body = {},
): Promise<Body> {
  const enc = await encrypt(client, "write", writeCap, index, plaintext);
  await client.send(startBody("write", writeCap, index, enc, extra));
  return await client.expect("start_resending_encrypted_message_reply");
}

async function readBox(
  client: RawClient,
  readCap: Uint8Array,
  index: Uint8Array,
  extra: Body = {},
): Promise<Body> {
  const enc = await encrypt(client, "read", readCap, index);
  await client.send(startBody("read", readCap, index, enc, extra));
  return await client.expect("start_resending_encrypted_message_reply");
}

const COURIER = buildPkiDocument().services.find((s) =>
  s.capability === "courier"
);
const ECHO = buildPkiDocument().services.find((s) => s.capability === "echo");

// ---------------------------------------------------------------------------
// Handshake and encoding

Deno.test("FakeDaemon sends status then document first, in Go full form", async () => {
  await withDaemon({ instanceToken: TOKEN }, async (daemon) => {
    const client = new RawClient(await daemon.dialer.dial());
    const [v1, status, raw1] = await client.next();
    assert.equal(v1, "connection_status_event");
    const envelope = decodeCbor(raw1) as Body;
    assert.deepEqual(Object.keys(envelope), RESPONSE_VARIANTS);
    assert.equal(raw1[0], 0xb8);
    assert.equal(raw1[1], 0x19);
    assert.equal(status["is_connected"], true);
    assert.equal(status["err"], null);
    assert.deepEqual(status["instance_token"], TOKEN);
    assert.deepEqual(status["sphinx_geometry"], { ...DEFAULT_SPHINX_GEOMETRY });
    assert.deepEqual(status["pigeonhole_geometry"], {
      ...DEFAULT_PIGEONHOLE_GEOMETRY,
    });
    const doc = await client.expect("new_pki_document_event");
    const parsed = decodeCborMaps(doc["payload"] as Uint8Array) as Map<
      string,
      unknown
    >;
    assert.equal(parsed.get("Epoch"), 120000);
    const nodes = parsed.get("ServiceNodes") as Uint8Array[];
    const node = decodeCborMaps(nodes[0] as Uint8Array) as Map<string, unknown>;
    const kaetzchen = node.get("Kaetzchen") as Map<
      string,
      Map<string, unknown>
    >;
    assert.equal(kaetzchen.get("echo")?.get("endpoint"), "+echo");
    assert.equal(kaetzchen.get("courier")?.get("endpoint"), "courier");
    const mixKeys = node.get("MixKeys") as Map<unknown, unknown>;
    assert.ok([...mixKeys.keys()].every((k) => typeof k === "number"));
    const commits = parsed.get("SharedRandomCommit") as Map<unknown, unknown>;
    assert.ok([...commits.keys()].every((k) => k instanceof Uint8Array));
    assert.ok(Array.isArray(parsed.get("Topology")));
    assert.ok(
      (parsed.get("StorageReplicas") as unknown[])[0] instanceof Map,
    );
    await client.close();
  });
});

Deno.test("FakeDaemon with goFullForm false sends single-key envelopes", async () => {
  await withDaemon({ goFullForm: false }, async (daemon) => {
    const client = new RawClient(await daemon.dialer.dial());
    const raw = await client.nextRaw();
    assert.deepEqual(Object.keys(decodeCbor(raw) as Body), [
      "connection_status_event",
    ]);
    await client.close();
  });
});

for (const transport of ["tcp", "unix", "ws"] as const) {
  Deno.test(`FakeDaemon serves a full exchange over ${transport}`, async () => {
    await using daemon = await FakeDaemon.start({ transport });
    assert.ok(daemon.dialer.address.startsWith(`${transport} `));
    const client = await RawClient.open(daemon);
    const pair = await keypair(client);
    assert.equal(pair.writeCap.length, 168);
    await client.send({ "thin_close": {} });
    await client.closedWithin();
    await client.close();
    await daemon.waitForConnections(0);
  });
}

Deno.test("FakeDaemon over ws sends each frame as two binary messages and closes on text", async () => {
  await using daemon = await FakeDaemon.start({ transport: "ws" });
  const ws = new WebSocket(daemon.address);
  ws.binaryType = "arraybuffer";
  const messages: Uint8Array[] = [];
  const closed = new Promise<number>((resolve) =>
    ws.addEventListener("close", (e) => resolve(e.code))
  );
  ws.addEventListener("message", (e) => {
    messages.push(new Uint8Array(e.data as ArrayBuffer));
    if (messages.length === 4) ws.send("hello");
  });
  assert.equal(await closed, 1003);
  assert.equal(messages[0]?.length, 4);
  const len = new DataView((messages[0] as Uint8Array).buffer).getUint32(0);
  assert.equal(messages[1]?.length, len);
  assert.equal(messages[2]?.length, 4);
});

Deno.test("FakeDaemon.setAccepting(false) refuses tcp dials until re-enabled", async () => {
  await using daemon = await FakeDaemon.start({ transport: "tcp" });
  await daemon.setAccepting(false);
  await assert.rejects(daemon.dialer.dial(), ConnectionError);
  await daemon.setAccepting(true);
  const client = await RawClient.open(daemon);
  await client.close();
});

Deno.test("FakeDaemon dials its socket listeners with the dialers of transport/", async () => {
  const cases = [
    ["tcp", TcpDialer],
    ["unix", UnixDialer],
    ["ws", WebSocketDialer],
  ] as const;
  for (const [transport, dialer] of cases) {
    await using daemon = await FakeDaemon.start({ transport });
    assert.ok(daemon.dialer instanceof dialer, transport);
    const conn = await daemon.dialer.dial();
    assert.equal(conn.remoteAddress, daemon.dialer.address);
    conn.close();
    await daemon.waitForConnections(0);
  }
});

Deno.test("FakeDaemon.dialer names the refusal of a stopped tcp listener", async () => {
  await using daemon = await FakeDaemon.start({ transport: "tcp" });
  await daemon.setAccepting(false);
  await assert.rejects(daemon.dialer.dial(), {
    name: "ConnectionError",
    message:
      `Cannot dial daemon at 'tcp ${daemon.address}': Connection refused`,
  });
});

Deno.test("FakeDaemon.getBox() and putBox() check cap and index lengths", async () => {
  await withDaemon({}, (daemon) => {
    const pair = fakeKeypair(SEED);
    assert.throws(
      () => daemon.getBox(new Uint8Array(100), pair.firstMessageIndex),
      {
        name: "RangeError",
        message: "Cannot address box: cap length 100 is neither 168 nor 136",
      },
    );
    assert.throws(() => daemon.getBox(pair.readCap, new Uint8Array(3)), {
      name: "RangeError",
      message: "Cannot address box: index length 3 is not 104",
    });
    assert.throws(
      () => daemon.putBox(pair.readCap, pair.firstMessageIndex, SEED),
      {
        name: "RangeError",
        message: "Cannot write box: write cap length 136 is not 168",
      },
    );
    assert.equal(
      daemon.getBox(pair.writeCap, pair.firstMessageIndex),
      undefined,
    );
    return Promise.resolve();
  });
});

Deno.test("FakeDaemon.setAccepting(false) refuses memory dials", async () => {
  await withDaemon({}, async (daemon) => {
    await daemon.setAccepting(false);
    await assert.rejects(daemon.dialer.dial(), ConnectionError);
  });
});

// ---------------------------------------------------------------------------
// Sessions

Deno.test("FakeDaemon resumes a session by token and forgets it on thin_close", async () => {
  await withDaemon({}, async (daemon) => {
    const a = new RawClient(await daemon.dialer.dial());
    await a.expect("connection_status_event");
    await a.expect("new_pki_document_event");
    await a.send({ "session_token": { "client_instance_token": TOKEN } });
    const first = await a.expect("session_token_reply");
    assert.equal(first["resumed"], false);
    await a.close();
    await daemon.waitForConnections(0);
    assert.ok(daemon.hasSession(TOKEN));

    const b = new RawClient(await daemon.dialer.dial());
    await b.expect("connection_status_event");
    await b.expect("new_pki_document_event");
    await b.send({ "session_token": { "client_instance_token": TOKEN } });
    const second = await b.expect("session_token_reply");
    assert.equal(second["resumed"], true);
    assert.deepEqual(second["app_id"], first["app_id"]);
    await b.send({ "thin_close": {} });
    await b.closedWithin();
    await b.close();
    assert.equal(daemon.hasSession(TOKEN), false);

    const c = await RawClient.open(daemon, null);
    await c.expect("connection_status_event");
    await c.expect("new_pki_document_event");
    await c.send({ "session_token": { "client_instance_token": TOKEN } });
    assert.equal((await c.expect("session_token_reply"))["resumed"], false);
    await c.close();
  });
});

Deno.test("FakeDaemon forgets a session after the grace period", async () => {
  await withDaemon({ gracePeriodMs: 20 }, async (daemon) => {
    const a = await RawClient.open(daemon);
    await a.close();
    await daemon.waitForConnections(0);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(daemon.hasSession(TOKEN), false);
  });
});

Deno.test("FakeDaemon serves requests sent before the session token", async () => {
  await withDaemon({}, async (daemon) => {
    const client = await RawClient.open(daemon, null);
    await client.expect("connection_status_event");
    await client.expect("new_pki_document_event");
    await client.send({ "get_directory_authorities": { "query_id": QID } });
    const r = await client.expect("get_directory_authorities_reply");
    assert.equal((r["authorities"] as unknown[]).length, 3);
    await client.close();
  });
});

Deno.test("FakeDaemon flushes queued legacy replies before the session token reply", async () => {
  await withDaemon({ maxQueuedReplies: 2 }, async (daemon) => {
    const a = await RawClient.open(daemon);
    await a.close();
    await daemon.waitForConnections(0);
    for (let i = 1; i <= 3; i++) {
      assert.ok(daemon.emitToSession(TOKEN, {
        "message_reply_event": { "surbid": qid(i), "payload": utf8("x") },
      }));
    }
    assert.ok(
      daemon.emitToSession(TOKEN, { "new_pki_document_event": {} }),
    );
    const b = new RawClient(await daemon.dialer.dial());
    await b.expect("connection_status_event");
    await b.expect("new_pki_document_event");
    await b.send({ "session_token": { "client_instance_token": TOKEN } });
    assert.deepEqual((await b.expect("message_reply_event"))["surbid"], qid(1));
    assert.deepEqual((await b.expect("message_reply_event"))["surbid"], qid(2));
    assert.equal((await b.expect("session_token_reply"))["resumed"], true);
    await b.nothingWithin();
    await b.close();
  });
});

Deno.test("FakeDaemon queues an echo reply produced while the client is away", async () => {
  await withDaemon({ echoDelayMs: 40 }, async (daemon) => {
    const a = await RawClient.open(daemon);
    await a.send({
      "send_message": {
        "id": null,
        "with_surb": true,
        "surbid": QID,
        "destination_id_hash": ECHO?.destinationIdHash,
        "recipient_queue_id": utf8("+echo"),
        "payload": utf8("ping"),
      },
    });
    await a.expect("message_sent_event");
    await a.close();
    await daemon.waitForConnections(0);
    await new Promise((r) => setTimeout(r, 60));
    const b = new RawClient(await daemon.dialer.dial());
    await b.expect("connection_status_event");
    await b.expect("new_pki_document_event");
    await b.send({ "session_token": { "client_instance_token": TOKEN } });
    const reply = await b.expect("message_reply_event");
    assert.deepEqual(
      (reply["payload"] as Uint8Array).subarray(0, 4),
      utf8("ping"),
    );
    await b.expect("session_token_reply");
    await b.close();
  });
});

Deno.test("FakeDaemon drops a Pigeonhole reply produced while the client is away", async () => {
  await withDaemon({}, async (daemon) => {
    const a = await RawClient.open(daemon);
    const pair = await keypair(a);
    const enc = await encrypt(a, "read", pair.readCap, pair.index);
    await a.send(startBody("read", pair.readCap, pair.index, enc));
    await daemon.waitForRequest("start_resending_encrypted_message");
    await a.nothingWithin(20);
    await a.close();
    await daemon.waitForConnections(0);
    daemon.putBox(pair.writeCap, pair.index, utf8("late"));
    const b = await RawClient.open(daemon);
    await b.nothingWithin();
    // The stranded operation is still registered: cancelling it answers twice.
    await b.send({
      "cancel_resending_encrypted_message": {
        "query_id": qid(9),
        "envelope_hash": enc["envelope_hash"],
      },
    });
    const cancelled = await b.expect("start_resending_encrypted_message_reply");
    assert.equal(cancelled["error_code"], 24);
    await b.expect("cancel_resending_encrypted_message_reply");
    await b.close();
  });
});

Deno.test("FakeDaemon.restart() changes the instance token and forgets sessions", async () => {
  await withDaemon({}, async (daemon) => {
    const a = await RawClient.open(daemon);
    const before = daemon.instanceToken;
    await daemon.restart({ graceful: true });
    await a.expect("shutdown_event");
    await a.closedWithin();
    await a.close();
    assert.notDeepEqual(daemon.instanceToken, before);
    assert.equal(daemon.hasSession(TOKEN), false);
    const b = new RawClient(await daemon.dialer.dial());
    const status = await b.expect("connection_status_event");
    assert.deepEqual(status["instance_token"], daemon.instanceToken);
    await b.expect("new_pki_document_event");
    await b.send({ "session_token": { "client_instance_token": TOKEN } });
    assert.equal((await b.expect("session_token_reply"))["resumed"], false);
    await b.close();
  });
});

Deno.test("FakeDaemon.drop() closes abruptly and keeps the session", async () => {
  await withDaemon({}, async (daemon) => {
    const a = await RawClient.open(daemon);
    daemon.drop();
    await a.closedWithin();
    await a.close();
    assert.ok(daemon.hasSession(TOKEN));
  });
});

// ---------------------------------------------------------------------------
// Decoding rules

Deno.test("FakeDaemon closes the connection on undecodable or mistyped frames", async () => {
  const bad: [string, Uint8Array][] = [
    ["garbage", encodeFrame(new Uint8Array([0xff, 0x00]))],
    ["empty body", encodeFrame(new Uint8Array())],
    ["array", encodeFrame(encodeCbor([1, 2]))],
    [
      "short cap",
      encodeFrame(encodeCbor({
        "encrypt_read": {
          "query_id": QID,
          "read_cap": new Uint8Array(135),
          "message_box_index": new Uint8Array(104),
        },
      })),
    ],
    [
      "empty index",
      encodeFrame(encodeCbor({
        "next_message_box_index": {
          "query_id": QID,
          "message_box_index": new Uint8Array(),
        },
      })),
    ],
    [
      "text for bytes",
      encodeFrame(encodeCbor({
        "new_keypair": { "query_id": "abc", "seed": SEED },
      })),
    ],
    [
      "int for bool",
      encodeFrame(encodeCbor({
        "create_courier_envelopes_from_payload": { "is_start": 1 },
      })),
    ],
    [
      "negative uint",
      encodeFrame(encodeCbor({
        "get_pki_document": { "query_id": QID, "epoch": -1 },
      })),
    ],
    [
      "uint8 overflow",
      encodeFrame(encodeCbor({
        "start_resending_encrypted_message": { "reply_index": 256 },
      })),
    ],
    ["non-map variant", encodeFrame(encodeCbor({ "thin_close": true }))],
    [
      "bad field in lower-priority variant",
      encodeFrame(encodeCbor({
        "new_keypair": { "query_id": QID, "seed": SEED },
        "encrypt_read": { "read_cap": new Uint8Array(3) },
      })),
    ],
  ];
  await withDaemon({}, async (daemon) => {
    for (const [name, frame] of bad) {
      const client = await RawClient.open(daemon);
      await client.sendBytes(frame);
      await client.closedWithin();
      assert.equal(client.frames.length, 0, name);
      const rec = await daemon.waitForRequest("invalid");
      assert.ok(rec.error !== undefined, name);
      await client.close();
    }
    assert.ok(daemon.hasSession(TOKEN), "the session survives decode errors");
  });
});

Deno.test("FakeDaemon closes on an oversize length prefix without reading the body", async () => {
  await withDaemon({}, async (daemon) => {
    const client = await RawClient.open(daemon);
    const prefix = new Uint8Array(4);
    new DataView(prefix.buffer).setUint32(0, 41_943_041);
    await client.sendBytes(prefix);
    await client.closedWithin();
    await client.close();
  });
});

Deno.test("FakeDaemon pads short and truncates long query ids, keeps null", async () => {
  await withDaemon({}, async (daemon) => {
    const client = await RawClient.open(daemon);
    const cases: [unknown, unknown][] = [
      [
        new Uint8Array([1, 2, 3]),
        Uint8Array.from([1, 2, 3, ...new Array(13).fill(0)]),
      ],
      [new Uint8Array(20).fill(7), new Uint8Array(16).fill(7)],
      [null, null],
    ];
    for (const [sent, echoed] of cases) {
      await client.send({ "get_directory_authorities": { "query_id": sent } });
      const r = await client.expect("get_directory_authorities_reply");
      assert.deepEqual(r["query_id"], echoed);
    }
    await client.close();
  });
});

Deno.test("FakeDaemon ignores empty requests and unknown keys, matches keys case-insensitively", async () => {
  await withDaemon({}, async (daemon) => {
    const client = await RawClient.open(daemon);
    await client.send({ "thin_close": null });
    await client.send({ "no_such_request": { "x": 1 } });
    await client.nothingWithin();
    assert.equal((await daemon.waitForRequest("empty")).kind, "empty");
    await client.send({
      "NEW_KEYPAIR": { "Query_Id": QID, "seed": SEED, "extra": [1, 2] },
    });
    const r = await client.expect("new_keypair_reply");
    assert.deepEqual(r["query_id"], QID);
    assert.equal(r["error_code"], 0);
    await client.close();
  });
});

Deno.test("FakeDaemon acts on the highest-priority variant of a multi-variant frame", async () => {
  await withDaemon({}, async (daemon) => {
    const client = await RawClient.open(daemon);
    await client.send({
      "get_pki_document": { "query_id": QID, "epoch": 0 },
      "new_keypair": { "query_id": QID, "seed": SEED },
    });
    await client.expect("new_keypair_reply");
    await client.nothingWithin();
    await client.close();
  });
});

Deno.test("FakeDaemon accepts the Go client's 21-key request form", async () => {
  await withDaemon({}, async (daemon) => {
    const client = await RawClient.open(daemon, null);
    await client.expect("connection_status_event");
    await client.expect("new_pki_document_event");
    const frame = await Deno.readFile(
      new URL(
        "../testdata/frames/a05_session_token_go_form.body.cbor",
        import.meta.url,
      ),
    );
    await client.sendBytes(encodeFrame(frame));
    assert.equal(
      (await client.expect("session_token_reply"))["resumed"],
      false,
    );
    await client.close();
  });
});

// ---------------------------------------------------------------------------
// Local Pigeonhole requests

Deno.test("FakeDaemon new_keypair is deterministic with bigint counters", async () => {
  await withDaemon({}, async (daemon) => {
    const client = await RawClient.open(daemon);
    const a = await keypair(client);
    const b = await keypair(client);
    assert.deepEqual(a, b);
    assert.equal(a.writeCap.length, 168);
    assert.equal(a.readCap.length, 136);
    assert.equal(a.index.length, 104);
    assert.deepEqual(a.writeCap.subarray(64), a.index);
    assert.deepEqual(a.readCap.subarray(32), a.index);
    assert.deepEqual(a.writeCap.subarray(32, 64), a.readCap.subarray(0, 32));
    assert.deepEqual(fakeKeypair(SEED).writeCap, a.writeCap);
    const other = await keypair(client, new Uint8Array(32).fill(9));
    assert.notDeepEqual(other.writeCap, a.writeCap);

    await client.send({
      "get_message_box_index_counter": {
        "query_id": QID,
        "message_box_index": a.index,
      },
    });
    const counter =
      (await client.expect("get_message_box_index_counter_reply"))[
        "counter"
      ];
    assert.equal(typeof counter, "bigint");
    assert.ok((counter as bigint) >= 2n ** 53n);
    assert.equal(counter, fakeIndexCounter(a.index));

    await client.send({
      "next_message_box_index": {
        "query_id": QID,
        "message_box_index": a.index,
      },
    });
    const next = (await client.expect("next_message_box_index_reply"))[
      "next_message_box_index"
    ] as Uint8Array;
    assert.equal(fakeIndexCounter(next), (counter as bigint) + 1n);
    assert.deepEqual(next.subarray(8), a.index.subarray(8));
    assert.deepEqual(next, fakeNextIndex(a.index));
    await client.close();
  });
});

// docs/protocol.md#request-validation
Deno.test("FakeDaemon answers the validation errors in error form", async () => {
  await withDaemon({}, async (daemon) => {
    const client = await RawClient.open(daemon);
    const pair = fakeKeypair(SEED);
    const cases: [Body, string, Body][] = [
      [
        { "new_keypair": { "query_id": QID, "seed": new Uint8Array(31) } },
        "new_keypair_reply",
        {
          "query_id": QID,
          "write_cap": null,
          "read_cap": null,
          "first_message_index": null,
          "error_code": 3,
        },
      ],
      [
        { "new_keypair": { "query_id": QID, "seed": null } },
        "new_keypair_reply",
        {
          "query_id": QID,
          "write_cap": null,
          "read_cap": null,
          "first_message_index": null,
          "error_code": 3,
        },
      ],
      [
        {
          "encrypt_read": {
            "query_id": QID,
            "read_cap": null,
            "message_box_index": pair.firstMessageIndex,
          },
        },
        "encrypt_read_reply",
        {
          "query_id": QID,
          "message_ciphertext": null,
          "envelope_descriptor": null,
          "envelope_hash": null,
          "next_message_box_index": null,
          "error_code": 3,
        },
      ],
      [
        {
          "encrypt_write": {
            "query_id": QID,
            "plaintext": null,
            "write_cap": pair.writeCap,
            "message_box_index": pair.firstMessageIndex,
          },
        },
        "encrypt_write_reply",
        {
          "query_id": QID,
          "message_ciphertext": null,
          "envelope_descriptor": null,
          "envelope_hash": null,
          "next_message_box_index": null,
          "error_code": 3,
        },
      ],
      [
        {
          "encrypt_write": {
            "query_id": QID,
            "plaintext": new Uint8Array(1550),
            "write_cap": pair.writeCap,
            "message_box_index": pair.firstMessageIndex,
          },
        },
        "encrypt_write_reply",
        {
          "query_id": QID,
          "message_ciphertext": null,
          "envelope_descriptor": null,
          "envelope_hash": null,
          "next_message_box_index": null,
          "error_code": 3,
        },
      ],
      [
        {
          "cancel_resending_encrypted_message": {
            "query_id": QID,
            "envelope_hash": null,
          },
        },
        "cancel_resending_encrypted_message_reply",
        { "query_id": QID, "error_code": 3 },
      ],
      [
        {
          "cancel_resending_copy_command": {
            "query_id": null,
            "write_cap_hash": new Uint8Array(32),
          },
        },
        "cancel_resending_copy_command_reply",
        { "query_id": null, "error_code": 3 },
      ],
      [
        {
          "next_message_box_index": {
            "query_id": QID,
            "message_box_index": null,
          },
        },
        "next_message_box_index_reply",
        { "query_id": QID, "next_message_box_index": null, "error_code": 3 },
      ],
      [
        { "get_message_box_index_counter": { "query_id": QID } },
        "get_message_box_index_counter_reply",
        { "query_id": QID, "counter": 0, "error_code": 3 },
      ],
      [
        { "get_pki_document": { "query_id": QID, "epoch": 5 } },
        "get_pki_document_reply",
        { "query_id": QID, "payload": null, "epoch": 5, "error_code": 10 },
      ],
      [
        {
          "create_courier_envelopes_from_payload": {
            "query_id": QID,
            "payload": utf8("x"),
          },
        },
        "create_courier_envelopes_from_payload_reply",
        {
          "query_id": QID,
          "envelopes": null,
          "next_dest_index": null,
          "error_code": 3,
        },
      ],
      [
        {
          "create_courier_envelopes_from_multi_payload": {
            "query_id": QID,
            "destinations": [],
          },
        },
        "create_courier_envelopes_from_multi_payload_reply",
        {
          "query_id": QID,
          "envelopes": null,
          "buffer": null,
          "next_dest_indices": null,
          "error_code": 3,
        },
      ],
      [
        {
          "create_courier_envelopes_from_multi_payload": {
            "query_id": QID,
            "destinations": [{
              "payload": utf8("x"),
              "write_cap": pair.writeCap,
              "start_index": null,
            }],
          },
        },
        "create_courier_envelopes_from_multi_payload_reply",
        {
          "query_id": QID,
          "envelopes": null,
          "buffer": null,
          "next_dest_indices": null,
          "error_code": 3,
        },
      ],
      [
        {
          "create_courier_envelopes_from_tombstone_range": {
            "query_id": QID,
            "max_count": 3,
          },
        },
        "create_courier_envelopes_from_tombstone_range_reply",
        {
          "query_id": QID,
          "envelopes": null,
          "buffer": null,
          "next_dest_index": null,
          "error_code": 3,
        },
      ],
      [
        {
          "create_courier_envelopes_from_tombstone_range": {
            "query_id": QID,
            "dest_write_cap": pair.writeCap,
            "dest_start_index": pair.firstMessageIndex,
            "max_count": 0,
          },
        },
        "create_courier_envelopes_from_tombstone_range_reply",
        {
          "query_id": QID,
          "envelopes": null,
          "buffer": null,
          "next_dest_index": pair.firstMessageIndex,
          "error_code": 0,
        },
      ],
      [
        {
          "voucher_mint": {
            "query_id": QID,
            "message_write_cap": new Uint8Array(5),
            "display_name": "a",
          },
        },
        "voucher_mint_reply",
        {
          "query_id": QID,
          "voucher": null,
          "voucher_payload": null,
          "voucher_write_cap": null,
          "voucher_read_cap": null,
          "voucher_secret_key": null,
          "voucher_public_key": null,
          "error_code": 3,
        },
      ],
    ];
    for (const [request, variant, expected] of cases) {
      await client.send(request);
      const [got, body] = await client.next();
      assert.equal(got, variant);
      assert.deepEqual(body, expected, variant);
    }
    await client.close();
  });
});

Deno.test("FakeDaemon without a PKI document fails encrypt with 4 and get_pki_document with 10", async () => {
  await withDaemon(
    { pkiDocument: null, directoryAuthorities: null },
    async (daemon) => {
      const client = new RawClient(await daemon.dialer.dial());
      await client.expect("connection_status_event");
      assert.equal(
        (await client.expect("new_pki_document_event"))["payload"],
        null,
      );
      const pair = fakeKeypair(SEED);
      const r = await encrypt(
        client,
        "read",
        pair.readCap,
        pair.firstMessageIndex,
      );
      assert.equal(r["error_code"], 4);
      await client.send({
        "get_pki_document": { "query_id": QID, "epoch": 0 },
      });
      const doc = await client.expect("get_pki_document_reply");
      assert.equal(doc["error_code"], 10);
      assert.equal(doc["epoch"], 0);
      await client.send({ "get_directory_authorities": { "query_id": QID } });
      const auth = await client.expect("get_directory_authorities_reply");
      assert.deepEqual(auth, {
        "query_id": QID,
        "authorities": null,
        "error_code": 10,
      });
      await client.close();
    },
  );
});

Deno.test("FakeDaemon returns the signed certificate for the current and previous epoch", async () => {
  await withDaemon({}, async (daemon) => {
    const client = await RawClient.open(daemon);
    const first = daemon.pkiDocument;
    daemon.setPkiDocument(buildPkiDocument({ epoch: 120001 }));
    const pushed = await client.expect("new_pki_document_event");
    const pushedDoc = decodeCborMaps(pushed["payload"] as Uint8Array) as Map<
      string,
      unknown
    >;
    assert.equal(pushedDoc.get("Epoch"), 120001);
    await client.send({ "get_pki_document": { "query_id": QID, "epoch": 0 } });
    const current = await client.expect("get_pki_document_reply");
    assert.equal(current["epoch"], 120001);
    const cert = decodeCborMaps(current["payload"] as Uint8Array) as Map<
      string,
      unknown
    >;
    assert.equal(cert.get("Expiration"), 120006);
    assert.deepEqual(cert.get("Certified"), daemon.pkiDocument?.payload);
    const sigs = cert.get("Signatures") as Map<
      Uint8Array,
      Map<string, unknown>
    >;
    assert.equal(sigs.size, 3);
    await client.send({
      "get_pki_document": { "query_id": QID, "epoch": 120000 },
    });
    const previous = await client.expect("get_pki_document_reply");
    assert.deepEqual(previous["payload"], first?.certificate);
    await client.close();
  });
});

// ---------------------------------------------------------------------------
// ARQ, box store, cancellation

Deno.test("FakeDaemon stores writes and answers reads with courier fields", async () => {
  await withDaemon({}, async (daemon) => {
    const client = await RawClient.open(daemon);
    const pair = await keypair(client);
    const w = await writeBox(client, pair.writeCap, pair.index, utf8("hello"));
    assert.deepEqual(w, {
      "query_id": QID,
      "plaintext": null,
      "error_code": 0,
      "courier_identity_hash": COURIER?.destinationIdHash,
      "courier_queue_id": utf8("courier"),
    });
    const r = await readBox(client, pair.readCap, pair.index);
    assert.deepEqual(r["plaintext"], utf8("hello"));
    assert.equal(r["error_code"], 0);
    assert.deepEqual(r["courier_queue_id"], utf8("courier"));
    assert.deepEqual(daemon.getBox(pair.readCap, pair.index), {
      tombstone: false,
      plaintext: utf8("hello"),
    });
    await client.close();
  });
});

Deno.test("FakeDaemon pads read and write ciphertexts to the same length", async () => {
  await withDaemon({}, async (daemon) => {
    const client = await RawClient.open(daemon);
    const pair = await keypair(client);
    const r = await encrypt(client, "read", pair.readCap, pair.index);
    const w = await encrypt(
      client,
      "write",
      pair.writeCap,
      pair.index,
      utf8("x"),
    );
    const t = await encrypt(
      client,
      "write",
      pair.writeCap,
      pair.index,
      new Uint8Array(),
    );
    const len = (b: Body) => (b["message_ciphertext"] as Uint8Array).length;
    assert.equal(len(r), 2000);
    assert.equal(len(w), 2000);
    assert.equal(len(t), 2000);
    assert.equal((r["envelope_hash"] as Uint8Array).length, 32);
    assert.notDeepEqual(w["envelope_hash"], t["envelope_hash"]);
    assert.deepEqual(r["next_message_box_index"], fakeNextIndex(pair.index));
    await client.close();
  });
});

Deno.test("FakeDaemon boxes are write-once; the flag turns a different rewrite into 10", async () => {
  await withDaemon({}, async (daemon) => {
    const client = await RawClient.open(daemon);
    const pair = await keypair(client);
    const flag = { "no_idempotent_box_already_exists": true };
    assert.equal(
      (await writeBox(client, pair.writeCap, pair.index, utf8("a")))[
        "error_code"
      ],
      0,
    );
    assert.equal(
      (await writeBox(client, pair.writeCap, pair.index, utf8("b")))[
        "error_code"
      ],
      0,
    );
    assert.equal(
      (await writeBox(client, pair.writeCap, pair.index, utf8("a"), flag))[
        "error_code"
      ],
      0,
    );
    const refused = await writeBox(
      client,
      pair.writeCap,
      pair.index,
      utf8("b"),
      flag,
    );
    assert.equal(refused["error_code"], 10);
    assert.deepEqual(refused["courier_queue_id"], utf8("courier"));
    assert.deepEqual(
      (await readBox(client, pair.readCap, pair.index))["plaintext"],
      utf8("a"),
    );
    await client.close();
  });
});

Deno.test("FakeDaemon tombstones give 11 and unwritten boxes give 1 with no-retry", async () => {
  await withDaemon({}, async (daemon) => {
    const client = await RawClient.open(daemon);
    const pair = await keypair(client);
    const noRetry = { "no_retry_on_box_id_not_found": true };
    const missing = await readBox(client, pair.readCap, pair.index, noRetry);
    assert.equal(missing["error_code"], 1);
    assert.equal(missing["plaintext"], null);
    await writeBox(client, pair.writeCap, pair.index, utf8("a"));
    await writeBox(client, pair.writeCap, pair.index, new Uint8Array());
    const tomb = await readBox(client, pair.readCap, pair.index);
    assert.equal(tomb["error_code"], 11);
    assert.deepEqual(daemon.getBox(pair.writeCap, pair.index), {
      tombstone: true,
    });
    await client.close();
  });
});

Deno.test("FakeDaemon holds a read until the box is written", async () => {
  await withDaemon({}, async (daemon) => {
    const client = await RawClient.open(daemon);
    const pair = await keypair(client);
    const enc = await encrypt(client, "read", pair.readCap, pair.index);
    await client.send(startBody("read", pair.readCap, pair.index, enc));
    await client.nothingWithin(30);
    await writeBox(client, pair.writeCap, pair.index, utf8("later"));
    const r = await client.expect("start_resending_encrypted_message_reply");
    assert.deepEqual(r["plaintext"], utf8("later"));
    await client.close();
  });
});

Deno.test("FakeDaemon read with a mismatched index or a foreign ciphertext fails", async () => {
  await withDaemon({}, async (daemon) => {
    const client = await RawClient.open(daemon);
    const pair = await keypair(client);
    const enc = await encrypt(client, "read", pair.readCap, pair.index);
    await client.send(
      startBody(
        "read",
        pair.readCap,
        fakeNextIndex(pair.index) as Uint8Array,
        enc,
      ),
    );
    assert.equal(
      (await client.expect("start_resending_encrypted_message_reply"))[
        "error_code"
      ],
      23,
    );
    await client.send(startBody("read", pair.readCap, pair.index, {
      ...enc,
      "message_ciphertext": new Uint8Array(2000),
    }));
    assert.equal(
      (await client.expect("start_resending_encrypted_message_reply"))[
        "error_code"
      ],
      22,
    );
    await client.close();
  });
});

Deno.test("FakeDaemon start validation errors carry null courier fields", async () => {
  await withDaemon({}, async (daemon) => {
    const client = await RawClient.open(daemon);
    const pair = await keypair(client);
    const enc = await encrypt(
      client,
      "write",
      pair.writeCap,
      pair.index,
      utf8("x"),
    );
    const both = startBody("write", pair.writeCap, pair.index, enc, {
      "read_cap": pair.readCap,
    });
    const noHash = startBody("write", pair.writeCap, pair.index, enc, {
      "envelope_hash": null,
    });
    const noDesc = startBody("write", pair.writeCap, pair.index, enc, {
      "envelope_descriptor": new Uint8Array(),
    });
    for (const request of [both, noHash, noDesc]) {
      await client.send(request);
      assert.deepEqual(
        await client.expect("start_resending_encrypted_message_reply"),
        {
          "query_id": QID,
          "plaintext": null,
          "error_code": 3,
          "courier_identity_hash": null,
          "courier_queue_id": null,
        },
      );
    }
    await client.close();
  });
});

Deno.test("FakeDaemon cancel answers twice for a running operation and once otherwise", async () => {
  await withDaemon({}, async (daemon) => {
    const client = await RawClient.open(daemon);
    const pair = await keypair(client);
    const enc = await encrypt(client, "read", pair.readCap, pair.index);
    await client.send(
      startBody("read", pair.readCap, pair.index, enc, {}, qid(1)),
    );
    await daemon.waitForRequest("start_resending_encrypted_message");
    await client.nothingWithin(20);
    const cancel = {
      "cancel_resending_encrypted_message": {
        "query_id": qid(2),
        "envelope_hash": enc["envelope_hash"],
      },
    };
    await client.send(cancel);
    assert.deepEqual(
      await client.expect("start_resending_encrypted_message_reply"),
      {
        "query_id": qid(1),
        "plaintext": null,
        "error_code": 24,
        "courier_identity_hash": COURIER?.destinationIdHash,
        "courier_queue_id": utf8("courier"),
      },
    );
    assert.deepEqual(
      await client.expect("cancel_resending_encrypted_message_reply"),
      {
        "query_id": qid(2),
        "error_code": 0,
      },
    );
    await client.send(cancel);
    assert.deepEqual(
      await client.expect("cancel_resending_encrypted_message_reply"),
      {
        "query_id": qid(2),
        "error_code": 0,
      },
    );
    daemon.putBox(pair.writeCap, pair.index, utf8("x"));
    await client.nothingWithin();
    await client.close();
  });
});

Deno.test("FakeDaemon makes the first of two starts with one envelope hash uncancellable", async () => {
  await withDaemon({}, async (daemon) => {
    const client = await RawClient.open(daemon);
    const pair = await keypair(client);
    const enc = await encrypt(client, "read", pair.readCap, pair.index);
    await client.send(
      startBody("read", pair.readCap, pair.index, enc, {}, qid(1)),
    );
    await client.send(
      startBody("read", pair.readCap, pair.index, enc, {}, qid(2)),
    );
    await daemon.waitForRequest("start_resending_encrypted_message");
    await daemon.waitForRequest("start_resending_encrypted_message");
    await client.nothingWithin(20);
    await client.send({
      "cancel_resending_encrypted_message": {
        "query_id": qid(3),
        "envelope_hash": enc["envelope_hash"],
      },
    });
    const cancelled = await client.expect(
      "start_resending_encrypted_message_reply",
    );
    assert.deepEqual(cancelled["query_id"], qid(2));
    await client.expect("cancel_resending_encrypted_message_reply");
    daemon.putBox(pair.writeCap, pair.index, utf8("done"));
    const done = await client.expect("start_resending_encrypted_message_reply");
    assert.deepEqual(done["query_id"], qid(1));
    assert.deepEqual(done["plaintext"], utf8("done"));
    await client.close();
  });
});

Deno.test("FakeDaemon arqDelayMs keeps a write cancellable", async () => {
  await withDaemon({ arqDelayMs: 5000 }, async (daemon) => {
    const client = await RawClient.open(daemon);
    const pair = await keypair(client);
    const enc = await encrypt(
      client,
      "write",
      pair.writeCap,
      pair.index,
      utf8("x"),
    );
    await client.send(startBody("write", pair.writeCap, pair.index, enc));
    await daemon.waitForRequest("start_resending_encrypted_message");
    await client.nothingWithin(10);
    await client.send({
      "cancel_resending_encrypted_message": {
        "query_id": QID,
        "envelope_hash": enc["envelope_hash"],
      },
    });
    assert.equal(
      (await client.expect("start_resending_encrypted_message_reply"))[
        "error_code"
      ],
      24,
    );
    await client.expect("cancel_resending_encrypted_message_reply");
    assert.equal(daemon.getBox(pair.writeCap, pair.index), undefined);
    await client.close();
  });
});

// ---------------------------------------------------------------------------
// Copy streams

async function writeElements(
  client: RawClient,
  temp: { writeCap: Uint8Array; index: Uint8Array },
  elements: Uint8Array[],
  start = temp.index,
): Promise<Uint8Array> {
  let index = start;
  for (const element of elements) {
    assert.ok(element.length <= 1549);
    const r = await writeBox(client, temp.writeCap, index, element);
    assert.equal(r["error_code"], 0);
    index = fakeNextIndex(index) as Uint8Array;
  }
  return index;
}

Deno.test("FakeDaemon executes a copy command built from its own envelopes", async () => {
  await withDaemon({}, async (daemon) => {
    const client = await RawClient.open(daemon);
    const dest = await keypair(client, new Uint8Array(32).fill(1));
    const temp = await keypair(client, new Uint8Array(32).fill(2));
    const payload = Uint8Array.from({ length: 3000 }, (_, i) => i % 251);
    await client.send({
      "create_courier_envelopes_from_payload": {
        "query_id": QID,
        "payload": payload,
        "dest_write_cap": dest.writeCap,
        "dest_start_index": dest.index,
        "is_start": true,
        "is_last": true,
      },
    });
    const built = await client.expect(
      "create_courier_envelopes_from_payload_reply",
    );
    const elements = built["envelopes"] as Uint8Array[];
    assert.ok(elements.length >= 2);
    assert.equal((elements[0] as Uint8Array)[0]! & 1, 1);
    assert.equal((elements.at(-1) as Uint8Array)[0]! & 2, 2);
    assert.deepEqual(built["next_dest_index"], fakeNextIndex(dest.index, 2));
    await writeElements(client, temp, elements);
    await client.send({
      "start_resending_copy_command": {
        "query_id": QID,
        "write_cap": temp.writeCap,
      },
    });
    assert.deepEqual(
      await client.expect("start_resending_copy_command_reply"),
      {
        "query_id": QID,
        "error_code": 0,
      },
    );
    const first = await readBox(client, dest.readCap, dest.index);
    assert.deepEqual(first["plaintext"], payload.subarray(0, 1545));
    const second = await readBox(
      client,
      dest.readCap,
      fakeNextIndex(dest.index) as Uint8Array,
    );
    assert.deepEqual(second["plaintext"], payload.subarray(1545));
    assert.deepEqual(daemon.getBox(temp.readCap, temp.index), {
      tombstone: true,
    });
    // The courier remembers the verdict for the same temporary stream.
    await client.send({
      "start_resending_copy_command": {
        "query_id": QID,
        "write_cap": temp.writeCap,
      },
    });
    assert.equal(
      (await client.expect("start_resending_copy_command_reply"))["error_code"],
      0,
    );
    await client.close();
  });
});

Deno.test("FakeDaemon copy onto an occupied box fails with 26 and replica code 10", async () => {
  await withDaemon({}, async (daemon) => {
    const client = await RawClient.open(daemon);
    const dest = await keypair(client, new Uint8Array(32).fill(3));
    const temp = await keypair(client, new Uint8Array(32).fill(4));
    daemon.putBox(
      dest.writeCap,
      fakeNextIndex(dest.index) as Uint8Array,
      utf8("taken"),
    );
    await client.send({
      "create_courier_envelopes_from_payload": {
        "query_id": QID,
        "payload": new Uint8Array(2000).fill(1),
        "dest_write_cap": dest.writeCap,
        "dest_start_index": dest.index,
        "is_start": true,
        "is_last": true,
      },
    });
    const built = await client.expect(
      "create_courier_envelopes_from_payload_reply",
    );
    await writeElements(client, temp, built["envelopes"] as Uint8Array[]);
    await client.send({
      "start_resending_copy_command": {
        "query_id": QID,
        "write_cap": temp.writeCap,
      },
    });
    assert.deepEqual(
      await client.expect("start_resending_copy_command_reply"),
      {
        "query_id": QID,
        "error_code": 26,
        "replica_error_code": 10,
        "failed_envelope_index": 2,
      },
    );
    await client.close();
  });
});

Deno.test("FakeDaemon multi-payload and tombstone-range builders carry a buffer across calls", async () => {
  await withDaemon({}, async (daemon) => {
    const client = await RawClient.open(daemon);
    const a = await keypair(client, new Uint8Array(32).fill(5));
    const b = await keypair(client, new Uint8Array(32).fill(6));
    const temp = await keypair(client, new Uint8Array(32).fill(7));
    await client.send({
      "create_courier_envelopes_from_multi_payload": {
        "query_id": QID,
        "destinations": [
          {
            "payload": utf8("alpha"),
            "write_cap": a.writeCap,
            "start_index": a.index,
          },
          {
            "payload": utf8("beta"),
            "write_cap": b.writeCap,
            "start_index": b.index,
          },
        ],
        "is_start": true,
        "is_last": false,
        "buffer": null,
      },
    });
    const first = await client.expect(
      "create_courier_envelopes_from_multi_payload_reply",
    );
    assert.equal(first["error_code"], 0);
    assert.ok(first["buffer"] instanceof Uint8Array);
    assert.deepEqual(first["next_dest_indices"], [
      fakeNextIndex(a.index),
      fakeNextIndex(b.index),
    ]);
    await client.send({
      "create_courier_envelopes_from_tombstone_range": {
        "query_id": QID,
        "dest_write_cap": a.writeCap,
        "dest_start_index": fakeNextIndex(a.index),
        "max_count": 2,
        "is_start": false,
        "is_last": true,
        "buffer": first["buffer"],
      },
    });
    const second = await client.expect(
      "create_courier_envelopes_from_tombstone_range_reply",
    );
    assert.equal(second["buffer"], null);
    assert.deepEqual(second["next_dest_index"], fakeNextIndex(a.index, 3));
    const elements = [
      ...first["envelopes"] as Uint8Array[],
      ...second["envelopes"] as Uint8Array[],
    ];
    await writeElements(client, temp, elements);
    await client.send({
      "start_resending_copy_command": {
        "query_id": QID,
        "write_cap": temp.writeCap,
      },
    });
    assert.equal(
      (await client.expect("start_resending_copy_command_reply"))["error_code"],
      0,
    );
    assert.deepEqual(daemon.getBox(a.readCap, a.index), {
      tombstone: false,
      plaintext: utf8("alpha"),
    });
    assert.deepEqual(daemon.getBox(b.readCap, b.index), {
      tombstone: false,
      plaintext: utf8("beta"),
    });
    assert.deepEqual(
      daemon.getBox(a.readCap, fakeNextIndex(a.index, 2) as Uint8Array),
      { tombstone: true },
    );
    await client.close();
  });
});

Deno.test("FakeDaemon copy commands can be cancelled by the BLAKE2b-256 of the cap", async () => {
  await withDaemon({ copyDelayMs: 5000 }, async (daemon) => {
    const client = await RawClient.open(daemon);
    const temp = fakeKeypair(new Uint8Array(32).fill(8));
    await client.send({
      "start_resending_copy_command": {
        "query_id": qid(1),
        "write_cap": temp.writeCap,
        "courier_identity_hash": new Uint8Array(32).fill(1),
        "courier_queue_id": utf8("other"),
      },
    });
    await daemon.waitForRequest("start_resending_copy_command");
    await client.nothingWithin(10);
    await client.send({
      "cancel_resending_copy_command": {
        "query_id": qid(2),
        "write_cap_hash": blake2b256(temp.writeCap),
      },
    });
    assert.deepEqual(
      await client.expect("start_resending_copy_command_reply"),
      {
        "query_id": qid(1),
        "error_code": 24,
      },
    );
    assert.deepEqual(
      await client.expect("cancel_resending_copy_command_reply"),
      {
        "query_id": qid(2),
        "error_code": 0,
      },
    );
    await client.close();
  });
});

// ---------------------------------------------------------------------------
// Vouchers

Deno.test("FakeDaemon vouchers agree across mint, derive, induct and open", async () => {
  await withDaemon({}, async (daemon) => {
    const client = await RawClient.open(daemon);
    const joiner = await keypair(client, new Uint8Array(32).fill(11));
    await client.send({
      "voucher_mint": {
        "query_id": QID,
        "message_write_cap": joiner.writeCap,
        "display_name": "Alice",
      },
    });
    const mint = await client.expect("voucher_mint_reply");
    assert.equal((mint["voucher"] as Uint8Array).length, 32);
    await client.send({
      "voucher_derive_stream": { "query_id": QID, "voucher": mint["voucher"] },
    });
    const derived = await client.expect("voucher_derive_stream_reply");
    assert.deepEqual(derived["voucher_write_cap"], mint["voucher_write_cap"]);
    assert.deepEqual(derived["voucher_read_cap"], mint["voucher_read_cap"]);

    await client.send({
      "voucher_induct": {
        "query_id": QID,
        "voucher": mint["voucher"],
        "voucher_payload": mint["voucher_payload"],
        "who_reply": utf8("group info"),
      },
    });
    const induct = await client.expect("voucher_induct_reply");
    assert.equal(induct["display_name"], "Alice");
    assert.equal(induct["error_code"], 0);

    await client.send({
      "voucher_open": {
        "query_id": QID,
        "voucher_secret_key": mint["voucher_secret_key"],
        "sealed_reply": induct["sealed_reply"],
        "message_write_cap": joiner.writeCap,
      },
    });
    const open = await client.expect("voucher_open_reply");
    assert.deepEqual(open["who_reply"], utf8("group info"));
    assert.deepEqual(open["salt"], induct["salt"]);
    const mutated = open["mutated_message_write_cap"] as Uint8Array;
    assert.deepEqual(mutated.subarray(32), induct["mutated_message_read_cap"]);

    await client.send({
      "voucher_induct": {
        "query_id": QID,
        "voucher": new Uint8Array(32),
        "voucher_payload": mint["voucher_payload"],
        "who_reply": utf8("x"),
      },
    });
    const mismatch = await client.expect("voucher_induct_reply");
    assert.equal(mismatch["error_code"], 28);
    assert.equal(mismatch["display_name"], "");
    await client.send({
      "voucher_open": {
        "query_id": QID,
        "voucher_secret_key": new Uint8Array(32),
        "sealed_reply": induct["sealed_reply"],
        "message_write_cap": joiner.writeCap,
      },
    });
    assert.equal((await client.expect("voucher_open_reply"))["error_code"], 30);
    await client.close();
  });
});

// ---------------------------------------------------------------------------
// Legacy send

Deno.test("FakeDaemon echo service answers with a zero-padded reply", async () => {
  await withDaemon({ now: () => 1_767_225_600_500 }, async (daemon) => {
    const client = await RawClient.open(daemon);
    const send = (extra: Body) =>
      client.send({
        "send_message": {
          "id": qid(5),
          "with_surb": true,
          "surbid": QID,
          "destination_id_hash": ECHO?.destinationIdHash,
          "recipient_queue_id": utf8("+echo"),
          "payload": utf8("ping"),
          ...extra,
        },
      });
    await send({ "with_surb": false, "surbid": null });
    await client.nothingWithin();
    await send({});
    assert.deepEqual(await client.expect("message_sent_event"), {
      "message_id": qid(5),
      "surbid": QID,
      "sent_at": 1767225600,
      "reply_eta": 1500000000,
    });
    const reply = await client.expect("message_reply_event");
    const payload = reply["payload"] as Uint8Array;
    assert.equal(payload.length, 2574); // ForwardPayloadLength, as kpclientd sends it
    assert.deepEqual(
      payload.subarray(0, 5),
      Uint8Array.from([...utf8("ping"), 0]),
    );
    assert.deepEqual(reply["surbid"], QID);
    assert.deepEqual(reply["message_id"], qid(5));
    assert.equal(reply["error_code"], 0);
    assert.equal("reply_index" in reply, false);

    await send({ "payload": new Uint8Array(2001) });
    assert.deepEqual(await client.expect("message_sent_event"), {
      "message_id": qid(5),
      "surbid": QID,
      "sent_at": 1767225600,
      "reply_eta": 0,
      "err": "message too large: 2001 > 2000",
    });
    await send({ "destination_id_hash": null });
    assert.equal(
      (await client.expect("message_sent_event"))["err"],
      "request.DestinationIdHash is nil",
    );
    await client.nothingWithin();
    await client.close();
  });
});

// ---------------------------------------------------------------------------
// Mixnet queue

Deno.test("FakeDaemon holds mixnet requests offline and stops reading when the FIFO is full", async () => {
  await withDaemon({ connected: false }, async (daemon) => {
    const client = await RawClient.open(daemon);
    const temp = fakeKeypair(SEED);
    for (let i = 0; i < 17; i++) {
      await client.send({
        "start_resending_copy_command": {
          "query_id": qid(i),
          "write_cap": temp.writeCap,
        },
      });
    }
    await client.send({ "get_directory_authorities": { "query_id": qid(99) } });
    await client.nothingWithin(40);
    assert.equal(
      daemon.received.filter((r) => r.kind === "get_directory_authorities")
        .length,
      0,
      "the reader stalls behind the full FIFO",
    );
    daemon.setConnected(true);
    assert.equal(
      (await client.expect("connection_status_event"))["is_connected"],
      true,
    );
    const seen: number[] = [];
    let local = false;
    for (let i = 0; i < 18; i++) {
      const [variant, body] = await client.next();
      if (variant === "get_directory_authorities_reply") local = true;
      else {
        assert.equal(variant, "start_resending_copy_command_reply");
        seen.push((body["query_id"] as Uint8Array)[0] as number);
      }
    }
    assert.ok(local);
    assert.deepEqual(seen, Array.from({ length: 17 }, (_, i) => i));
    await client.close();
  });
});

Deno.test("FakeDaemon lets local replies overtake delayed mixnet replies", async () => {
  await withDaemon({ mixnetDelayMs: 30 }, async (daemon) => {
    const client = await RawClient.open(daemon);
    await client.send({
      "start_resending_copy_command": { "query_id": qid(1), "write_cap": null },
    });
    await client.send({ "get_directory_authorities": { "query_id": qid(2) } });
    await client.expect("get_directory_authorities_reply");
    assert.equal(
      (await client.expect("start_resending_copy_command_reply"))["error_code"],
      3,
    );
    await client.close();
  });
});

// ---------------------------------------------------------------------------
// Scripting, events, faults

Deno.test("FakeDaemon.script() overrides replies", async () => {
  await withDaemon({}, async (daemon) => {
    const client = await RawClient.open(daemon);
    daemon.script("new_keypair", 3, { times: 1 });
    await client.send({ "new_keypair": { "query_id": QID, "seed": SEED } });
    assert.equal((await client.expect("new_keypair_reply"))["error_code"], 3);
    await keypair(client);

    daemon.script("get_pki_document", { reply: { "epoch": 7 } });
    await client.send({ "get_pki_document": { "query_id": QID, "epoch": 0 } });
    assert.deepEqual(await client.expect("get_pki_document_reply"), {
      "query_id": QID,
      "payload": null,
      "epoch": 7,
      "error_code": 0,
    });

    daemon.script("get_pki_document", "none");
    await client.send({ "get_pki_document": { "query_id": QID, "epoch": 0 } });
    await client.nothingWithin();

    let seen: unknown = null;
    daemon.script("get_pki_document", (request) => {
      seen = request.body["epoch"];
      return { delayMs: 10, then: { errorCode: 10 } };
    });
    await client.send({ "get_pki_document": { "query_id": QID, "epoch": 3 } });
    assert.equal(
      (await client.expect("get_pki_document_reply"))["error_code"],
      10,
    );
    assert.equal(seen, 3);
    daemon.script("get_pki_document", null);

    daemon.script("start_resending_copy_command", {
      errorCode: 26,
      fields: { "replica_error_code": 10, "failed_envelope_index": 3 },
    });
    await client.send({
      "start_resending_copy_command": {
        "query_id": QID,
        "write_cap": fakeKeypair(SEED).writeCap,
      },
    });
    assert.deepEqual(
      await client.expect("start_resending_copy_command_reply"),
      {
        "query_id": QID,
        "error_code": 26,
        "replica_error_code": 10,
        "failed_envelope_index": 3,
      },
    );

    daemon.script("start_resending_encrypted_message", 13);
    const pair = fakeKeypair(SEED);
    const enc = await encrypt(
      client,
      "write",
      pair.writeCap,
      pair.firstMessageIndex,
      utf8("x"),
    );
    await client.send(
      startBody("write", pair.writeCap, pair.firstMessageIndex, enc),
    );
    const r = await client.expect("start_resending_encrypted_message_reply");
    assert.equal(r["error_code"], 13);
    assert.deepEqual(r["courier_queue_id"], utf8("courier"));
    assert.throws(() => daemon.script("thin_close", 3), TypeError);
    await client.close();
  });
});

Deno.test("FakeDaemon.emit() completes status events from its state", async () => {
  await withDaemon({}, async (daemon) => {
    const client = await RawClient.open(daemon);
    daemon.emit({ "connection_status_event": { "is_connected": false } });
    const status = await client.expect("connection_status_event");
    assert.equal(status["is_connected"], false);
    assert.deepEqual(status["instance_token"], daemon.instanceToken);
    assert.ok(status["sphinx_geometry"] !== null);
    daemon.emit({ "message_reply_event": { "surbid": QID } });
    assert.deepEqual(await client.expect("message_reply_event"), {
      "message_id": null,
      "surbid": QID,
      "payload": null,
      "error_code": 0,
    });
    daemon.emit({ "future_event": { "x": 1 } }, {
      connId: client === null ? 0 : 1,
    });
    const [variant] = await client.next();
    assert.equal(variant, "future_event");
    assert.throws(() => daemon.emit({}), TypeError);
    await client.close();
  });
});

Deno.test("FakeDaemon faults reshape the handshake", async () => {
  await withDaemon({
    faults: { pkiPayloadNull: true, raceEventBeforeTokenReply: true },
  }, async (daemon) => {
    const client = new RawClient(await daemon.dialer.dial());
    await client.expect("connection_status_event");
    assert.equal(
      (await client.expect("new_pki_document_event"))["payload"],
      null,
    );
    await client.send({ "session_token": { "client_instance_token": TOKEN } });
    await client.expect("connection_status_event");
    await client.expect("new_pki_document_event");
    await client.expect("session_token_reply");
    await client.close();

    daemon.faults.shutdownBeforeHandshake = true;
    const down = new RawClient(await daemon.dialer.dial());
    await down.expect("shutdown_event");
    await down.closedWithin();
    await down.close();

    daemon.faults.shutdownBeforeHandshake = false;
    daemon.faults.delayBeforeHandshakeMs = 40;
    const slow = new RawClient(await daemon.dialer.dial());
    await slow.nothingWithin(20);
    await slow.expect("connection_status_event");
    await slow.close();
  });
});

Deno.test("FakeDaemon split and coalesced writes still carry whole frames", async () => {
  await withDaemon({ faults: { splitWrites: true } }, async (daemon) => {
    const client = await RawClient.open(daemon);
    client.chunkSizes.length = 0;
    await keypair(client);
    assert.ok(client.chunkSizes.length > 100);
    assert.ok(client.chunkSizes.every((n) => n >= 1 && n <= 7));
    daemon.faults.splitWrites = false;
    daemon.faults.coalesceWrites = true;
    const pair = await keypair(client);
    const enc = await encrypt(client, "read", pair.readCap, pair.index);
    await client.send(startBody("read", pair.readCap, pair.index, enc));
    await daemon.waitForRequest("start_resending_encrypted_message");
    client.chunkSizes.length = 0;
    await client.send({
      "cancel_resending_encrypted_message": {
        "query_id": QID,
        "envelope_hash": enc["envelope_hash"],
      },
    });
    const a = await client.nextRaw();
    const b = await client.nextRaw();
    assert.deepEqual(client.chunkSizes, [a.length + b.length + 8]);
    await client.close();
  });
});

Deno.test("FakeDaemon raw fault frames reach the client", async () => {
  await withDaemon({}, async (daemon) => {
    const client = await RawClient.open(daemon);
    daemon.sendMalformed();
    const raw = await client.nextRaw();
    assert.throws(() => decodeCbor(raw));
    await daemon.sendTruncatedFrameAndClose();
    await client.closedWithin();
    await client.close();

    const second = await RawClient.open(daemon);
    daemon.sendOversizeFrame();
    await new Promise((r) => setTimeout(r, 20));
    await second.close();
  });
});

Deno.test("FakeDaemon.waitForRequest() consumes per kind and honours abort and timeout", async () => {
  await withDaemon({}, async (daemon) => {
    const client = await RawClient.open(daemon);
    await keypair(client);
    await keypair(client, new Uint8Array(32).fill(1));
    const first = await daemon.waitForRequest("new_keypair");
    const second = await daemon.waitForRequest("new_keypair");
    assert.deepEqual(first.body["seed"], SEED);
    assert.deepEqual(second.body["seed"], new Uint8Array(32).fill(1));
    assert.equal(first.connId, 1);
    await assert.rejects(
      daemon.waitForRequest("new_keypair", { timeoutMs: 10 }),
      /Timed out/,
    );
    const ac = new AbortController();
    const pending = daemon.waitForRequest("voucher_open", {
      signal: ac.signal,
    });
    ac.abort(new Error("stop"));
    await assert.rejects(pending, /stop/);
    await client.close();
  });
});

Deno.test("FakeDaemon.close() rejects pending waits and is idempotent", async () => {
  const daemon = await FakeDaemon.start({ transport: "memory" });
  const pending = daemon.waitForRequest("new_keypair");
  await daemon.close();
  await daemon.close();
  await assert.rejects(pending, /closed/);
});
