// lib/cbor.ts against cborg itself: the direct encode and decode paths must
// give exactly cborg's bytes, values and failures.
import assert from "node:assert/strict";
import { decode, encode } from "cborg";
import {
  decodeCbor,
  decodeCborVariant,
  encodeCbor,
  encodeCborEnvelope,
} from "../lib/cbor.ts";

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

Deno.test("decodeCbor() gives cborg's values for valid and mutated input", () => {
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
      outcome(() => decode(bad, opts)),
    );
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    assert.deepEqual(
      outcome(() => decodeCbor(longer)),
      outcome(() => decode(longer, opts)),
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
    const want = outcome(() => decode(bytes, opts));
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

/** What decodeCborVariant() must return, worked out from the whole map. */
function variantOf(bytes: Uint8Array): { key: string; value: unknown } | null {
  let top: unknown;
  try {
    top = decodeCbor(bytes);
  } catch {
    return null;
  }
  if (typeof top !== "object" || top === null || Array.isArray(top)) {
    return null;
  }
  if (top instanceof Uint8Array) return null;
  const set = Object.entries(top).filter(([, v]) =>
    v !== null && v !== undefined
  );
  return set.length === 1 ? { key: set[0]![0], value: set[0]![1] } : null;
}

Deno.test("decodeCborVariant() returns the one set entry of a union map", () => {
  const r = rng(23);
  const names = Array.from({ length: 25 }, (_, i) => `variant_${i}_event`);
  let matched = 0;
  for (let i = 0; i < 3000; i++) {
    const envelope: Record<string, unknown> = {};
    for (const name of names) envelope[name] = null;
    const chosen = names[Math.floor(r() * names.length)]!;
    envelope[chosen] = r() < 0.9 ? randomValue(r, 1) : null;
    let bytes = encodeCbor(envelope);
    if (r() < 0.5) {
      bytes = bytes.slice();
      bytes[Math.floor(r() * bytes.length)] = Math.floor(r() * 256);
    }
    const got = decodeCborVariant(bytes);
    const want = variantOf(bytes);
    if (got === undefined) continue; // the caller decodes the whole map
    assert.notEqual(want, null, `bytes ${bytes}`);
    assert.deepEqual(got, want);
    matched++;
  }
  assert.ok(matched > 1000, `only ${matched} matched`);
  // A repeated key, set first and unset later: the full decode's value wins.
  const repeated = new Uint8Array([
    0xa2,
    0x61,
    0x61,
    0x01,
    0x61,
    0x61,
    0xf6,
  ]);
  assert.equal(decodeCborVariant(repeated), undefined);
  assert.deepEqual(decodeCbor(repeated), { a: null });
  assert.equal(decodeCborVariant(encodeCbor({ a: 1, b: 2 })), undefined);
  assert.equal(decodeCborVariant(encodeCbor({ a: null })), undefined);
  assert.equal(decodeCborVariant(encodeCbor([1])), undefined);
  assert.deepEqual(decodeCborVariant(encodeCbor({ a: null, b: { c: 1 } })), {
    key: "b",
    value: { c: 1 },
  });
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
