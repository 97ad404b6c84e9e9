// The structural scan in front of cborg (lib/cbor.ts): limits, refusals, and
// the helpers that decode only what the protocol layer knows. Then the direct
// encode and decode paths against cborg itself: behind the scan they must
// give exactly cborg's bytes, values and failures.
import assert from "node:assert/strict";
import { decode, encode } from "cborg";
import {
  CBOR_MAX_DEPTH,
  CBOR_MAX_ELEMENTS,
  type CborBudget,
  cborMapEntries,
  cborTypeAt,
  checkCbor,
  decodeCbor,
  decodeCborBytesList,
  decodeCborExact,
  encodeCbor,
  encodeCborEnvelope,
  scanCbor,
} from "../lib/cbor.ts";
import { ProtocolError } from "../lib/errors.ts";

const hex = (s: string): Uint8Array =>
  Uint8Array.from(s.replace(/\s+/g, "").match(/../g)!, (h) => parseInt(h, 16));

/** An array head of `n` elements (4-byte length), then `n` copies of `item`. */
function arrayOf(n: number, item: number): Uint8Array {
  const b = new Uint8Array(5 + n).fill(item);
  b[0] = 0x9a;
  new DataView(b.buffer).setUint32(1, n, false);
  return b;
}

function nested(depth: number): Uint8Array {
  // [[[ … 0 … ]]]
  const b = new Uint8Array(depth + 1).fill(0x81);
  b[depth] = 0x00;
  return b;
}

function refused(bytes: Uint8Array, re: RegExp, options = {}): void {
  assert.throws(() => checkCbor(bytes, options), (err: unknown) => {
    assert.ok(err instanceof ProtocolError, String(err));
    assert.match(err.message, re);
    return true;
  });
}

Deno.test("scanCbor() returns the end of the first item and skips strings unread", () => {
  const item = encodeCbor({
    a: [1, 2, new Uint8Array(300)],
    b: "x".repeat(70),
  });
  const bytes = new Uint8Array(item.length + 3);
  bytes.set(item);
  assert.equal(scanCbor(bytes), item.length);
  assert.equal(scanCbor(bytes, { start: 0 }), item.length);
  // Integers of every head width, floats of every width, the four simple values.
  for (
    const h of [
      "00",
      "1817",
      "190100",
      "1a00010000",
      "1b0000000100000000",
      "3bffffffffffffffff",
      "f93c00",
      "fa3f800000",
      "fb3ff0000000000000",
      "f4",
      "f5",
      "f6",
      "f7",
    ]
  ) {
    const b = hex(h);
    assert.equal(scanCbor(b), b.length, h);
  }
});

Deno.test("scanCbor() refuses more elements in all than the limit, before decoding any", () => {
  // One array over the limit: refused at its head.
  refused(
    arrayOf(CBOR_MAX_ELEMENTS + 1, 0xa0),
    /more than 131072 .* at byte 0/,
  );
  // Many arrays that are each small but too many together.
  const parts: number[] = [0x9a, 0, 0, 0x10, 0x01]; // array of 4097
  for (let i = 0; i < 4097; i++) {
    parts.push(0x98, 32, ...new Array(32).fill(0xf6));
  }
  refused(Uint8Array.from(parts), /more than 131072 array elements/);
  // Maps count pairs.
  assert.equal(
    scanCbor(arrayOf(10, 0xa0), { maxElements: 10 }),
    15,
  );
  refused(arrayOf(11, 0xa0), /more than 10 /, { maxElements: 10 });
  refused(hex("a2 00 00 01 00"), /more than 1 /, { maxElements: 1 });
});

Deno.test("scanCbor() refuses a length that runs past the end, whatever it claims", () => {
  refused(hex("9bffffffffffffffff"), /more than 131072|runs past the end/);
  refused(hex("9a00001000 a0"), /array of 4096 entries runs past the end/);
  refused(hex("bb0000000000000002 00"), /more than 131072|runs past/);
  refused(hex("5bffffffffffffffff"), /string of .* bytes runs past the end/);
  refused(hex("7903e8 61"), /string of 1000 bytes runs past the end/);
  refused(hex("19 01"), /item head is truncated/);
  refused(new Uint8Array(0), /item is truncated/);
  refused(hex("82 01"), /array of 2 entries runs past the end/);
  refused(hex("81 18"), /item head is truncated at byte 1/);
});

Deno.test("scanCbor() refuses nesting deeper than 32", () => {
  assert.equal(CBOR_MAX_DEPTH, 32);
  const ok = nested(32);
  assert.equal(scanCbor(ok), ok.length);
  refused(nested(33), /nesting deeper than 32 at byte 32/);
});

