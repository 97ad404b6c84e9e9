// Generated corpora of broken daemon output: capabilities and indices of the
// wrong length in every reply that carries one, numbers outside their Go
// type's range (floats, negatives, 2^64), and PKI documents with null, odd or
// prototype-named services. Every error must be a ThinClientError; nothing
// out of range may be accepted.
import assert from "node:assert/strict";
import { MessageBoxIndex, ReadCap, WriteCap } from "../lib/caps.ts";
import type { ThinClient } from "../lib/client.ts";
import { decodeCborMaps } from "../lib/cbor.ts";
import { ProtocolError, ThinClientError } from "../lib/errors.ts";
import { findServices, parsePkiDocument } from "../lib/pki.ts";
import { decodeResponse, type Response } from "../lib/protocol.ts";
import {
  buildPkiDocument,
  FakeFloat,
  fakeKeypair,
  FakeRawCbor,
  type FakeRequestKind,
} from "../testing/mod.ts";
import { encodeOrdered, encodeResponse } from "../testing/_wire.ts";
import {
  connectTo,
  filled,
  ManualDaemon,
  startFake,
  within,
} from "./_helpers.ts";

const KP = fakeKeypair(filled(32, 1));
const WCAP = new WriteCap(KP.writeCap);
const RCAP = new ReadCap(KP.readCap);
const INDEX = new MessageBoxIndex(KP.firstMessageIndex);

function isTyped(err: unknown): err is ThinClientError {
  return err instanceof ThinClientError;
}

// ---------------------------------------------------------------------------
// 2. Capabilities and indices of the wrong length

interface CapCase {
  kind: FakeRequestKind;
  /** The reply's cap and index fields with valid values. */
  valid: Record<string, Uint8Array | Uint8Array[]>;
  /** Which of them are caps or indices, and their length. */
  checked: Record<string, number>;
  call(client: ThinClient): Promise<unknown>;
}

const W = WriteCap.LENGTH;
const R = ReadCap.LENGTH;
const I = MessageBoxIndex.LENGTH;
const rand = (n: number): Uint8Array => filled(n, 0x5a);

const CAP_CASES: CapCase[] = [
  {
    kind: "new_keypair",
    valid: {
      "write_cap": rand(W),
      "read_cap": rand(R),
      "first_message_index": rand(I),
    },
    checked: { "write_cap": W, "read_cap": R, "first_message_index": I },
    call: (c) => c.newKeypair(filled(32, 2)),
  },
  ...(["encrypt_read", "encrypt_write"] as const).map((kind): CapCase => ({
    kind,
    valid: {
      "message_ciphertext": rand(10),
      "envelope_descriptor": rand(10),
      "envelope_hash": rand(32),
      "next_message_box_index": rand(I),
    },
    checked: { "next_message_box_index": I },
    call: (c) =>
      kind === "encrypt_read"
        ? c.encryptRead(RCAP, INDEX)
        : c.encryptWrite(new Uint8Array([1]), WCAP, INDEX),
  })),
  {
    kind: "next_message_box_index",
    valid: { "next_message_box_index": rand(I) },
    checked: { "next_message_box_index": I },
    call: (c) => c.nextMessageBoxIndex(INDEX),
  },
  {
    kind: "create_courier_envelopes_from_payload",
    valid: { "envelopes": [rand(5)], "next_dest_index": rand(I) },
    checked: { "next_dest_index": I },
    call: (c) =>
      c.createCourierEnvelopesFromPayload(
        new Uint8Array(3),
        WCAP,
        INDEX,
        true,
        true,
      ),
  },
  {
    kind: "create_courier_envelopes_from_multi_payload",
    valid: { "envelopes": [rand(5)], "next_dest_indices": [rand(I), rand(I)] },
    checked: { "next_dest_indices": I },
    call: (c) =>
      c.createCourierEnvelopesFromMultiPayload(
        [
          { payload: new Uint8Array(3), writeCap: WCAP, startIndex: INDEX },
          { payload: new Uint8Array(3), writeCap: WCAP, startIndex: INDEX },
        ],
        true,
        true,
        null,
      ),
  },
  {
    kind: "create_courier_envelopes_from_tombstone_range",
    valid: { "envelopes": [rand(5)], "next_dest_index": rand(I) },
    checked: { "next_dest_index": I },
    call: (c) =>
      c.createCourierEnvelopesFromTombstoneRange(
        WCAP,
        INDEX,
        1,
        true,
        true,
        null,
      ),
  },
  {
    kind: "voucher_mint",
    valid: {
      "voucher": rand(32),
      "voucher_payload": rand(8),
      "voucher_write_cap": rand(W),
      "voucher_read_cap": rand(R),
      "voucher_secret_key": rand(8),
      "voucher_public_key": rand(8),
    },
    checked: { "voucher_write_cap": W, "voucher_read_cap": R },
    call: (c) => c.voucherMint(WCAP, "alice"),
  },
  {
    kind: "voucher_induct",
    valid: {
      "mutated_message_read_cap": rand(R),
      "sealed_reply": rand(8),
      "voucher_write_cap": rand(W),
      "voucher_read_cap": rand(R),
      "salt": rand(8),
    },
    checked: {
      "mutated_message_read_cap": R,
      "voucher_write_cap": W,
      "voucher_read_cap": R,
    },
    call: (c) => c.voucherInduct(rand(32), rand(8), rand(8)),
  },
  {
    kind: "voucher_open",
    valid: {
      "who_reply": rand(8),
      "salt": rand(8),
      "mutated_message_write_cap": rand(W),
    },
    checked: { "mutated_message_write_cap": W },
    call: (c) => c.voucherOpen(rand(8), rand(8), WCAP),
  },
  {
    kind: "voucher_derive_stream",
    valid: { "voucher_write_cap": rand(W), "voucher_read_cap": rand(R) },
    checked: { "voucher_write_cap": W, "voucher_read_cap": R },
    call: (c) => c.voucherDeriveStream(rand(32)),
  },
];

