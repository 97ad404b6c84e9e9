import assert from "node:assert/strict";
import {
  type CopyDestination,
  decodeResponse,
  type DirectoryAuthority,
  encodeRequest,
  errorFromResendCode,
  isExpectedOutcome,
  type PigeonholeGeometry,
  ProtocolError,
  ReplicaError,
  type Request,
  type RequestKind,
  type Response,
  type ResponseKind,
  type ResponseOf,
  type SphinxGeometry,
  thinErrorText,
} from "../mod.ts";
import { decodeCbor, encodeCbor } from "../lib/cbor.ts";
import {
  type FieldSpec,
  REQUESTS,
  RESPONSES,
  STRUCTS,
} from "../lib/_protocol_schema.ts";
import { encodeResponse } from "../testing/_wire.ts";

const hex = (s: string): Uint8Array =>
  Uint8Array.from(s.replace(/\s+/g, "").match(/../g)!, (h) => parseInt(h, 16));
const toHex = (b: Uint8Array): string =>
  Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const QID = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
const TOKEN = Uint8Array.from({ length: 16 }, (_, i) => i + 1);

// Request vectors of docs/protocol.md#golden-frames (bodies, without the prefix).
Deno.test("encodeRequest() matches the Go encoder byte for byte (A.1-A.4, A.15, A.16)", () => {
  const cases: [Request, string][] = [
    [
      { kind: "session_token", clientInstanceToken: TOKEN },
      "a16d73657373696f6e5f746f6b656ea175636c69656e745f696e7374616e63655f746f6b656e50010203040506070809" +
      "0a0b0c0d0e0f10",
    ],
    [{ kind: "thin_close" }, "a16a7468696e5f636c6f7365a0"],
    [
      { kind: "get_pki_document", queryId: QID, epoch: 0n },
      "a1706765745f706b695f646f63756d656e74a26871756572795f696450a0a1a2a3a4a5a6a7a8a9aaabacadaeaf656570" +
      "6f636800",
    ],
    [
      {
        kind: "new_keypair",
        queryId: QID,
        seed: Uint8Array.from({ length: 32 }, (_, i) => i),
      },
      "a16b6e65775f6b657970616972a26871756572795f696450a0a1a2a3a4a5a6a7a8a9aaabacadaeaf6473656564582000" +
      "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
    ],
  ];
  for (const [req, want] of cases) {
    assert.equal(toHex(encodeRequest(req)), want, req.kind);
  }
});

Deno.test("encodeRequest() omits empty optional flags and keeps set ones (A.15)", () => {
  const base = {
    kind: "start_resending_encrypted_message" as const,
    queryId: QID,
    readCap: null,
    writeCap: null,
    messageBoxIndex: null,
    envelopeDescriptor: new Uint8Array([1]),
    messageCiphertext: new Uint8Array([2]),
    envelopeHash: new Uint8Array(32),
  };
  const plain = decodeCbor(encodeRequest(base)) as Record<
    string,
    Record<string, unknown>
  >;
  const body = plain["start_resending_encrypted_message"]!;
  assert.deepEqual(Object.keys(body), [
    "query_id",
    "read_cap",
    "write_cap",
    "message_box_index",
    "envelope_descriptor",
    "message_ciphertext",
    "envelope_hash",
  ]);
  const flagged = decodeCbor(
    encodeRequest({
      ...base,
      replyIndex: 1,
      noRetryOnBoxIdNotFound: true,
      noIdempotentBoxAlreadyExists: true,
    }),
  ) as Record<string, Record<string, unknown>>;
  const f = flagged["start_resending_encrypted_message"]!;
  assert.equal(f["reply_index"], 1);
  assert.equal(f["no_retry_on_box_id_not_found"], true);
  assert.equal(f["no_idempotent_box_already_exists"], true);
  assert.equal(Object.keys(f).length, 10);
});

Deno.test("encodeRequest() sends send_message without SURB as the Go client does (A.16)", () => {
  const body = encodeRequest({
    kind: "send_message",
    id: null,
    withSurb: false,
    surbId: null,
    destinationIdHash: new Uint8Array(32),
    recipientQueueId: new TextEncoder().encode("echo"),
    payload: new TextEncoder().encode("x"),
  });
  const inner = toHex(body).slice(
    toHex(encodeCbor({ send_message: null })).length - 2,
  );
  assert.equal(
    inner,
    "a6626964f669776974685f73757262f466737572626964f67364657374696e6174696f6e5f69645f6861736858200000" +
      "00000000000000000000000000000000000000000000000000000000000072726563697069656e745f71756575655f69" +
      "64446563686f677061796c6f61644178",
  );
});

