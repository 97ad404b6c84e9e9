// Golden vectors of docs/protocol.md#golden-frames (testdata/frames/*.cbor).
// File names: <appendix>_<what>.<form>.cbor, where form is "frame" (4-byte
// length prefix + body), "body" (a whole envelope map) or "value" (the body
// of one variant only).
import assert from "node:assert/strict";
import { decodeCbor, encodeCbor } from "../lib/cbor.ts";
import { encodeFrame, FrameDecoder } from "../lib/framing.ts";
import { FakeDaemon } from "../testing/mod.ts";
import {
  DEFAULT_PIGEONHOLE_GEOMETRY,
  DEFAULT_SPHINX_GEOMETRY,
  orderedPigeonholeGeometry,
  orderedSphinxGeometry,
} from "../testing/_pki.ts";
import {
  decodeRequest,
  encodeOrdered,
  encodeResponse,
  encodeResponseFrame,
  RESPONSE_VARIANTS,
  responseBody,
} from "../testing/_wire.ts";

const DIR = new URL("../testdata/frames/", import.meta.url);
const QID = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
const TOKEN = Uint8Array.from({ length: 16 }, (_, i) => i + 1);

function load(name: string): Uint8Array {
  return Deno.readFileSync(new URL(name, DIR));
}

function bodyOf(name: string): Uint8Array {
  const bytes = load(name);
  if (!name.endsWith(".frame.cbor")) return bytes;
  const len = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0);
  assert.equal(len, bytes.length - 4, `${name}: length prefix`);
  return bytes.subarray(4);
}

/** A single-key envelope around raw variant bytes. */
function singleKey(variant: string, value: Uint8Array): Uint8Array {
  const key = encodeCbor(variant);
  const out = new Uint8Array(1 + key.length + value.length);
  out[0] = 0xa1;
  out.set(key, 1);
  out.set(value, 1 + key.length);
  return out;
}