Deno.test("every reply with a capability or index of the wrong length rejects with a ProtocolError", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  let tried = 0;
  for (const c of CAP_CASES) {
    // The valid reply passes, so each case below fails for its one field.
    fake.script(c.kind, { reply: { ...c.valid } }, { times: 1 });
    await within(c.call(client), 5000, `${c.kind} with a valid reply`);
    for (const [field, length] of Object.entries(c.checked)) {
      for (const bad of [0, 5, length - 1, length + 1, 2 * length]) {
        const value = Array.isArray(c.valid[field])
          ? [rand(length), rand(bad)]
          : rand(bad);
        fake.script(c.kind, { reply: { ...c.valid, [field]: value } }, {
          times: 1,
        });
        await assert.rejects(
          within(c.call(client), 5000, `${c.kind}.${field} of ${bad} bytes`),
          (err: unknown) => {
            assert.ok(err instanceof ProtocolError, `${c.kind}: ${err}`);
            assert.match(
              err.message,
              new RegExp(`field '${field}(\\[1\\])?' has ${bad} bytes`),
            );
            assert.match(err.message, new RegExp(`has ${length}$`));
            return true;
          },
        );
        tried++;
      }
    }
  }
  assert.equal(tried, 5 * 17);
  // A bad reply fails the one call; the connection is untouched.
  assert.equal(client.isDaemonReachable, true);
  assert.equal(fake.connectionCount, 1);
});

// ---------------------------------------------------------------------------
// 4. Numbers outside their field's range

/** Values that are not a uint of `bits` bits, as the fake daemon encodes them. */
function outOfRange(bits: 8 | 64): unknown[] {
  return [
    new FakeFloat(3),
    new FakeFloat(1e300),
    new FakeFloat(0.5),
    new FakeFloat(-0),
    -1,
    -(2n ** 63n),
    bits === 8 ? 256 : new FakeRawCbor(
      new Uint8Array([0xc2, 0x49, 1, 0, 0, 0, 0, 0, 0, 0, 0]),
    ), // tag 2: 2^64
    "3",
    true,
    new Uint8Array([3]),
  ];
}