const A6 =
  `b8197373657373696f6e5f746f6b656e5f7265706c79a2666170705f6964500102030405060708090a0b0c0d0e0f1067
726573756d6564f46e73687574646f776e5f6576656e74f677636f6e6e656374696f6e5f7374617475735f6576656e74
f6766e65775f706b695f646f63756d656e745f6576656e74f6726d6573736167655f73656e745f6576656e74f6736d65
73736167655f7265706c795f6576656e74f6781c6d6573736167655f69645f676172626167655f636f6c6c6563746564
f6716e65775f6b6579706169725f7265706c79f672656e63727970745f726561645f7265706c79f673656e6372797074
5f77726974655f7265706c79f6782773746172745f726573656e64696e675f656e637279707465645f6d657373616765
5f7265706c79f6782863616e63656c5f726573656e64696e675f656e637279707465645f6d6573736167655f7265706c
79f6782273746172745f726573656e64696e675f636f70795f636f6d6d616e645f7265706c79f6782363616e63656c5f
726573656e64696e675f636f70795f636f6d6d616e645f7265706c79f6781c6e6578745f6d6573736167655f626f785f
696e6465785f7265706c79f678236765745f6d6573736167655f626f785f696e6465785f636f756e7465725f7265706c
79f6766765745f706b695f646f63756d656e745f7265706c79f6781f6765745f6469726563746f72795f617574686f72
69746965735f7265706c79f6782b6372656174655f636f75726965725f656e76656c6f7065735f66726f6d5f7061796c
6f61645f7265706c79f678316372656174655f636f75726965725f656e76656c6f7065735f66726f6d5f6d756c74695f
7061796c6f61645f7265706c79f678336372656174655f636f75726965725f656e76656c6f7065735f66726f6d5f746f
6d6273746f6e655f72616e67655f7265706c79f672766f75636865725f6d696e745f7265706c79f674766f7563686572
5f696e647563745f7265706c79f672766f75636865725f6f70656e5f7265706c79f6781b766f75636865725f64657269
76655f73747265616d5f7265706c79f6`;

Deno.test("decodeResponse() picks the one non-null variant of a Go full-form envelope (A.6)", () => {
  const r = decodeResponse(hex(A6));
  assert.deepEqual(r, {
    kind: "session_token_reply",
    appId: TOKEN,
    resumed: false,
  });
});

Deno.test("decodeResponse() decodes connection_status_event geometries (A.7)", () => {
  const value = hex(
    `a56c69735f636f6e6e6563746564f563657272f66e696e7374616e63655f746f6b656e500102030405060708090a0b0c
0d0e0f106f737068696e785f67656f6d65747279ae6c5061636b65744c656e677468190c0a664e72486f7073056c4865
616465724c656e6774681901dc71526f7574696e67496e666f4c656e67746819019a77506572486f70526f7574696e67
496e666f4c656e67746818526a535552424c656e67746819023c781b537068696e78506c61696e746578744865616465
724c656e67746802705061796c6f61645461674c656e677468182074466f72776172645061796c6f61644c656e677468
190a0e781855736572466f72776172645061796c6f61644c656e6774681907d0714e6578744e6f6465486f704c656e67
7468184175535052504b65794d6174657269616c4c656e6774681840684e494b454e616d6566783235353139674b454d
4e616d656073706967656f6e686f6c655f67656f6d65747279a778194d6178506c61696e746578745061796c6f61644c
656e67746819060d76436f75726965725175657279526561644c656e6774681907d077436f7572696572517565727957
726974654c656e6774681907d0781b436f757269657251756572795265706c79526561644c656e6774681906b6781c43
6f757269657251756572795265706c7957726974654c656e6774681906b6684e494b454e616d65704354494448313032
342d583235353139735369676e6174757265536368656d654e616d656745643235353139`,
  );
  const key = encodeCbor("connection_status_event");
  const body = new Uint8Array(1 + key.length + value.length);
  body[0] = 0xa1;
  body.set(key, 1);
  body.set(value, 1 + key.length);
  const r = decodeResponse(body);
  assert.equal(r.kind, "connection_status_event");
  if (r.kind !== "connection_status_event") return;
  assert.equal(r.isConnected, true);
  assert.deepEqual(r.instanceToken, TOKEN);
  assert.equal(r.sphinxGeometry?.userForwardPayloadLength, 2000);
  assert.equal(r.sphinxGeometry?.packetLength, 3082);
  assert.equal(r.sphinxGeometry?.nikeName, "x25519");
  assert.equal(r.sphinxGeometry?.kemName, "");
  assert.equal(r.pigeonholeGeometry?.maxPlaintextPayloadLength, 1549);
  assert.equal(r.pigeonholeGeometry?.courierQueryReplyWriteLength, 1718);
  assert.equal(r.pigeonholeGeometry?.nikeName, "CTIDH1024-X25519");
  assert.equal(r.pigeonholeGeometry?.signatureSchemeName, "Ed25519");
});

function wrap(kind: string, valueHex: string): Uint8Array {
  const key = encodeCbor(kind);
  const value = hex(valueHex);
  const body = new Uint8Array(1 + key.length + value.length);
  body[0] = 0xa1;
  body.set(key, 1);
  body.set(value, 1 + key.length);
  return body;
}

Deno.test("decodeResponse() decodes message_sent_event in both forms (A.9)", () => {
  const ok = decodeResponse(wrap(
    "message_sent_event",
    "a46a6d6573736167655f6964f66673757262696450a0a1a2a3a4a5a6a7a8a9aaabacadaeaf6773656e745f61741a6955b900697265706c795f6574611a59682f00",
  ));
  assert.deepEqual(ok, {
    kind: "message_sent_event",
    messageId: null,
    surbId: QID,
    sentAt: 1767225600,
    replyEta: 1_500_000_000n,
    err: null,
  });
  const bad = decodeResponse(wrap(
    "message_sent_event",
    "a56a6d6573736167655f6964f666737572626964f66773656e745f6174f6697265706c795f657461006365727264626f6f6d",
  ));
  assert.deepEqual(bad, {
    kind: "message_sent_event",
    messageId: null,
    surbId: null,
    sentAt: null,
    replyEta: 0n,
    err: "boom",
  });
});

