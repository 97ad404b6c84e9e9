/**
 * Compares the CBOR codec of lib/cbor.ts (npm:cborg@6.1.5) with
 * npm:cbor-x@1.6.9 configured as docs/protocol.md#cbor-encoding advises, on the
 * payloads the thin client actually handles:
 *
 * - (a) a ~2 KB request body (`send_message` with a 2000-byte payload, and
 *   `encrypt_write` with a write cap, a box index and a 1549-byte plaintext):
 *   encode and decode;
 * - (b) decode of the daemon's full-form 25-key reply envelope (testdata/frames/a06);
 * - (c) decode of a ~200 KB PKI document (docs/protocol.md#pki-document, built by `_pki_fixture.ts`),
 *   the top-level map only and then including every nested descriptor.
 *
 * Setup checks each library on each input and throws if it is wrong: byte
 * strings decode as plain `Uint8Array`, a `uint64` above 2^53 decodes as
 * `bigint`, encoders emit no tag (in particular no tag 64), and every output
 * round-trips through the other library.
 *
 * cbor-x is pinned here only (bench/ is not published). Deno cannot resolve
 * `npm:cbor-x@1.6.9` against a registry that lacks its optional native
 * accelerator `@cbor-extract/cbor-extract-*@2.2.3`; then the bench loads the
 * copy unpacked by `sh bench/_fetch_cbor_x.sh` (same version, same pure-JS code).
 *
 * Run: `deno bench -A bench/cbor_bench.ts`
 *
 * @module
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { fromHex } from "../lib/_bytes.ts";
import { decodeCbor, decodeCborMaps, encodeCbor } from "../lib/cbor.ts";
import { buildPkiDocument } from "./_pki_fixture.ts";

// ---------------------------------------------------------------------------
// Loading cbor-x

interface CborXEncoder {
  encode(value: unknown): Uint8Array;
}
interface CborXDecoder {
  decode(bytes: Uint8Array): unknown;
}
interface CborXModule {
  Encoder: new (options: Record<string, unknown>) => CborXEncoder;
  Decoder: new (options: Record<string, unknown>) => CborXDecoder;
}

const CBOR_X_VERSION = "1.6.9";
const CBOR_X_LOCAL = new URL(
  `../.cache/bench/cbor-x-${CBOR_X_VERSION}/`,
  import.meta.url,
);

async function loadCborX(): Promise<{ mod: CborXModule; from: string }> {
  // Held in variables so that the module graph does not need them up front.
  const npmSpecifier = `npm:cbor-x@${CBOR_X_VERSION}`;
  let npmError: unknown;
  try {
    return {
      mod: (await import(npmSpecifier)) as CborXModule,
      from: npmSpecifier,
    };
  } catch (err) {
    npmError = err;
  }
  const pkg = JSON.parse(
    await Deno.readTextFile(new URL("package.json", CBOR_X_LOCAL)).catch(() =>
      "{}"
    ),
  );
  if (pkg.version !== CBOR_X_VERSION) {
    throw new Error(
      `Cannot load cbor-x "${CBOR_X_VERSION}": "${npmSpecifier}" failed and no local copy; run "sh bench/_fetch_cbor_x.sh"`,
      { cause: npmError },
    );
  }
  const local = new URL("index.js", CBOR_X_LOCAL).href;
  return { mod: (await import(local)) as CborXModule, from: local };
}

const { mod: cborX, from: cborXFrom } = await loadCborX();
// The configuration docs/protocol.md#cbor-encoding advises.
const xEncoder = new cborX.Encoder({ tagUint8Array: false, useRecords: false });
const xDecoder = new cborX.Decoder({ mapsAsObjects: true, useRecords: false });
const xDecoderMaps = new cborX.Decoder({
  mapsAsObjects: false,
  useRecords: false,
});
// By default cbor-x returns byte strings as views into the input; this copies.
const xDecoderCopy = new cborX.Decoder({
  mapsAsObjects: true,
  useRecords: false,
  copyBuffers: true,
});
const xDecoderMapsCopy = new cborX.Decoder({
  mapsAsObjects: false,
  useRecords: false,
  copyBuffers: true,
});

// ---------------------------------------------------------------------------
// Inputs

function bytes(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
}

/** (a1) `send_message` with SURB and a 2000-byte payload (docs/protocol.md#requests-and-replies). */
const sendMessage = {
  "send_message": {
    id: bytes(16, 1),
    with_surb: true,
    surbid: bytes(16, 2),
    destination_id_hash: bytes(32, 3),
    recipient_queue_id: new TextEncoder().encode("+echo"),
    payload: bytes(2000, 4),
  },
};