/** Numeric fields of replies and events: [variant, field, bits]. */
const NUMERIC: [string, string, 8 | 64][] = [
  ["new_keypair_reply", "error_code", 8],
  ["message_reply_event", "reply_index", 8],
  ["message_reply_event", "error_code", 8],
  ["message_sent_event", "reply_eta", 64],
  ["start_resending_copy_command_reply", "replica_error_code", 8],
  ["start_resending_copy_command_reply", "failed_envelope_index", 64],
  ["get_message_box_index_counter_reply", "counter", 64],
  ["get_pki_document_reply", "epoch", 64],
  ["start_resending_encrypted_message_reply", "error_code", 8],
  ["voucher_open_reply", "error_code", 8],
];

Deno.test("decodeResponse() refuses every number outside its Go type (generated)", () => {
  let tried = 0;
  for (const [variant, field, bits] of NUMERIC) {
    for (const fullForm of [true, false]) {
      for (const value of outOfRange(bits)) {
        const body = encodeResponse(variant, { [field]: value }, fullForm);
        assert.throws(
          () => decodeResponse(body),
          (err: unknown) => {
            assert.ok(err instanceof ProtocolError, String(err));
            return true;
          },
          `${variant}.${field} = ${String(value)}`,
        );
        tried++;
      }
      // The largest value of the type passes.
      const max = bits === 8 ? 255 : 2n ** 64n - 1n;
      const ok = decodeResponse(
        encodeResponse(variant, { [field]: max }, fullForm),
      ) as Response & Record<string, unknown>;
      const tsKey = field.replace(/_(\w)/g, (_, c: string) => c.toUpperCase());
      assert.equal(BigInt(ok[tsKey] as number | bigint), BigInt(max));
    }
  }
  assert.equal(tried, NUMERIC.length * 2 * 10);
  // Geometry fields (Go int) and the time of message_sent_event (int64 seconds).
  for (
    const value of [new FakeFloat(2000), -1, 2n ** 63n, new FakeFloat(1e300)]
  ) {
    assert.throws(
      () =>
        decodeResponse(encodeResponse("connection_status_event", {
          "instance_token": filled(16),
          "sphinx_geometry": { "PacketLength": value },
        }, true)),
      ProtocolError,
    );
  }
  for (const value of [new FakeFloat(1.5), 2n ** 63n, -(2n ** 63n) - 1n]) {
    assert.throws(
      () =>
        decodeResponse(
          encodeResponse("message_sent_event", { "sent_at": value }, true),
        ),
      ProtocolError,
      String(value),
    );
  }
  assert.equal(
    (decodeResponse(
      encodeResponse("message_sent_event", { "sent_at": -(2n ** 63n) }, true),
    ) as { sentAt: number }).sentAt,
    -(2 ** 63),
  );
});

Deno.test("an error_code sent as a float fails the frame, not a pending call", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  const events = client.events();
  fake.script("new_keypair", { reply: { "error_code": new FakeFloat(3) } }, {
    times: 1,
  });
  // The frame is refused (the connection drops); the request is re-sent
  // after the reconnect and answered normally, never as error 3.
  const kp = await within(client.newKeypair(filled(32, 9)), 5000);
  assert.equal(kp.writeCap.bytes.length, WriteCap.LENGTH);
  for await (const ev of events) {
    if (ev.type !== "daemon_disconnected") continue;
    assert.ok(ev.error instanceof ProtocolError);
    assert.match(ev.error.message, /float where none is allowed/);
    break;
  }
});

// ---------------------------------------------------------------------------
// 3 and 4. PKI documents

/** A PKI document around one service node descriptor (given as a Map). */
function documentWith(
  node: Map<string, unknown>,
  top: [string, unknown][] = [],
): Uint8Array {
  return encodeOrdered(
    new Map<string, unknown>([
      ["Epoch", 7],
      ["GenesisEpoch", 1],
      ["Mu", 0.005],
      ["LambdaP", 0.001],
      ["ServiceNodes", [encodeOrdered(node)]],
      ["StorageReplicas", []],
      ["Version", "v1"],
      ...top,
    ]),
  );
}

function serviceNode(kaetzchen: unknown): Map<string, unknown> {
  return new Map<string, unknown>([
    ["Name", "sn1"],
    ["Epoch", 7],
    ["IdentityKey", filled(32, 3)],
    ["Kaetzchen", kaetzchen],
    ["IsServiceNode", true],
  ]);
}