Deno.test("scanCbor() refuses tags, indefinite lengths, breaks and odd simple values", () => {
  refused(hex("c1 00"), /tag 1 at byte 0/);
  refused(hex("d840 41 00"), /tag 64/);
  refused(hex("9f 00 ff"), /indefinite-length item at byte 0/);
  refused(hex("bf ff"), /indefinite-length item/);
  refused(hex("5f 41 00 ff"), /indefinite-length item/);
  refused(hex("ff"), /unexpected break/);
  refused(hex("f0"), /simple value 16/);
  refused(hex("f8 20"), /simple value 32/);
  refused(hex("1c"), /reserved additional information 28/);
  refused(hex("fb 3ff0000000000000"), /float where none is allowed/, {
    allowFloats: false,
  });
});

Deno.test("scanCbor() measures indefinite lengths when allowed", () => {
  const options = { allowIndefinite: true };
  for (
    const h of [
      "9f 01 02 ff",
      "bf 61 61 01 ff",
      "5f 41 00 42 0102 ff",
      "7f 61 61 ff",
      "9f 9f ff bf ff ff",
    ]
  ) {
    const b = hex(h);
    assert.equal(scanCbor(b, options), b.length, h);
  }
  refused(hex("bf 61 61 ff"), /map ends after a key/, options);
  refused(hex("5f 61 61 ff"), /bad chunk/, options);
  refused(hex("9f 01"), /truncated/, options);
  // Elements of indefinite arrays and pairs of indefinite maps count too.
  refused(hex("9f 01 02 03 ff"), /more than 2 /, {
    ...options,
    maxElements: 2,
  });
  refused(hex("bf 01 01 02 02 ff"), /more than 1 /, {
    ...options,
    maxElements: 1,
  });
});

Deno.test("a CborBudget is shared by several scans", () => {
  const budget: CborBudget = { elements: 5 };
  assert.deepEqual(decodeCborExact(hex("83 01 02 03"), budget), [1n, 2n, 3n]);
  assert.equal(budget.elements, 2);
  assert.throws(
    () => decodeCborExact(hex("83 01 02 03"), budget),
    /more than 2/,
  );
});

Deno.test("decodeCbor() and friends refuse what the scan refuses, and trailing bytes", () => {
  assert.throws(() => decodeCbor(arrayOf(200_000, 0xa0)), ProtocolError);
  assert.throws(() => decodeCbor(hex("01 02")), /1 trailing bytes/);
  assert.throws(
    () =>
      decodeCbor(hex("a1 61 61 fb 3ff0000000000000"), { allowFloats: false }),
    /float where none is allowed/,
  );
  assert.deepEqual(decodeCbor(hex("a1 61 61 f9 3c00")), { a: 1 });
  assert.deepEqual(
    decodeCbor(hex("bf 61 61 01 ff"), { allowIndefinite: true }),
    { a: 1 },
  );
  // A __proto__ key is an own property, never the prototype.
  const o = decodeCbor(
    encodeCbor({ ["__proto__"]: { polluted: 1 } }),
  ) as Record<
    string,
    unknown
  >;
  assert.equal(Object.getPrototypeOf(o), Object.prototype);
  assert.ok(Object.hasOwn(o, "__proto__"));
  assert.equal((o as { polluted?: unknown }).polluted, undefined);
});

Deno.test("decodeCborExact() keeps integers and floats apart", () => {
  const v = decodeCborExact(
    hex("a3 61 61 03 61 62 f9 4200 61 63 3903e7"),
  ) as Map<
    string,
    unknown
  >;
  assert.equal(v.get("a"), 3n);
  assert.equal(v.get("b"), 3); // a float 3.0 stays a number
  assert.equal(v.get("c"), -1000n);
  // Small integers share tokens inside cborg; decoding twice gives the same.
  assert.deepEqual(decodeCborExact(hex("82 01 01")), [1n, 1n]);
  assert.deepEqual(decodeCborExact(hex("82 01 01")), [1n, 1n]);
});

Deno.test("cborMapEntries() locates values without decoding them", () => {
  const body = encodeCbor({ a: [1, 2], b: null, ["__proto__"]: 1 });
  const entries = cborMapEntries(body, 0);
  assert.deepEqual(entries.map((e) => e.key), ["a", "b", "__proto__"]);
  assert.deepEqual(
    decodeCbor(body.subarray(entries[0]!.start, entries[0]!.end)),
    [
      1,
      2,
    ],
  );
  assert.equal(cborTypeAt(body, entries[1]!.start), "null");
  assert.throws(
    () => cborMapEntries(hex("a1 01 02"), 0),
    /map key of type integer/,
  );
  assert.throws(() => cborMapEntries(hex("a1 61 ff 02"), 0), /not valid UTF-8/);
  assert.throws(() => cborMapEntries(hex("80"), 0), /expected a map/);
});