Deno.test("decodeResponse() keeps uint64 counters above 2^53 exact (A.12)", () => {
  const r = decodeResponse(wrap(
    "get_message_box_index_counter_reply",
    "a36871756572795f696450a0a1a2a3a4a5a6a7a8a9aaabacadaeaf67636f756e7465721b80000000000000056a6572726f725f636f646500",
  ));
  assert.equal(r.kind, "get_message_box_index_counter_reply");
  if (r.kind === "get_message_box_index_counter_reply") {
    assert.equal(r.counter, 2n ** 63n + 5n);
  }
});

Deno.test("decodeResponse() decodes copy command replies with and without detail (A.13)", () => {
  const ok = decodeResponse(wrap(
    "start_resending_copy_command_reply",
    "a26871756572795f696450a0a1a2a3a4a5a6a7a8a9aaabacadaeaf6a6572726f725f636f646500",
  ));
  assert.deepEqual(ok, {
    kind: "start_resending_copy_command_reply",
    queryId: QID,
    errorCode: 0,
    replicaErrorCode: 0,
    failedEnvelopeIndex: 0n,
  });
  const failed = decodeResponse(wrap(
    "start_resending_copy_command_reply",
    "a46871756572795f696450a0a1a2a3a4a5a6a7a8a9aaabacadaeaf6a6572726f725f636f6465181a727265706c6963615f6572726f725f636f64650a756661696c65645f656e76656c6f70655f696e64657803",
  ));
  assert.deepEqual(failed, {
    kind: "start_resending_copy_command_reply",
    queryId: QID,
    errorCode: 26,
    replicaErrorCode: 10,
    failedEnvelopeIndex: 3n,
  });
});

Deno.test("decodeResponse() tells nil from empty envelope arrays (A.17)", () => {
  const empty = decodeResponse(wrap(
    "create_courier_envelopes_from_payload_reply",
    "a46871756572795f696450a0a1a2a3a4a5a6a7a8a9aaabacadaeaf69656e76656c6f706573806f6e6578745f646573745f696e646578f66a6572726f725f636f646500",
  ));
  assert.equal(empty.kind, "create_courier_envelopes_from_payload_reply");
  if (empty.kind === "create_courier_envelopes_from_payload_reply") {
    assert.deepEqual(empty.envelopes, []);
  }
  const nil = decodeResponse(wrap(
    "create_courier_envelopes_from_payload_reply",
    "a46871756572795f696450a0a1a2a3a4a5a6a7a8a9aaabacadaeaf69656e76656c6f706573f66f6e6578745f646573745f696e646578f66a6572726f725f636f646504",
  ));
  if (nil.kind === "create_courier_envelopes_from_payload_reply") {
    assert.equal(nil.envelopes, null);
    assert.equal(nil.errorCode, 4);
  }
});

Deno.test("decodeResponse() rejects wrong field types with ProtocolError naming the field", () => {
  const cases: [unknown, RegExp][] = [
    [
      { session_token_reply: { app_id: "text", resumed: false } },
      /'session_token_reply.app_id' is text string/,
    ],
    [
      { session_token_reply: { app_id: new Uint8Array(3), resumed: false } },
      /has 3 bytes, expected 16/,
    ],
    [
      { session_token_reply: { app_id: TOKEN, resumed: 1 } },
      /resumed' is integer, expected a boolean/,
    ],
    [
      { new_keypair_reply: { query_id: QID, error_code: 256 } },
      /error_code' is integer, expected an unsigned integer ≤ 255/,
    ],
    [{ new_keypair_reply: { query_id: QID, error_code: -1 } }, /error_code/],
    [
      { new_keypair_reply: true },
      /'new_keypair_reply' is boolean, expected a map/,
    ],
    [[1, 2], /'\(envelope\)' is array, expected a map/],
    [
      { get_message_box_index_counter_reply: { counter: 1.5 } },
      /invalid CBOR in \d+-byte body: float where none is allowed at byte \d+/,
    ],
  ];
  for (const [value, re] of cases) {
    assert.throws(() => decodeResponse(encodeCbor(value)), (err: unknown) => {
      assert.ok(err instanceof ProtocolError, String(err));
      assert.match(err.message, re);
      return true;
    });
  }
  assert.throws(() => decodeResponse(new Uint8Array([0xff])), ProtocolError);
  assert.throws(() => decodeResponse(new Uint8Array(0)), ProtocolError);
  assert.throws(
    () => decodeResponse(new Uint8Array([0xa1, 0x61])),
    ProtocolError,
  );
});

Deno.test("decodeResponse() tolerates unknown keys, missing keys and unknown variants", () => {
  const r = decodeResponse(
    encodeCbor({
      future_event: { x: 1 },
      session_token_reply: { app_id: TOKEN, extra: 9 },
    }),
  );
  assert.deepEqual(r, {
    kind: "session_token_reply",
    appId: TOKEN,
    resumed: false,
  });
  assert.deepEqual(decodeResponse(encodeCbor({ future_event: { x: 1 } })), {
    kind: "unknown",
    keys: ["future_event"],
  });
});

Deno.test("error mapping follows the Go tables", () => {
  assert.equal(thinErrorText(13), "Propagation error");
  assert.equal(thinErrorText(27), "Payload too large");
  assert.equal(thinErrorText(200), "Unknown thin client error code: 200");
  for (const code of [1, 10, 11]) {
    assert.ok(isExpectedOutcome(errorFromResendCode(code)));
  }
  for (const code of [2, 3, 4, 9]) {
    const e = errorFromResendCode(code);
    assert.ok(e instanceof ReplicaError);
    assert.equal(isExpectedOutcome(e), false);
  }
  assert.equal(errorFromResendCode(24).name, "CancelledError");
  assert.equal(errorFromResendCode(22).name, "DaemonError");
  assert.match(
    errorFromResendCode(32).message,
    /replica epoch outside tolerance window/,
  );
});