const CAPABILITIES = [
  "echo",
  "courier",
  "__proto__",
  "constructor",
  "toString",
  "hasOwnProperty",
  "valueOf",
];

const KAETZCHEN_VALUES: unknown[] = [
  null,
  new Map(),
  new Map([["echo", null]]), // Go's nil map
  new Map([["echo", new Map()]]),
  new Map([["echo", new Map([["endpoint", null]])]]),
  new Map([["echo", new Map([["endpoint", 5]])]]),
  new Map([["echo", new Map([["endpoint", ""]])]]),
  new Map([["echo", new Map([["endpoint", "+echo"]])]]),
  new Map([["__proto__", new Map([["endpoint", "+evil"]])]]),
  new Map([["constructor", new Map([["endpoint", "+ctor"]])]]),
  new Map([["echo", new Map([["__proto__", new Map([["endpoint", "+x"]])]])]]),
  new Map([["echo", 5]]),
  new Map([["echo", [1, 2]]]),
  new Map([[5, new Map([["endpoint", "+five"]])]]),
  [1, 2],
  "echo",
];

Deno.test("services with null, odd or prototype-named Kaetzchen never throw outside ThinClientError", () => {
  let parsed = 0;
  let refused = 0;
  for (const k of KAETZCHEN_VALUES) {
    let doc;
    try {
      doc = parsePkiDocument(documentWith(serviceNode(k)));
    } catch (err) {
      assert.ok(err instanceof ProtocolError, `${String(k)}: ${err}`);
      refused++;
      continue;
    }
    parsed++;
    for (const capability of CAPABILITIES) {
      const found = findServices(doc, capability);
      for (const s of found) {
        assert.equal(typeof s.endpoint, "string");
        assert.ok(s.endpoint.length > 0);
        assert.ok(Object.hasOwn(doc.serviceNodes[0]!.kaetzchen, capability));
      }
    }
    assert.equal(
      Object.getPrototypeOf(doc.serviceNodes[0]!.kaetzchen),
      Object.prototype,
    );
  }
  assert.ok(
    parsed >= 10 && refused >= 4,
    `${parsed} parsed, ${refused} refused`,
  );
  // The nil map of Go: no service, no TypeError.
  const nil = parsePkiDocument(
    documentWith(serviceNode(new Map([["echo", null]]))),
  );
  assert.deepEqual(findServices(nil, "echo"), []);
  // A "__proto__" capability is an own entry, found by its name only.
  const proto = parsePkiDocument(
    documentWith(
      serviceNode(new Map([["__proto__", new Map([["endpoint", "+evil"]])]])),
    ),
  );
  assert.deepEqual(findServices(proto, "__proto__").map((s) => s.endpoint), [
    "+evil",
  ]);
  assert.deepEqual(findServices(proto, "endpoint"), []);
  // A document built by hand with null entries does not throw either.
  const byHand = {
    ...nil,
    serviceNodes: [{ ...nil.serviceNodes[0]!, kaetzchen: { echo: null } }],
  };
  assert.deepEqual(findServices(byHand as never, "echo"), []);
});

Deno.test("getService() and getServices() survive a pushed document with a nil Kaetzchen map", async () => {
  const daemon = new ManualDaemon();
  const connecting = connectTo(daemon.dialer, { reconnect: false });
  await daemon.waitForRequests(0);
  await daemon.sendStatus();
  await daemon.sendDocument(
    documentWith(serviceNode(new Map([["echo", null], ["__proto__", null]]))),
  );
  await daemon.waitForRequests(1);
  await daemon.send("session_token_reply", {
    "app_id": filled(16, 1),
    "resumed": false,
  });
  const client = await within(connecting, 5000, "the handshake");
  try {
    assert.deepEqual(client.getServices("echo"), []);
    assert.deepEqual(client.getServices("__proto__"), []);
    assert.deepEqual(client.getServices("constructor"), []);
    assert.throws(() => client.getService("echo"), (err: unknown) => {
      assert.ok(isTyped(err));
      assert.match(err.message, /no service node offers it/);
      return true;
    });
  } finally {
    await client.close();
    await daemon.close();
  }
});