/** A Go full-form envelope around raw variant bytes. */
function fullForm(variant: string, value: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [new Uint8Array([0xb8, 0x19])];
  for (const v of RESPONSE_VARIANTS) {
    parts.push(encodeCbor(v), v === variant ? value : new Uint8Array([0xf6]));
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

Deno.test("golden vectors all decode with lib/cbor", () => {
  const names = [...Deno.readDirSync(DIR)].map((e) => e.name).sort();
  assert.equal(names.length, 24);
  for (const name of names) {
    const value = decodeCbor(bodyOf(name));
    assert.equal(typeof value, "object", name);
  }
});

Deno.test("golden client vectors are accepted by the fake daemon's decoder", () => {
  const expect: [string, string][] = [
    ["a01_session_token.frame.cbor", "session_token"],
    ["a02_thin_close.frame.cbor", "thin_close"],
    ["a03_get_pki_document.frame.cbor", "get_pki_document"],
    ["a04_new_keypair.frame.cbor", "new_keypair"],
    ["a05_session_token_go_form.body.cbor", "session_token"],
  ];
  for (const [name, kind] of expect) {
    const req = decodeRequest(bodyOf(name));
    assert.equal(req.kind, kind, name);
  }
  const token = decodeRequest(bodyOf("a05_session_token_go_form.body.cbor"));
  assert.deepEqual(token.fields["client_instance_token"], TOKEN);
  for (
    const name of [
      "a15_start_resending_encrypted_message_minimal.value.cbor",
      "a15_start_resending_encrypted_message_flags.value.cbor",
    ]
  ) {
    const req = decodeRequest(
      singleKey("start_resending_encrypted_message", bodyOf(name)),
    );
    assert.equal(req.kind, "start_resending_encrypted_message");
  }
  const flags = decodeRequest(singleKey(
    "start_resending_encrypted_message",
    bodyOf("a15_start_resending_encrypted_message_flags.value.cbor"),
  ));
  assert.equal(flags.fields["reply_index"], 1);
  assert.equal(flags.fields["no_retry_on_box_id_not_found"], true);
  const send = decodeRequest(
    singleKey("send_message", bodyOf("a16_send_message_no_surb.value.cbor")),
  );
  assert.equal(send.fields["with_surb"], false);
  assert.deepEqual(
    send.fields["recipient_queue_id"],
    new Uint8Array([0x65, 0x63, 0x68, 0x6f]),
  );
});

Deno.test("fake daemon encoder reproduces the daemon-side golden vectors", () => {
  const same = (got: Uint8Array, name: string) =>
    assert.deepEqual(got, load(name), name);
  same(
    encodeResponse(
      "session_token_reply",
      responseBody("session_token_reply", {
        "app_id": TOKEN,
        "resumed": false,
      }),
      true,
    ),
    "a06_session_token_reply_go_form.body.cbor",
  );
  same(
    encodeResponseFrame(
      "session_token_reply",
      responseBody("session_token_reply", { "app_id": TOKEN, "resumed": true }),
      false,
    ),
    "a06_session_token_reply_resumed.frame.cbor",
  );
  same(
    encodeOrdered(responseBody("connection_status_event", {
      "is_connected": true,
      "instance_token": TOKEN,
      "sphinx_geometry": orderedSphinxGeometry(DEFAULT_SPHINX_GEOMETRY),
      "pigeonhole_geometry": orderedPigeonholeGeometry(
        DEFAULT_PIGEONHOLE_GEOMETRY,
      ),
    })),
    "a07_connection_status_event.value.cbor",
  );
  same(
    encodeResponseFrame(
      "shutdown_event",
      responseBody("shutdown_event", {}),
      false,
    ),
    "a08_shutdown_event.frame.cbor",
  );
  same(
    encodeResponseFrame(
      "new_pki_document_event",
      responseBody("new_pki_document_event", {}),
      false,
    ),
    "a08_new_pki_document_event_null.frame.cbor",
  );
  same(
    encodeOrdered(responseBody("message_sent_event", {
      "surbid": QID,
      "sent_at": 1767225600,
      "reply_eta": 1_500_000_000,
    })),
    "a09_message_sent_event.value.cbor",
  );
  same(
    encodeOrdered(responseBody("message_sent_event", { "err": "boom" })),
    "a09_message_sent_event_failure.value.cbor",
  );
  same(
    encodeOrdered(responseBody("message_reply_event", {
      "surbid": QID,
      "payload": new Uint8Array([0x68, 0x69]),
    })),
    "a10_message_reply_event.value.cbor",
  );
  same(
    encodeOrdered(
      responseBody("new_keypair_reply", { "query_id": QID, "error_code": 3 }),
    ),
    "a11_new_keypair_reply_error.value.cbor",
  );
  same(
    encodeOrdered(responseBody("get_message_box_index_counter_reply", {
      "query_id": QID,
      "counter": 2n ** 63n + 5n,
    })),
    "a12_get_message_box_index_counter_reply.value.cbor",
  );
  same(
    encodeOrdered(
      responseBody("start_resending_copy_command_reply", { "query_id": QID }),
    ),
    "a13_start_resending_copy_command_reply_ok.value.cbor",
  );
  same(
    encodeOrdered(responseBody("start_resending_copy_command_reply", {
      "query_id": QID,
      "error_code": 26,
      "replica_error_code": 10,
      "failed_envelope_index": 3,
    })),
    "a13_start_resending_copy_command_reply_failed.value.cbor",
  );
  same(
    encodeResponseFrame(
      "start_resending_encrypted_message_reply",
      responseBody("start_resending_encrypted_message_reply", {
        "query_id": QID,
        "error_code": 24,
        "courier_identity_hash": new Uint8Array(32),
        "courier_queue_id": new TextEncoder().encode("courier"),
      }),
      false,
    ),
    "a14_cancelled_start_reply.frame.cbor",
  );
  same(
    encodeResponseFrame(
      "cancel_resending_encrypted_message_reply",
      responseBody("cancel_resending_encrypted_message_reply", {
        "query_id": QID,
      }),
      false,
    ),
    "a14_cancel_reply.frame.cbor",
  );
  same(
    encodeOrdered(
      responseBody("create_courier_envelopes_from_payload_reply", {
        "query_id": QID,
        "envelopes": [],
      }),
    ),
    "a17_envelopes_empty.value.cbor",
  );
  same(
    encodeOrdered(
      responseBody("create_courier_envelopes_from_payload_reply", {
        "query_id": QID,
        "error_code": 4,
      }),
    ),
    "a17_envelopes_null.value.cbor",
  );
});

async function readFrames(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  decoder: FrameDecoder,
  count: number,
): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  while (out.length < count) {
    const { value, done } = await reader.read();
    if (done) throw new Error("connection closed");
    out.push(...decoder.push(value));
  }
  return out;
}

Deno.test("a live fake daemon sends the golden bytes on the wire", async () => {
  await using daemon = await FakeDaemon.start({
    transport: "memory",
    instanceToken: TOKEN,
  });
  const conn = await daemon.dialer.dial();
  const reader = conn.readable.getReader();
  const writer = conn.writable.getWriter();
  const decoder = new FrameDecoder();
  const [status] = await readFrames(reader, decoder, 2);
  assert.deepEqual(
    status,
    fullForm(
      "connection_status_event",
      load("a07_connection_status_event.value.cbor"),
    ),
  );
  await writer.write(load("a01_session_token.frame.cbor"));
  await readFrames(reader, decoder, 1);

  await writer.write(encodeFrame(encodeCbor({
    "new_keypair": { "query_id": QID, "seed": new Uint8Array(31) },
  })));
  const [keypair] = await readFrames(reader, decoder, 1);
  assert.deepEqual(
    keypair,
    fullForm(
      "new_keypair_reply",
      load("a11_new_keypair_reply_error.value.cbor"),
    ),
  );

  const index = new Uint8Array(104);
  new DataView(index.buffer).setBigUint64(0, 2n ** 63n + 5n, true);
  await writer.write(encodeFrame(encodeCbor({
    "get_message_box_index_counter": {
      "query_id": QID,
      "message_box_index": index,
    },
  })));
  const [counter] = await readFrames(reader, decoder, 1);
  assert.deepEqual(
    counter,
    fullForm(
      "get_message_box_index_counter_reply",
      load("a12_get_message_box_index_counter_reply.value.cbor"),
    ),
  );

  daemon.script("start_resending_copy_command", {
    errorCode: 26,
    fields: { "replica_error_code": 10, "failed_envelope_index": 3 },
  });
  await writer.write(encodeFrame(encodeCbor({
    "start_resending_copy_command": {
      "query_id": QID,
      "write_cap": new Uint8Array(168),
    },
  })));
  const [copy] = await readFrames(reader, decoder, 1);
  assert.deepEqual(
    copy,
    fullForm(
      "start_resending_copy_command_reply",
      load("a13_start_resending_copy_command_reply_failed.value.cbor"),
    ),
  );

  daemon.emit({
    "message_reply_event": {
      "surbid": QID,
      "payload": new Uint8Array([0x68, 0x69]),
    },
  });
  const [reply] = await readFrames(reader, decoder, 1);
  assert.deepEqual(
    reply,
    fullForm("message_reply_event", load("a10_message_reply_event.value.cbor")),
  );

  await writer.write(load("a02_thin_close.frame.cbor"));
  assert.equal((await reader.read()).done, true);
  reader.releaseLock();
  writer.releaseLock();
  conn.close();
});

Deno.test("a live fake daemon reproduces the message_sent_event golden vector", async () => {
  await using daemon = await FakeDaemon.start({
    transport: "memory",
    goFullForm: false,
    now: () => 1_767_225_600_999,
  });
  const echo = daemon.pkiDocument?.services.find((s) =>
    s.capability === "echo"
  );
  const conn = await daemon.dialer.dial();
  const reader = conn.readable.getReader();
  const writer = conn.writable.getWriter();
  const decoder = new FrameDecoder();
  await readFrames(reader, decoder, 2);
  await writer.write(encodeFrame(encodeCbor({
    "send_message": {
      "id": null,
      "with_surb": true,
      "surbid": QID,
      "destination_id_hash": echo?.destinationIdHash,
      "recipient_queue_id": echo?.recipientQueueId,
      "payload": new Uint8Array([1]),
    },
  })));
  const [sent] = await readFrames(reader, decoder, 1);
  assert.deepEqual(
    sent,
    singleKey("message_sent_event", load("a09_message_sent_event.value.cbor")),
  );
  reader.releaseLock();
  writer.releaseLock();
  conn.close();
});