Deno.test("decodeResponse() never crashes on random or mutated frames (bounded fuzz)", () => {
  let seed = 12345;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const samples = [
    hex(A6),
    encodeCbor({
      new_keypair_reply: {
        query_id: QID,
        write_cap: new Uint8Array(168),
        error_code: 0,
      },
    }),
  ];
  let ok = 0;
  let typed = 0;
  for (let i = 0; i < 5000; i++) {
    let input: Uint8Array;
    if (i % 2 === 0) {
      input = Uint8Array.from({ length: rnd(64) }, () => rnd(256));
    } else {
      const base = samples[rnd(samples.length)]!;
      input = base.slice(0, rnd(base.length + 1));
      for (let m = 0; m < 1 + rnd(4); m++) {
        if (input.length > 0) input[rnd(input.length)] = rnd(256);
      }
    }
    try {
      decodeResponse(input);
      ok++;
    } catch (err) {
      assert.ok(err instanceof ProtocolError, `not a ProtocolError: ${err}`);
      typed++;
    }
  }
  assert.equal(ok + typed, 5000);
  assert.ok(typed > 1000);
});

// A reference reader, written apart from lib/cbor.ts: the items of a body
// with their offsets, and what the Go daemon would never send.
interface RefItem {
  start: number;
  end: number;
  major: number;
  depth: number;
}

function refItems(b: Uint8Array): {
  items: RefItem[];
  elements: number;
  depth: number;
  foreign: boolean; // a float, tag, indefinite length or odd simple value
} {
  const items: RefItem[] = [];
  let elements = 0;
  let maxDepth = 0;
  let foreign = false;
  const read = (pos: number, depth: number): number => {
    if (pos >= b.length) throw new RangeError("truncated");
    maxDepth = Math.max(maxDepth, depth);
    const ib = b[pos]!;
    const major = ib >> 5;
    const ai = ib & 31;
    let p = pos + 1;
    let n = ai;
    if (ai === 31) {
      foreign = true;
      throw new RangeError("indefinite");
    }
    if (ai > 27) throw new RangeError("reserved");
    if (ai >= 24) {
      const w = 1 << (ai - 24);
      if (p + w > b.length) throw new RangeError("truncated");
      n = 0;
      for (let i = 0; i < w; i++) n = n * 256 + b[p + i]!;
      p += w;
    }
    const item: RefItem = { start: pos, end: 0, major, depth };
    items.push(item);
    if (major === 2 || major === 3) p += n;
    else if (major === 4 || major === 5) {
      elements += n;
      if (elements > 1_000_000) throw new RangeError("huge");
      for (let i = 0; i < n * (major === 5 ? 2 : 1); i++) {
        p = read(p, depth + 1);
      }
    } else if (major === 6) {
      foreign = true;
      p = read(p, depth + 1);
    } else if (major === 7 && (ai >= 24 || ai < 20)) foreign = true;
    if (p > b.length) throw new RangeError("truncated");
    item.end = p;
    return p;
  };
  const end = read(0, 0);
  if (end !== b.length) throw new RangeError("trailing");
  return { items, elements, depth: maxDepth, foreign };
}

function splice(b: Uint8Array, at: RefItem, bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(b.length - (at.end - at.start) + bytes.length);
  out.set(b.subarray(0, at.start));
  out.set(bytes, at.start);
  out.set(b.subarray(at.end), at.start + bytes.length);
  return out;
}

/** Replacements that the Go daemon never sends, for an item. */
function hostile(rnd: (n: number) => number, item: Uint8Array): Uint8Array {
  const arrayOf = (n: number, fill: number[]): Uint8Array => {
    const out = new Uint8Array(5 + n * fill.length);
    out[0] = 0x9a;
    new DataView(out.buffer).setUint32(1, n, false);
    for (let i = 0; i < n; i++) out.set(fill, 5 + i * fill.length);
    return out;
  };
  switch (rnd(10)) {
    case 0: // the same integer, as a half, single or double float
    case 1: {
      const v = (item[0]! & 31) < 24 ? item[0]! & 31 : 3;
      const out = new Uint8Array(9);
      out[0] = 0xfb;
      new DataView(out.buffer).setFloat64(1, rnd(2) ? v : 1e300, false);
      return out;
    }
    case 2: // -2^63
      return Uint8Array.from([0x3b, 0x7f, 255, 255, 255, 255, 255, 255, 255]);
    case 3: // 2^64 - 1
      return Uint8Array.from([0x1b, 255, 255, 255, 255, 255, 255, 255, 255]);
    case 4: // many tiny items: the amplification shapes of issue 9
      return arrayOf(70_000 + rnd(1000), [[0xa0], [0x80], [0xf6]][rnd(3)]!);
    case 5:
      return arrayOf(300, [0x98, 250, ...new Array(250).fill(0xa0)]);
    case 6: // deeper than 32
      return Uint8Array.from([...new Array(40).fill(0x81), 0x00]);
    case 7: // a tag around the item
      return Uint8Array.from([0xd8, 0x40, ...item]);
    case 8: // an indefinite-length array around it
      return Uint8Array.from([0x9f, ...item, 0xff]);
    default: // a simple value
      return Uint8Array.from([0xf8, 0x20 + rnd(200)]);
  }
}