/** Replaces one value of a decoded document (Maps and arrays, in place). */
function mutate(value: unknown, path: (string | number)[], to: unknown): void {
  let v = value as Map<unknown, unknown> | unknown[];
  for (const step of path.slice(0, -1)) {
    v = (v instanceof Map ? v.get(step) : v[step as number]) as typeof v;
  }
  const last = path[path.length - 1]!;
  if (v instanceof Map) v.set(last, to);
  else v[last as number] = to;
}

Deno.test("parsePkiDocument() refuses numbers outside their Go type and non-CBOR descriptors (generated)", () => {
  const good = buildPkiDocument().payload;
  const fields: [(string | number)[], 8 | 64 | "float"][] = [
    [["Epoch"], 64],
    [["GenesisEpoch"], 64],
    [["StorageReplicas", 0, "ReplicaID"], 8],
    [["StorageReplicas", 0, "Epoch"], 64],
  ];
  let tried = 0;
  for (const [path, bits] of fields) {
    for (const value of outOfRange(bits as 8 | 64)) {
      const doc = decodeCborMaps(good);
      mutate(doc, path, value);
      assert.throws(
        () => parsePkiDocument(encodeOrdered(doc)),
        (err: unknown) => {
          assert.ok(err instanceof ProtocolError, String(err));
          return true;
        },
        `${path.join(".")} = ${String(value)}`,
      );
      tried++;
    }
  }
  // Inside a nested descriptor too.
  for (const [key, bits] of [["Epoch", 64], ["LoadWeight", 8]] as const) {
    for (const value of outOfRange(bits)) {
      const node = serviceNode(null);
      node.set(key, value);
      assert.throws(() => parsePkiDocument(documentWith(node)), ProtocolError);
      tried++;
    }
  }
  assert.equal(tried, 6 * 10);
  // A float parameter may come as an integer (Go converts it).
  assert.equal(
    parsePkiDocument(documentWith(serviceNode(null), [["Mu", 2]])).mu,
    2,
  );
  // Storage replicas that are byte strings but not CBOR.
  for (
    const bytes of [
      new Uint8Array([0xff]),
      new Uint8Array(0),
      new Uint8Array([0x82, 0x01]),
    ]
  ) {
    const doc = decodeCborMaps(good);
    mutate(doc, ["StorageReplicas", 0], bytes);
    assert.throws(
      () => parsePkiDocument(encodeOrdered(doc)),
      (err: unknown) => {
        assert.ok(err instanceof ProtocolError, String(err));
        assert.match(err.message, /'StorageReplicas\[0\]' is not CBOR/);
        assert.ok(err.cause instanceof Error);
        return true;
      },
    );
  }
});