/** (a2) `encrypt_write` with a 168-byte write cap, 104-byte index, 1549-byte plaintext (docs/protocol.md#requests-and-replies). */
const encryptWrite = {
  "encrypt_write": {
    query_id: bytes(16, 5),
    plaintext: bytes(1549, 6),
    write_cap: bytes(168, 7),
    message_box_index: bytes(104, 8),
  },
};

/** Bytes of hex written over several lines. */
const hexBlock = (text: string): Uint8Array =>
  fromHex(text.replace(/\s+/g, ""));

/** (b) testdata/frames/a06: `session_token_reply` as the daemon sends it (25 keys, 784 bytes). */
const replyEnvelope = hexBlock(`
b8197373657373696f6e5f746f6b656e5f7265706c79a2666170705f6964500102030405060708090a0b0c0d0e0f1067
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
76655f73747265616d5f7265706c79f6`);

/** testdata/frames/a12: `get_message_box_index_counter_reply` body, counter 2^63 + 5. */
const counterReply = hexBlock(`
a36871756572795f696450a0a1a2a3a4a5a6a7a8a9aaabacadaeaf67636f756e7465721b80000000000000056a657272
6f725f636f646500`);

/** (c) ~200 KB PKI document, default-mode (what `new_pki_document_event` pushes). */
const pki = buildPkiDocument();

// The same bytes are decoded by both libraries: the reference encoding of the
// fixture-free inputs is the one cborg writes (shortest heads, no tags).
const sendMessageBytes = encodeCbor(sendMessage);
const encryptWriteBytes = encodeCbor(encryptWrite);

// ---------------------------------------------------------------------------
// Correctness checks (run once, at load; a failure aborts the bench)

interface Scan {
  tags: number[];
  nonMinimalHeads: number;
  indefinite: number;
}

/** Walks one CBOR item without decoding it, recording tags and non-minimal heads. */
function scanCbor(buf: Uint8Array): Scan {
  const scan: Scan = { tags: [], nonMinimalHeads: 0, indefinite: 0 };
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = 0;
  const arg = (info: number): number => {
    if (info < 24) return info;
    let n: number;
    if (info === 24) n = buf[pos++]!;
    else if (info === 25) n = view.getUint16((pos += 2) - 2);
    else if (info === 26) n = view.getUint32((pos += 4) - 4);
    else if (info === 27) n = Number(view.getBigUint64((pos += 8) - 8));
    else {throw new Error(
        `Cannot scan CBOR: additional info "${info}" at offset "${pos - 1}"`,
      );}
    const min = n < 24
      ? 0
      : n < 0x100
      ? 24
      : n < 0x10000
      ? 25
      : n < 0x100000000
      ? 26
      : 27;
    if (min !== info) scan.nonMinimalHeads++;
    return n;
  };
  const item = (): void => {
    const ib = buf[pos++];
    if (ib === undefined) throw new Error("Cannot scan CBOR: truncated item");
    const major = ib >> 5;
    const info = ib & 31;
    if (info === 31) {
      scan.indefinite++;
      if (major === 7) return; // break
      while (buf[pos] !== 0xff) item();
      pos++;
      return;
    }
    if (major === 7) {
      pos += info === 25
        ? 2
        : info === 26
        ? 4
        : info === 27
        ? 8
        : info === 24
        ? 1
        : 0;
      return;
    }
    const n = arg(info);
    if (major === 2 || major === 3) pos += n;
    else if (major === 4) { for (let i = 0; i < n; i++) item(); }
    else if (major === 5) { for (let i = 0; i < 2 * n; i++) item(); }
    else if (major === 6) {
      scan.tags.push(n);
      item();
    }
  };
  item();
  if (pos !== buf.length) {
    throw new Error(`Cannot scan CBOR: "${buf.length - pos}" trailing bytes`);
  }
  return scan;
}

function isPlainBytes(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array &&
    Object.getPrototypeOf(v) === Uint8Array.prototype;
}

/** Copies into a plain Uint8Array (cbor-x returns a Node `Buffer` where one exists). */
function plain(u: Uint8Array): Uint8Array {
  return new Uint8Array(u);
}