Deno.test("decodeResponse() keeps its limits and ranges on structurally mutated frames (fuzz)", () => {
  let seed = 777;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const samples = [
    encodeResponse("new_keypair_reply", {
      "query_id": QID,
      "write_cap": new Uint8Array(168),
      "error_code": 0,
    }, true),
    encodeResponse("message_reply_event", {
      "surbid": QID,
      "payload": new Uint8Array(8),
      "reply_index": 1,
      "error_code": 2,
    }, false),
    encodeResponse("start_resending_copy_command_reply", {
      "query_id": QID,
      "error_code": 26,
      "replica_error_code": 10,
      "failed_envelope_index": 3,
    }, true),
    encodeResponse("get_message_box_index_counter_reply", {
      "query_id": QID,
      "counter": 2n ** 60n,
    }, false),
    encodeResponse("create_courier_envelopes_from_payload_reply", {
      "query_id": QID,
      "envelopes": [new Uint8Array(3), new Uint8Array(4)],
      "next_dest_index": new Uint8Array(104),
    }, false),
  ];
  const counts = { accepted: 0, refused: 0 };
  for (let i = 0; i < 3000; i++) {
    const base = samples[rnd(samples.length)]!;
    const { items } = refItems(base);
    const target = items[1 + rnd(items.length - 1)]!;
    // Two in five replacements are ordinary items, so that some frames pass
    // and their values can be checked.
    const benign = [[0x00], [0x17], [0xf6], [0x40], [0x61, 0x78], [0xa0], [
      0x19,
      0x01,
      0x00,
    ]];
    const body = splice(
      base,
      target,
      rnd(5) < 2
        ? Uint8Array.from(benign[rnd(benign.length)]!)
        : hostile(rnd, base.subarray(target.start, target.end)),
    );
    let r: Response;
    try {
      r = decodeResponse(body);
    } catch (err) {
      assert.ok(err instanceof ProtocolError, `not a ProtocolError: ${err}`);
      counts.refused++;
      continue;
    }
    counts.accepted++;
    // Accepted: the body is something kpclientd could have sent...
    const ref = refItems(body);
    assert.ok(!ref.foreign, "accepted a float, tag or simple value");
    assert.ok(ref.elements <= 65_536, `accepted ${ref.elements} elements`);
    assert.ok(ref.depth <= 32, `accepted nesting ${ref.depth}`);
    // ...and every number is in its Go type's range.
    const fields = r as unknown as Record<string, unknown>;
    for (const k of ["errorCode", "replicaErrorCode", "replyIndex"]) {
      const v = fields[k];
      if (v === undefined || v === null) continue;
      assert.ok(
        Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 255,
        `${k} ${v}`,
      );
    }
    for (const k of ["counter", "failedEnvelopeIndex", "replyEta", "epoch"]) {
      const v = fields[k];
      if (v === undefined) continue;
      assert.ok(typeof v === "bigint" && v >= 0n && v < 2n ** 64n, `${k} ${v}`);
    }
  }
  assert.ok(
    counts.accepted > 100 && counts.refused > 1000,
    JSON.stringify(counts),
  );
});

Deno.test("decodeResponse() refuses text that is not UTF-8, as Go does", () => {
  const good = encodeResponse("message_sent_event", { "err": "ab" }, false);
  const at = good.lastIndexOf(0x62); // "b"
  const bad = good.slice();
  bad[at] = 0xff;
  assert.equal(
    (decodeResponse(good) as { err: string | null }).err,
    "ab",
  );
  assert.throws(() => decodeResponse(bad), (err: unknown) => {
    assert.ok(err instanceof ProtocolError, String(err));
    assert.match(
      err.message,
      /field 'message_sent_event.err' is invalid: text string is not valid UTF-8/,
    );
    return true;
  });
});

// ---------------------------------------------------------------------------
// The protocol schema (lib/_protocol_schema.ts) and what is derived from it

type Schema = Record<string, Record<string, FieldSpec>>;

/** A sample of a field type: the value in TypeScript and on the wire. */
function sample(type: string, seed: number): { ts: unknown; wire: unknown } {
  const nullable = type.endsWith("?");
  const bare = nullable ? type.slice(0, -1) : type;
  if (bare.endsWith("[]")) {
    const items = [
      sample(bare.slice(0, -2), seed),
      sample(bare.slice(0, -2), seed + 1),
    ];
    return { ts: items.map((i) => i.ts), wire: items.map((i) => i.wire) };
  }
  const bytes = (n: number) =>
    Uint8Array.from({ length: n }, (_, i) => seed + i);
  switch (bare) {
    case "bytes":
      return { ts: bytes(3), wire: bytes(3) };
    case "id":
      return { ts: bytes(16), wire: bytes(16) };
    case "hash":
      return { ts: bytes(32), wire: bytes(32) };
    case "u8":
      return { ts: seed % 256, wire: seed % 256 };
    case "u32":
    case "uint":
      return { ts: 70_000 + seed, wire: 70_000 + seed };
    case "u64":
      return {
        ts: (1n << 60n) + BigInt(seed),
        wire: (1n << 60n) + BigInt(seed),
      };
    case "time":
      return { ts: 1_700_000_000 + seed, wire: 1_700_000_000 + seed };
    case "bool":
      return { ts: true, wire: true };
    case "text":
      return { ts: `t${seed}`, wire: `t${seed}` };
  }
  const fields = STRUCTS[bare as keyof typeof STRUCTS] as Record<
    string,
    FieldSpec
  >;
  assert.ok(fields !== undefined, `no sample for type "${type}"`);
  const ts: Record<string, unknown> = {};
  const wire: Record<string, unknown> = {};
  let i = 0;
  for (const [name, f] of Object.entries(fields)) {
    const s = sample(f.type, seed + ++i);
    ts[name] = s.ts;
    wire[f.wire] = s.wire;
  }
  return { ts, wire };
}