Deno.test("parsePkiDocument() never throws outside ProtocolError on mutated documents (fuzz)", () => {
  let seed = 4242;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const pool: unknown[] = [
    null,
    -1,
    -(2n ** 63n),
    2n ** 64n - 1n,
    256,
    new FakeFloat(1e300),
    new FakeFloat(2),
    "x",
    new Uint8Array([0xff]),
    new Uint8Array(0),
    [],
    [null],
    new Map(),
    new Map([["echo", null]]),
    new Map([["echo", new Map([["endpoint", 5]])]]),
    new Map([["__proto__", new Map([["endpoint", "+p"]])]]),
    new Map([[1, 2]]),
    true,
  ];
  const pick = <T>(xs: readonly T[]): T => xs[rnd(xs.length)]!;
  const good = buildPkiDocument().payload;
  const textKeys = (m: Map<unknown, unknown>): string[] =>
    [...m.keys()].filter((k): k is string => typeof k === "string");
  const outcomes = { accepted: 0, refused: 0 };
  for (let i = 0; i < 800; i++) {
    const doc = decodeCborMaps(good) as Map<unknown, unknown>;
    const where: string[] = [];
    const strategy = rnd(4);
    if (strategy === 0) {
      // A top-level field.
      const k = pick(textKeys(doc));
      doc.set(k, pick(pool));
      where.push(k);
    } else if (strategy === 1) {
      // A storage replica, or one of its fields.
      const replicas = doc.get("StorageReplicas") as unknown[];
      const r = rnd(replicas.length);
      const replica = replicas[r] as Map<unknown, unknown>;
      if (rnd(3) === 0) replicas[r] = pick(pool);
      else replica.set(pick(textKeys(replica)), pick(pool));
      where.push(`StorageReplicas[${r}]`);
    } else {
      // A field of a nested descriptor, or one service of its Kaetzchen.
      const list = pick(["ServiceNodes", "GatewayNodes"]);
      const nodes = doc.get(list) as Uint8Array[];
      const n = rnd(nodes.length);
      const node = decodeCborMaps(nodes[n]!) as Map<unknown, unknown>;
      const k = strategy === 3 ? "Kaetzchen" : pick(textKeys(node));
      if (strategy === 3 && node.get(k) instanceof Map) {
        const services = node.get(k) as Map<unknown, unknown>;
        services.set(pick(["echo", ...textKeys(services)]), pick(pool));
      } else node.set(k, pick(pool));
      nodes[n] = encodeOrdered(node);
      where.push(`${list}[${n}].${k}`);
    }
    try {
      const parsed = parsePkiDocument(encodeOrdered(doc));
      outcomes.accepted++;
      const nodes = [
        ...parsed.serviceNodes,
        ...parsed.gatewayNodes,
        ...parsed.topology.flat(),
      ];
      for (
        const e of [
          parsed.epoch,
          parsed.genesisEpoch,
          ...nodes.map((x) => x.epoch),
        ]
      ) {
        assert.ok(
          typeof e === "bigint" && e >= 0n && e < 2n ** 64n,
          `${where}: epoch ${e}`,
        );
      }
      for (const node of nodes) {
        assert.ok(
          Number.isInteger(node.loadWeight) && node.loadWeight >= 0 &&
            node.loadWeight <= 255,
        );
        assert.equal(typeof node.isServiceNode, "boolean");
        for (const params of Object.values(node.kaetzchen)) {
          assert.ok(
            typeof params === "object" && params !== null,
            `${where}: ${params}`,
          );
        }
      }
      for (const r of parsed.storageReplicas) {
        assert.ok(
          Number.isInteger(r.replicaId) && r.replicaId >= 0 &&
            r.replicaId <= 255,
          `${where}`,
        );
        assert.ok(r.epoch >= 0n && r.epoch < 2n ** 64n, `${where}: ${r.epoch}`);
      }
      for (const c of CAPABILITIES) {
        for (const s of findServices(parsed, c)) {
          assert.ok(typeof s.endpoint === "string" && s.endpoint !== "");
        }
      }
    } catch (err) {
      if (err instanceof assert.AssertionError) throw err;
      assert.ok(err instanceof ProtocolError, `${where}: ${err}`);
      outcomes.refused++;
    }
  }
  assert.ok(
    outcomes.accepted > 100 && outcomes.refused > 100,
    JSON.stringify(outcomes),
  );
});

Deno.test("client methods settle with a result or a ThinClientError on randomly mutated replies (fuzz)", async () => {
  await using fake = await startFake();
  await using client = await connectTo(fake);
  let seed = 99;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const values = (): unknown[] => [
    rand(rnd(300)),
    null,
    "text",
    7,
    -1,
    new FakeFloat(1.5),
    [rand(3), 5],
    [],
    { "x": rand(2) },
    new FakeRawCbor(new Uint8Array([0xd8, 0x40, 0x41, 0x00])),
  ];
  const outcomes = { resolved: 0, rejected: 0 };
  for (let i = 0; i < 120; i++) {
    const c = CAP_CASES[rnd(CAP_CASES.length)]!;
    const fields = Object.keys(c.valid);
    const field = fields[rnd(fields.length)]!;
    const pool = values();
    fake.script(
      c.kind,
      { reply: { ...c.valid, [field]: pool[rnd(pool.length)] } },
      { times: 1 },
    );
    try {
      // A reply the frame decoder refuses drops the connection; the call is
      // re-sent after the reconnect and answered normally.
      await within(c.call(client), 5000, `${c.kind}.${field}`);
      outcomes.resolved++;
    } catch (err) {
      assert.ok(isTyped(err), `${c.kind}.${field}: ${err}`);
      outcomes.rejected++;
    }
  }
  assert.ok(
    outcomes.resolved > 10 && outcomes.rejected > 10,
    JSON.stringify(outcomes),
  );
});