Deno.test("decodeCborBytesList() returns views of one copied buffer", () => {
  const items = [
    new Uint8Array([1, 2]),
    new Uint8Array(0),
    new Uint8Array(300).fill(9),
  ];
  const body = encodeCbor(items);
  const list = decodeCborBytesList(body, 0);
  assert.ok(Array.isArray(list));
  assert.deepEqual(list, items);
  assert.equal(list[0]!.buffer, list[2]!.buffer);
  assert.notEqual(list[0]!.buffer, body.buffer);
  // An owned body is not copied at all.
  const owned = decodeCborBytesList(body, 0, true) as Uint8Array[];
  assert.deepEqual(owned, items);
  assert.equal(owned[0]!.buffer, body.buffer);
  body.fill(0); // the copied result does not alias its input
  assert.deepEqual(list[2], new Uint8Array(300).fill(9));
  assert.deepEqual(decodeCborBytesList(encodeCbor([]), 0), []);
  assert.deepEqual(decodeCborBytesList(encodeCbor([new Uint8Array(1), 5]), 0), {
    index: 1,
    type: "integer",
  });
  assert.deepEqual(decodeCborBytesList(encodeCbor({}), 0), {
    index: -1,
    type: "not an array",
  });
});

const KEEP_ORDER = { mapSorter: (): number => 0 };

/** cborg may hand back a Node Buffer; compare bytes as plain Uint8Arrays. */
function cborgEncode(value: unknown): Uint8Array {
  return plain(encode(value, KEEP_ORDER));
}

function plain(b: Uint8Array): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** Deterministic pseudo-random numbers (xorshift32), so failures reproduce. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

const INTEGERS: (number | bigint)[] = [
  0,
  -0,
  1,
  23,
  24,
  255,
  256,
  65535,
  65536,
  4294967295,
  4294967296,
  Number.MAX_SAFE_INTEGER,
  -1,
  -24,
  -25,
  -256,
  -257,
  -65536,
  -65537,
  -4294967296,
  -4294967297,
  Number.MIN_SAFE_INTEGER,
  0n,
  23n,
  24n,
  2n ** 53n,
  2n ** 63n + 5n,
  2n ** 64n - 1n,
  -1n,
  -(2n ** 53n),
  -(2n ** 64n),
];

function randomValue(r: () => number, depth: number): unknown {
  const pick = Math.floor(r() * (depth > 3 ? 8 : 11));
  switch (pick) {
    case 0:
      return INTEGERS[Math.floor(r() * INTEGERS.length)];
    case 1:
      return Math.floor(r() * 2 ** 40) - 2 ** 39;
    case 2:
      return Uint8Array.from(
        { length: Math.floor(r() * 300) },
        () => Math.floor(r() * 256),
      );
    case 3: {
      const alphabet = ["a", "Z", "_", "é", "€", "😀", "\ud800", "0"];
      return Array.from(
        { length: Math.floor(r() * 40) },
        () => alphabet[Math.floor(r() * alphabet.length)],
      ).join("");
    }
    case 4:
      return r() < 0.5;
    case 5:
      return null;
    case 6:
      return undefined;
    case 7:
      return r() < 0.5 ? 1.5 : -0.25; // floats: cborg's job
    case 8:
      return Array.from(
        { length: Math.floor(r() * 5) },
        () => randomValue(r, depth + 1),
      );
    default: {
      const out: Record<string, unknown> = {};
      const n = Math.floor(r() * 6);
      for (let i = 0; i < n; i++) {
        const key = ["query_id", "payload", "k" + Math.floor(r() * 99), "é"][
          Math.floor(r() * 4)
        ]!;
        out[key] = randomValue(r, depth + 1);
      }
      return out;
    }
  }
}

function outcome(fn: () => unknown): { ok: unknown } | { threw: true } {
  try {
    return { ok: fn() };
  } catch {
    return { threw: true };
  }
}

Deno.test("encodeCbor() gives cborg's bytes for every supported shape", () => {
  const r = rng(7);
  for (let i = 0; i < 3000; i++) {
    const value = randomValue(r, 0);
    assert.deepEqual(
      plain(encodeCbor(value)),
      cborgEncode(value),
      JSON.stringify(value, (_k, v) => typeof v === "bigint" ? `${v}n` : v),
    );
  }
  for (const v of INTEGERS) assert.deepEqual(encodeCbor(v), cborgEncode(v));
});

Deno.test("encodeCbor() leaves the headroom zeroed before the item", () => {
  const value = { "new_keypair": { "query_id": new Uint8Array(16).fill(9) } };
  const plain = encodeCbor(value);
  const framed = encodeCbor(value, 4);
  assert.deepEqual(framed.subarray(0, 4), new Uint8Array(4));
  assert.deepEqual(framed.subarray(4), plain);
  // The cborg route (a float) keeps the headroom too.
  assert.deepEqual(
    encodeCbor(1.5, 4),
    new Uint8Array([0, 0, 0, 0, 0xf9, 0x3e, 0]),
  );
});