Deno.test("encodeRequest() puts every schema field under its wire key, in order", () => {
  for (const [kind, fields] of Object.entries(REQUESTS as Schema)) {
    const request: Record<string, unknown> = { kind };
    const wire: Record<string, unknown> = {};
    let seed = 1;
    for (const [name, f] of Object.entries(fields)) {
      const s = sample(f.type, seed++);
      request[name] = s.ts;
      wire[f.wire] = s.wire;
    }
    const body = encodeRequest(request as Request);
    assert.deepEqual(decodeCbor(body), { [kind]: wire }, kind);
    assert.deepEqual(body, encodeCbor({ [kind]: wire }), `${kind}: key order`);
  }
});

Deno.test("decodeResponse() builds every schema field, and only those, under its TypeScript name", () => {
  for (const [kind, fields] of Object.entries(RESPONSES as Schema)) {
    const expected: Record<string, unknown> = { kind };
    const wire: Record<string, unknown> = { "unknown_field": 1 };
    let seed = 1;
    for (const [name, f] of Object.entries(fields)) {
      const s = sample(f.type, seed++);
      expected[name] = s.ts;
      wire[f.wire] = s.wire;
    }
    assert.deepEqual(
      decodeResponse(encodeCbor({ [kind]: wire })),
      expected,
      kind,
    );
    // Absent: null for `?` fields, Go zero values otherwise (required
    // byte strings refuse to be absent).
    const required = Object.entries(fields).filter(([, f]) =>
      !f.type.endsWith("?") && /^(id|hash|bytes)$/.test(f.type) && !f.zero
    );
    if (required.length > 0) {
      assert.throws(
        () => decodeResponse(encodeCbor({ [kind]: {} })),
        (e) =>
          e instanceof ProtocolError &&
          e.message.includes(`'${kind}.${required[0]![1].wire}' is null`),
      );
      continue;
    }
    const empty = decodeResponse(
      encodeCbor({ [kind]: {} }),
    ) as unknown as Record<string, unknown>;
    assert.deepEqual(Object.keys(empty), Object.keys(expected), kind);
    for (const [name, f] of Object.entries(fields)) {
      if (f.type.endsWith("?")) {
        assert.equal(empty[name], null, `${kind}.${name}`);
      } else assert.notEqual(empty[name], null, `${kind}.${name}`);
    }
  }
});

Deno.test("decodeResponse() checks fields of nested maps against the schema", () => {
  const status = (sphinx: Record<string, unknown>) =>
    encodeCbor({
      connection_status_event: {
        is_connected: true,
        instance_token: TOKEN,
        sphinx_geometry: sphinx,
      },
    });
  assert.throws(
    () => decodeResponse(status({ NrHops: "five" })),
    /field 'connection_status_event\.sphinx_geometry\.NrHops' is text string, expected an unsigned integer/,
  );
  const r = decodeResponse(status({ NrHops: 5, __proto__x: 1 }));
  assert.ok(r.kind === "connection_status_event");
  assert.equal(r.sphinxGeometry?.nrHops, 5);
  assert.equal(r.sphinxGeometry?.kemName, "");
  assert.deepEqual(
    Object.keys(r.sphinxGeometry!),
    Object.keys(STRUCTS.sphinxGeometry),
  );
});

/** `true` when `A` and `B` are the same type. */
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends
  (<T>() => T extends B ? 1 : 2) ? true
  : false;
/** `true` when each of `A` and `B` is assignable to the other. */
type Mutual<A, B> = [A] extends [B] ? [B] extends [A] ? true : false : false;

/** Schema fields missing from the derived variant of each kind (never, when none). */
type Missing<M extends Record<string, object>, U extends { kind: string }> = {
  [K in keyof M & string]: Exclude<keyof M[K], keyof Extract<U, { kind: K }>>;
}[keyof M & string];

Deno.test("Request and Response are derived from the schema with the shapes of the hand-written unions", () => {
  const checks: [
    Same<Missing<typeof REQUESTS, Request>, never>,
    Same<Missing<typeof RESPONSES, Response>, never>,
    Same<RequestKind, keyof typeof REQUESTS>,
    Same<Exclude<ResponseKind, "unknown">, keyof typeof RESPONSES>,
    Mutual<Request, ExpectedRequest>,
    Mutual<Response, ExpectedResponse>,
    Same<ResponseOf<"message_reply_event">["replyIndex"], number | null>,
    Same<
      ResponseOf<"connection_status_event">["sphinxGeometry"],
      SphinxGeometry | null
    >,
    Same<
      Extract<
        Request,
        { kind: "start_resending_copy_command" }
      >["courierIdentityHash"],
      Uint8Array | undefined
    >,
    Same<Extract<Request, { kind: "get_pki_document" }>["epoch"], bigint>,
  ] = [true, true, true, true, true, true, true, true, true, true];
  assert.ok(checks.every((c) => c));
  // exactOptionalPropertyTypes: an omitEmpty field may be left out, not set
  // to undefined.
  const minimal: Request = {
    kind: "start_resending_copy_command",
    queryId: QID,
    writeCap: new Uint8Array(168),
  };
  assert.equal(encodeRequest(minimal).length > 0, true);
});