function checkEncoder(
  name: string,
  encode: (v: unknown) => Uint8Array,
  value: unknown,
): Scan {
  const out = encode(value);
  const scan = scanCbor(out);
  strictEqual(
    scan.tags.length,
    0,
    `${name}: emitted tags ${scan.tags.join(",")}`,
  );
  strictEqual(scan.indefinite, 0, `${name}: emitted indefinite-length items`);
  // Round trip through both decoders; byte strings must come back as plain Uint8Array.
  deepStrictEqual(
    decodeCbor(plain(out)),
    value,
    `${name}: cborg decode differs`,
  );
  deepStrictEqual(
    xDecoder.decode(plain(out)),
    value,
    `${name}: cbor-x decode differs`,
  );
  return scan;
}

function checkRequestDecode(
  name: string,
  decode: (b: Uint8Array) => unknown,
): void {
  deepStrictEqual(
    decode(sendMessageBytes),
    sendMessage,
    `${name}: send_message`,
  );
  deepStrictEqual(
    decode(encryptWriteBytes),
    encryptWrite,
    `${name}: encrypt_write`,
  );
}

function checkEnvelope(name: string, decode: (b: Uint8Array) => unknown): void {
  const env = decode(replyEnvelope) as Record<string, unknown>;
  const keys = Object.keys(env);
  strictEqual(keys.length, 25, `${name}: envelope key count`);
  const live = keys.filter((k) => env[k] !== null);
  deepStrictEqual(live, ["session_token_reply"], `${name}: non-null variants`);
  const body = env.session_token_reply as { app_id: unknown; resumed: unknown };
  ok(isPlainBytes(body.app_id), `${name}: app_id is not a plain Uint8Array`);
  deepStrictEqual(
    body.app_id,
    fromHex("0102030405060708090a0b0c0d0e0f10"),
    `${name}: app_id`,
  );
  strictEqual(body.resumed, false, `${name}: resumed`);
  const counter = (decode(counterReply) as { counter: unknown }).counter;
  strictEqual(
    counter,
    2n ** 63n + 5n,
    `${name}: uint64 counter is not the bigint 2^63+5`,
  );
}

type Maps = Map<unknown, unknown>;

function checkPki(
  name: string,
  decodeTop: (b: Uint8Array) => unknown,
  decodeNested: (b: Uint8Array) => unknown,
): void {
  const e = pki.expected;
  const doc = decodeTop(pki.bytes) as Maps;
  ok(doc instanceof Map, `${name}: document is not a Map`);
  strictEqual(Number(doc.get("Epoch")), e.epoch, `${name}: Epoch`);
  strictEqual(
    Number(doc.get("GenesisEpoch")),
    e.genesisEpoch,
    `${name}: GenesisEpoch`,
  );
  strictEqual(doc.get("LambdaP"), e.lambdaP, `${name}: LambdaP`);
  strictEqual(doc.get("LambdaG"), e.lambdaG, `${name}: LambdaG`);
  const topology = doc.get("Topology") as Uint8Array[][];
  strictEqual(topology.length, e.layers, `${name}: layers`);
  const nested = [
    ...topology.flat(),
    ...(doc.get("GatewayNodes") as Uint8Array[]),
    ...(doc.get("ServiceNodes") as Uint8Array[]),
  ];
  const names = nested.map((raw) => {
    ok(
      isPlainBytes(raw),
      `${name}: nested descriptor is not a plain Uint8Array`,
    );
    const d = decodeNested(raw) as Maps;
    strictEqual(Number(d.get("Epoch")), e.epoch, `${name}: descriptor Epoch`);
    const link = d.get("LinkKey");
    ok(
      isPlainBytes(link) && link.length === e.linkKeyLength,
      `${name}: LinkKey`,
    );
    const mixKeys = d.get("MixKeys") as Maps;
    deepStrictEqual(
      [...mixKeys.keys()].map(Number),
      e.mixKeyEpochs,
      `${name}: MixKeys keys`,
    );
    ok([...mixKeys.values()].every(isPlainBytes), `${name}: MixKeys values`);
    return d.get("Name");
  });
  deepStrictEqual(names, e.descriptorNames, `${name}: descriptor names`);
  const commit = doc.get("SharedRandomCommit") as Maps;
  const commitKeys = [...commit.keys()];
  ok(
    commitKeys.every(isPlainBytes),
    `${name}: SharedRandomCommit keys are not plain Uint8Array`,
  );
  deepStrictEqual(
    commitKeys,
    e.authorityHashes,
    `${name}: SharedRandomCommit keys`,
  );
  const replicas = doc.get("StorageReplicas") as Maps[];
  deepStrictEqual(
    replicas.map((r) => r.get("Name")),
    e.replicaNames,
    `${name}: replica names`,
  );
  const envKeys = replicas[0]!.get("EnvelopeKeys") as Maps;
  ok(
    [...envKeys.keys()].every((k) =>
      typeof k === "number" || typeof k === "bigint"
    ),
    `${name}: EnvelopeKeys keys`,
  );
  ok(
    isPlainBytes(doc.get("ConfiguredReplicaIDs")),
    `${name}: ConfiguredReplicaIDs`,
  );
  // The canonical (handshake) copy has half/single floats and sorted keys.
  const canonical = decodeTop(
    buildPkiDocument({ canonical: true, mixesPerLayer: 1 }).bytes,
  ) as Maps;
  strictEqual(
    canonical.get("LambdaG"),
    e.lambdaG,
    `${name}: canonical half-float LambdaG`,
  );
  strictEqual(
    canonical.get("LambdaP"),
    e.lambdaP,
    `${name}: canonical LambdaP`,
  );
}