Deno.test("encodeCbor() hands other types and failures to cborg", () => {
  class Box {
    a = 1;
  }
  const circular: Record<string, unknown> = { a: 1 };
  circular["self"] = circular;
  const cases: unknown[] = [
    new Map([["a", 1]]),
    new Box(),
    Object.assign(Object.create(null), { x: 1 }),
    new Uint16Array([1, 2]),
    new ArrayBuffer(3),
    2 ** 60,
    NaN,
    2n ** 64n,
    -(2n ** 64n) - 1n,
    new Date(0),
    new Set([1]),
    Symbol("s"),
    () => 1,
    circular,
    [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[
      1,
    ]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
  ];
  for (const [i, value] of cases.entries()) {
    assert.deepEqual(
      outcome(() => plain(encodeCbor(value))),
      outcome(() => cborgEncode(value)),
      `case ${i}`,
    );
  }
});

/** cborg's decode behind the structural scan: what decodeCbor() must give. */
function scannedDecode(bytes: Uint8Array, opts: object): unknown {
  checkCbor(bytes, {});
  return decode(bytes, opts);
}

Deno.test("decodeCbor() gives cborg's values for valid and mutated input the scan passes", () => {
  const r = rng(11);
  const opts = { useMaps: false, rejectDuplicateMapKeys: false };
  for (let i = 0; i < 3000; i++) {
    const bytes = encode(randomValue(r, 0), KEEP_ORDER);
    assert.deepEqual(decodeCbor(bytes), decode(bytes, opts));
    // Mutate, truncate or extend: same value or both throw.
    const bad = bytes.slice(0, Math.max(1, Math.floor(r() * bytes.length) + 1));
    const at = Math.floor(r() * bad.length);
    bad[at] = Math.floor(r() * 256);
    assert.deepEqual(
      outcome(() => decodeCbor(bad)),
      outcome(() => scannedDecode(bad, opts)),
    );
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    assert.deepEqual(
      outcome(() => decodeCbor(longer)),
      outcome(() => scannedDecode(longer, opts)),
    );
  }
  for (
    const bytes of [
      [],
      [0xa1, 0x01, 0x02], // integer key
      [
        0xa1,
        0x69,
        ...new TextEncoder().encode("__proto__"),
        0xa1,
        0x61,
        0x61,
        1,
      ],
      [0x9f, 0x01, 0xff], // indefinite array
      [0xc1, 0x01], // tag
      [0xf8, 0x20], // simple value
      [0xfb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0], // float
      [0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // huge length
      [0x3b, 0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe], // -2^53
      [0x1b, 0x80, 0, 0, 0, 0, 0, 0, 5],
    ].map((b) => new Uint8Array(b))
  ) {
    const want = outcome(() => scannedDecode(bytes, opts));
    const got = outcome(() => decodeCbor(bytes));
    assert.deepEqual(got, want, `bytes ${bytes}`);
    if ("ok" in want && typeof want.ok === "object" && want.ok !== null) {
      assert.equal(
        Object.getPrototypeOf((got as { ok: object }).ok),
        Object.getPrototypeOf(want.ok),
      );
    }
  }
});

Deno.test("decodeCbor() reuses known keys and copies byte strings", () => {
  const keys = Array.from({ length: 2000 }, (_, i) => `key_${i * 7919}`);
  const value = Object.fromEntries(keys.map((k, i) => [k, i]));
  const bytes = encodeCbor(value);
  assert.deepEqual(decodeCbor(bytes), value);
  assert.deepEqual(decodeCbor(bytes), value); // second time from the key table
  class Bytes extends Uint8Array {}
  const input = new Bytes(encodeCbor({ payload: new Uint8Array([1, 2, 3]) }));
  const out = decodeCbor(input) as { payload: Uint8Array };
  input.fill(0);
  assert.deepEqual(out.payload, new Uint8Array([1, 2, 3]));
  assert.equal(Object.getPrototypeOf(out.payload), Uint8Array.prototype);
});

Deno.test("encodeCborEnvelope() gives encodeCbor()'s bytes for the same maps", () => {
  const r = rng(31);
  for (let i = 0; i < 2000; i++) {
    const entries: unknown[] = [];
    const inner: Record<string, unknown> = {};
    const n = Math.floor(r() * 8);
    for (let k = 0; k < n; k++) {
      const key = `field_${k}`;
      const value = randomValue(r, 1);
      entries.push(key, value);
      inner[key] = value;
    }
    const headroom = i % 2 === 0 ? 0 : 4;
    assert.deepEqual(
      plain(encodeCborEnvelope("some_request", entries, headroom)),
      plain(encodeCbor({ "some_request": inner }, headroom)),
    );
  }
});