/** The TypeScript type of a schema field type, as the docs write it. */
function docType(type: string): string {
  const nullable = type.endsWith("?");
  const bare = nullable ? type.slice(0, -1) : type;
  const array = bare.endsWith("[]");
  const base = array ? bare.slice(0, -2) : bare;
  const names: Record<string, string> = {
    bytes: "Uint8Array",
    id: "Uint8Array",
    hash: "Uint8Array",
    u8: "number",
    u32: "number",
    uint: "number",
    time: "number",
    u64: "bigint",
    bool: "boolean",
    text: "string",
  };
  const t = names[base] ?? base[0]!.toUpperCase() + base.slice(1);
  return `${t}${array ? "[]" : ""}${nullable ? " | null" : ""}`;
}

/** The JSDoc lines listing each variant and its fields, wrapped at 80. */
function docList(schema: Schema): string[] {
  const lines: string[] = [];
  for (const [kind, fields] of Object.entries(schema)) {
    const words = Object.entries(fields).map(([name, f], i, all) =>
      `\`${name}${f.omitEmpty ? "?" : ""}: ${docType(f.type)}\`${
        i < all.length - 1 ? "," : ""
      }`
    );
    if (words.length === 0) words.push("no fields");
    let line = ` * - \`${kind}\`:`;
    for (const w of words) {
      if (line.length + 1 + w.length > 80) {
        lines.push(line);
        line = ` *   ${w}`;
      } else line += ` ${w}`;
    }
    lines.push(line);
  }
  return lines;
}

/** The variant list of the JSDoc block before `export type <name>`. */
function docListOf(source: string, name: string): string[] {
  const end = source.indexOf(`export type ${name} =`);
  const start = source.lastIndexOf("/**", end);
  const block = source.slice(start, end).split("\n");
  return block.filter((l) => l.startsWith(" * - `") || l.startsWith(" *   "));
}

Deno.test("the docs of Request and Response list the schema's variants and fields", async () => {
  const source = await Deno.readTextFile(
    new URL("../lib/protocol.ts", import.meta.url),
  );
  const request = docList(REQUESTS as Schema);
  assert.deepEqual(docListOf(source, "Request"), request, request.join("\n"));
  const response = docList(RESPONSES as Schema);
  assert.deepEqual(
    docListOf(source, "Response"),
    response,
    response.join("\n"),
  );
});

// The unions of lib/protocol.ts as they were written by hand before the
// schema: the derived types must keep these shapes.
type ExpectedDestination = CopyDestination;
type ExpectedRequest =
  | { kind: "session_token"; clientInstanceToken: Uint8Array }
  | { kind: "thin_close" }
  | {
    kind: "send_message";
    id: Uint8Array | null;
    withSurb: boolean;
    surbId: Uint8Array | null;
    destinationIdHash: Uint8Array;
    recipientQueueId: Uint8Array;
    payload: Uint8Array;
  }
  | { kind: "new_keypair"; queryId: Uint8Array; seed: Uint8Array }
  | {
    kind: "encrypt_read";
    queryId: Uint8Array;
    readCap: Uint8Array;
    messageBoxIndex: Uint8Array;
  }
  | {
    kind: "encrypt_write";
    queryId: Uint8Array;
    plaintext: Uint8Array;
    writeCap: Uint8Array;
    messageBoxIndex: Uint8Array;
  }
  | {
    kind: "start_resending_encrypted_message";
    queryId: Uint8Array;
    readCap: Uint8Array | null;
    writeCap: Uint8Array | null;
    messageBoxIndex: Uint8Array | null;
    replyIndex?: number;
    envelopeDescriptor: Uint8Array;
    messageCiphertext: Uint8Array;
    envelopeHash: Uint8Array;
    noRetryOnBoxIdNotFound?: boolean;
    noIdempotentBoxAlreadyExists?: boolean;
  }
  | {
    kind: "cancel_resending_encrypted_message";
    queryId: Uint8Array;
    envelopeHash: Uint8Array;
  }
  | {
    kind: "start_resending_copy_command";
    queryId: Uint8Array;
    writeCap: Uint8Array;
    courierIdentityHash?: Uint8Array;
    courierQueueId?: Uint8Array;
  }
  | {
    kind: "cancel_resending_copy_command";
    queryId: Uint8Array;
    writeCapHash: Uint8Array;
  }
  | {
    kind: "next_message_box_index";
    queryId: Uint8Array;
    messageBoxIndex: Uint8Array;
  }
  | {
    kind: "get_message_box_index_counter";
    queryId: Uint8Array;
    messageBoxIndex: Uint8Array;
  }
  | { kind: "get_pki_document"; queryId: Uint8Array; epoch: bigint }
  | { kind: "get_directory_authorities"; queryId: Uint8Array }
  | {
    kind: "create_courier_envelopes_from_payload";
    queryId: Uint8Array;
    payload: Uint8Array;
    destWriteCap: Uint8Array;
    destStartIndex: Uint8Array;
    isStart: boolean;
    isLast: boolean;
  }
  | {
    kind: "create_courier_envelopes_from_multi_payload";
    queryId: Uint8Array;
    destinations: ExpectedDestination[];
    isStart: boolean;
    isLast: boolean;
    buffer: Uint8Array | null;
  }
  | {
    kind: "create_courier_envelopes_from_tombstone_range";
    queryId: Uint8Array;
    destWriteCap: Uint8Array;
    destStartIndex: Uint8Array;
    maxCount: number;
    isStart: boolean;
    isLast: boolean;
    buffer: Uint8Array | null;
  }
  | {
    kind: "voucher_mint";
    queryId: Uint8Array;
    messageWriteCap: Uint8Array;
    displayName: string;
  }
  | {
    kind: "voucher_induct";
    queryId: Uint8Array;
    voucher: Uint8Array;
    voucherPayload: Uint8Array;
    whoReply: Uint8Array;
  }
  | {
    kind: "voucher_open";
    queryId: Uint8Array;
    voucherSecretKey: Uint8Array;
    sealedReply: Uint8Array;
    messageWriteCap: Uint8Array;
  }
  | { kind: "voucher_derive_stream"; queryId: Uint8Array; voucher: Uint8Array };