const cborgEncodeScan = checkEncoder("cborg encode", encodeCbor, sendMessage);
checkEncoder("cborg encode", encodeCbor, encryptWrite);
const xEncodeScan = checkEncoder(
  "cbor-x encode",
  (v) => xEncoder.encode(v),
  sendMessage,
);
checkEncoder("cbor-x encode", (v) => xEncoder.encode(v), encryptWrite);
checkRequestDecode("cborg decode", decodeCbor);
checkRequestDecode("cbor-x decode", (b) => xDecoder.decode(b));
checkRequestDecode(
  "cbor-x decode (copyBuffers)",
  (b) => xDecoderCopy.decode(b),
);
checkEnvelope("cborg decode", decodeCbor);
checkEnvelope("cbor-x decode", (b) => xDecoder.decode(b));
checkEnvelope("cbor-x decode (copyBuffers)", (b) => xDecoderCopy.decode(b));
checkPki("cborg useMaps", decodeCborMaps, decodeCborMaps);
checkPki(
  "cbor-x mapsAsObjects:false",
  (b) => xDecoderMaps.decode(b),
  (b) => xDecoderMaps.decode(b),
);
checkPki(
  "cbor-x mapsAsObjects:false copyBuffers",
  (b) => xDecoderMapsCopy.decode(b),
  (b) => xDecoderMapsCopy.decode(b),
);

// Differences that do not fail the check but matter for the decision.
const xDecodedPayload =
  (xDecoder.decode(sendMessageBytes) as typeof sendMessage).send_message
    .payload;
const cborgDecodedPayload =
  (decodeCbor(sendMessageBytes) as typeof sendMessage).send_message.payload;
const notes = [
  `cbor-x loaded from ${cborXFrom}`,
  `send_message body: cborg ${
    encodeCbor(sendMessage).length
  } B (${cborgEncodeScan.nonMinimalHeads} non-minimal heads), ` +
  `cbor-x ${
    xEncoder.encode(sendMessage).length
  } B (${xEncodeScan.nonMinimalHeads} non-minimal heads)`,
  `decoded payload shares the input buffer: cborg ${
    cborgDecodedPayload.buffer === sendMessageBytes.buffer
  }, ` +
  `cbor-x ${xDecodedPayload.buffer === sendMessageBytes.buffer}`,
  `number 2**40 encodes as: cborg 0x${
    encodeCbor(2 ** 40)[0]!.toString(16)
  }, cbor-x 0x${
    xEncoder.encode(2 ** 40)[0]!.toString(16)
  } (0x1b = uint64, 0xfb = float64)`,
  `Map encodes with tag: cborg ${
    scanCbor(encodeCbor(new Map([[1, 2]]))).tags.join(",") || "none"
  }, cbor-x ${
    scanCbor(xEncoder.encode(new Map([[1, 2]]))).tags.join(",") || "none"
  }`,
  `tag 64 input: cborg ${_tryDecode(decodeCbor)}, cbor-x ${
    _tryDecode((b) => xDecoder.decode(b))
  }`,
  `encode output type: cborg ${encodeCbor({}).constructor.name}, cbor-x ${
    xEncoder.encode({}).constructor.name
  }`,
  `pki document ${pki.bytes.length} B, ${pki.expected.descriptorNames.length} nested descriptors`,
];
function _tryDecode(decode: (b: Uint8Array) => unknown): string {
  try {
    return `accepts (${
      Object.prototype.toString.call(
        decode(Uint8Array.of(0xd8, 0x40, 0x41, 0x01)),
      )
    })`;
  } catch {
    return "throws";
  }
}
// deno-lint-ignore no-console
console.log(notes.map((n) => `# ${n}`).join("\n"));