type ExpectedResponse =
  | { kind: "session_token_reply"; appId: Uint8Array; resumed: boolean }
  | { kind: "shutdown_event" }
  | {
    kind: "connection_status_event";
    isConnected: boolean;
    instanceToken: Uint8Array;
    sphinxGeometry: SphinxGeometry | null;
    pigeonholeGeometry: PigeonholeGeometry | null;
  }
  | { kind: "new_pki_document_event"; payload: Uint8Array | null }
  | {
    kind: "message_sent_event";
    messageId: Uint8Array | null;
    surbId: Uint8Array | null;
    sentAt: number | null;
    replyEta: bigint;
    err: string | null;
  }
  | {
    kind: "message_reply_event";
    messageId: Uint8Array | null;
    surbId: Uint8Array | null;
    payload: Uint8Array | null;
    replyIndex: number | null;
    errorCode: number;
  }
  | { kind: "message_id_garbage_collected"; messageId: Uint8Array | null }
  | {
    kind: "new_keypair_reply";
    queryId: Uint8Array | null;
    writeCap: Uint8Array | null;
    readCap: Uint8Array | null;
    firstMessageIndex: Uint8Array | null;
    errorCode: number;
  }
  | {
    kind: "encrypt_read_reply" | "encrypt_write_reply";
    queryId: Uint8Array | null;
    messageCiphertext: Uint8Array | null;
    envelopeDescriptor: Uint8Array | null;
    envelopeHash: Uint8Array | null;
    nextMessageBoxIndex: Uint8Array | null;
    errorCode: number;
  }
  | {
    kind: "start_resending_encrypted_message_reply";
    queryId: Uint8Array | null;
    plaintext: Uint8Array | null;
    errorCode: number;
    courierIdentityHash: Uint8Array | null;
    courierQueueId: Uint8Array | null;
  }
  | {
    kind:
      | "cancel_resending_encrypted_message_reply"
      | "cancel_resending_copy_command_reply";
    queryId: Uint8Array | null;
    errorCode: number;
  }
  | {
    kind: "start_resending_copy_command_reply";
    queryId: Uint8Array | null;
    errorCode: number;
    replicaErrorCode: number;
    failedEnvelopeIndex: bigint;
  }
  | {
    kind: "next_message_box_index_reply";
    queryId: Uint8Array | null;
    nextMessageBoxIndex: Uint8Array | null;
    errorCode: number;
  }
  | {
    kind: "get_message_box_index_counter_reply";
    queryId: Uint8Array | null;
    counter: bigint;
    errorCode: number;
  }
  | {
    kind: "get_pki_document_reply";
    queryId: Uint8Array | null;
    payload: Uint8Array | null;
    epoch: bigint;
    errorCode: number;
  }
  | {
    kind: "get_directory_authorities_reply";
    queryId: Uint8Array | null;
    authorities: DirectoryAuthority[] | null;
    errorCode: number;
  }
  | {
    kind: "create_courier_envelopes_from_payload_reply";
    queryId: Uint8Array | null;
    envelopes: Uint8Array[] | null;
    nextDestIndex: Uint8Array | null;
    errorCode: number;
  }
  | {
    kind: "create_courier_envelopes_from_multi_payload_reply";
    queryId: Uint8Array | null;
    envelopes: Uint8Array[] | null;
    buffer: Uint8Array | null;
    nextDestIndices: Uint8Array[] | null;
    errorCode: number;
  }
  | {
    kind: "create_courier_envelopes_from_tombstone_range_reply";
    queryId: Uint8Array | null;
    envelopes: Uint8Array[] | null;
    buffer: Uint8Array | null;
    nextDestIndex: Uint8Array | null;
    errorCode: number;
  }
  | {
    kind: "voucher_mint_reply";
    queryId: Uint8Array | null;
    voucher: Uint8Array | null;
    voucherPayload: Uint8Array | null;
    voucherWriteCap: Uint8Array | null;
    voucherReadCap: Uint8Array | null;
    voucherSecretKey: Uint8Array | null;
    voucherPublicKey: Uint8Array | null;
    errorCode: number;
  }
  | {
    kind: "voucher_induct_reply";
    queryId: Uint8Array | null;
    displayName: string;
    mutatedMessageReadCap: Uint8Array | null;
    sealedReply: Uint8Array | null;
    voucherWriteCap: Uint8Array | null;
    voucherReadCap: Uint8Array | null;
    salt: Uint8Array | null;
    errorCode: number;
  }
  | {
    kind: "voucher_open_reply";
    queryId: Uint8Array | null;
    whoReply: Uint8Array | null;
    salt: Uint8Array | null;
    mutatedMessageWriteCap: Uint8Array | null;
    errorCode: number;
  }
  | {
    kind: "voucher_derive_stream_reply";
    queryId: Uint8Array | null;
    voucherWriteCap: Uint8Array | null;
    voucherReadCap: Uint8Array | null;
    errorCode: number;
  }
  | { kind: "unknown"; keys: string[] };