// ---------------------------------------------------------------------------
// Benchmarks

let sink: unknown;

function decodeAllDescriptors(
  top: Maps,
  decode: (b: Uint8Array) => unknown,
): number {
  let n = 0;
  for (const layer of top.get("Topology") as Uint8Array[][]) {
    for (const raw of layer) n += (decode(raw) as Maps).size;
  }
  for (const raw of top.get("GatewayNodes") as Uint8Array[]) {
    n += (decode(raw) as Maps).size;
  }
  for (const raw of top.get("ServiceNodes") as Uint8Array[]) {
    n += (decode(raw) as Maps).size;
  }
  return n;
}

const cases: {
  group: string;
  cborg: () => unknown;
  cborX: () => unknown;
  cborXCopy?: () => unknown;
}[] = [
  {
    group: "a1 send_message encode (2.1 KB)",
    cborg: () => encodeCbor(sendMessage),
    cborX: () => xEncoder.encode(sendMessage),
  },
  {
    group: "a1 send_message decode (2.1 KB)",
    cborg: () => decodeCbor(sendMessageBytes),
    cborX: () => xDecoder.decode(sendMessageBytes),
    cborXCopy: () => xDecoderCopy.decode(sendMessageBytes),
  },
  {
    group: "a2 encrypt_write encode (1.9 KB)",
    cborg: () => encodeCbor(encryptWrite),
    cborX: () => xEncoder.encode(encryptWrite),
  },
  {
    group: "a2 encrypt_write decode (1.9 KB)",
    cborg: () => decodeCbor(encryptWriteBytes),
    cborX: () => xDecoder.decode(encryptWriteBytes),
    cborXCopy: () => xDecoderCopy.decode(encryptWriteBytes),
  },
  {
    group: "b 25-key reply envelope decode (784 B)",
    cborg: () => decodeCbor(replyEnvelope),
    cborX: () => xDecoder.decode(replyEnvelope),
    cborXCopy: () => xDecoderCopy.decode(replyEnvelope),
  },
  {
    group: "c1 PKI document decode, top level (200 KB)",
    cborg: () => decodeCborMaps(pki.bytes),
    cborX: () => xDecoderMaps.decode(pki.bytes),
    cborXCopy: () => xDecoderMapsCopy.decode(pki.bytes),
  },
  {
    group: "c2 PKI document decode, with nested descriptors (200 KB)",
    cborg: () =>
      decodeAllDescriptors(decodeCborMaps(pki.bytes) as Maps, decodeCborMaps),
    cborX: () =>
      decodeAllDescriptors(
        xDecoderMaps.decode(pki.bytes) as Maps,
        (b) => xDecoderMaps.decode(b),
      ),
    cborXCopy: () =>
      decodeAllDescriptors(
        xDecoderMapsCopy.decode(pki.bytes) as Maps,
        (b) => xDecoderMapsCopy.decode(b),
      ),
  },
];

for (const c of cases) {
  Deno.bench({
    name: "cborg 6.1.5",
    group: c.group,
    baseline: true,
    fn: () => {
      sink = c.cborg();
    },
  });
  Deno.bench({
    name: "cbor-x 1.6.9",
    group: c.group,
    fn: () => {
      sink = c.cborX();
    },
  });
  const copy = c.cborXCopy;
  if (copy) {
    Deno.bench({
      name: "cbor-x 1.6.9 copyBuffers",
      group: c.group,
      fn: () => {
        sink = copy();
      },
    });
  }
}

// Read once so the results stored in `sink` count as used.
addEventListener("unload", () => void sink);
