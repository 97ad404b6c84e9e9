// deno-lint-ignore-file no-console
// Child process of tests/hostile_memory_test.ts: decodes random hostile
// bodies and prints, as one JSON line, what each cost in peak RSS (the
// kernel's VmHWM, reset before each body through /proc/self/clear_refs).
//
//   deno run -A --v8-flags=--expose-gc tests/_hostile_child.ts <seed> <count> <bytes>
import { decodeResponse } from "../lib/protocol.ts";
import { parsePkiDocument } from "../lib/pki.ts";
import { encodeCbor } from "../lib/cbor.ts";

const [seedText, countText, sizeText] = Deno.args;
let seed = Number(seedText ?? 1) >>> 0 || 1;
const count = Number(countText ?? 12);
const size = Number(sizeText ?? 8 * 1024 * 1024);

function rnd(n: number): number {
  // xorshift32
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed % n;
}

function kb(field: "VmRSS" | "VmHWM"): number {
  const m = Deno.readTextFileSync("/proc/self/status").match(
    new RegExp(`^${field}:\\s+(\\d+) kB`, "m"),
  );
  if (m === null) throw new Error(`no ${field} in /proc/self/status`);
  return Number(m[1]) * 1024;
}

/** A 5-byte head of major type `major` and length `n`. */
function head(major: number, n: number): number[] {
  return [
    (major << 5) | 26,
    n >>> 24,
    (n >>> 16) & 255,
    (n >>> 8) & 255,
    n & 255,
  ];
}

const SMALL_ITEMS: number[][] = [
  [0xa0], // {}
  [0x80], // []
  [0xf6], // null
  [0x00], // 0
  [0x40], // h''
  [0x60], // ""
  [0x81, 0x81, 0x80], // [[[]]]
  [0x61, 0x61], // "a"
  [0xa1, 0x60, 0xf6], // {"": null}
];

/** Fills `size` bytes with one array of copies of a small item. */
function flatArray(item: number[]): Uint8Array {
  const n = Math.floor((size - 5) / item.length);
  const b = new Uint8Array(5 + n * item.length);
  b.set(head(4, n));
  for (let i = 0, at = 5; i < n; i++, at += item.length) b.set(item, at);
  return b;
}

/** Many arrays of `per` small items, each under any per-array limit. */
function manyArrays(item: number[], per: number): Uint8Array {
  const one = 5 + per * item.length;
  const n = Math.floor((size - 5) / one);
  const b = new Uint8Array(5 + n * one);
  b.set(head(4, n));
  let at = 5;
  for (let i = 0; i < n; i++) {
    b.set(head(4, per), at);
    at += 5;
    for (let j = 0; j < per; j++, at += item.length) b.set(item, at);
  }
  return b;
}

/** A map of distinct 4-byte keys to a small item. */
function distinctKeys(item: number[]): Uint8Array {
  const one = 5 + item.length;
  const n = Math.floor((size - 5) / one);
  const b = new Uint8Array(5 + n * one);
  b.set(head(5, n));
  for (let i = 0, at = 5; i < n; i++, at += one) {
    b[at] = 0x64;
    b[at + 1] = 0x30 + (i & 63);
    b[at + 2] = 0x30 + ((i >> 6) & 63);
    b[at + 3] = 0x30 + ((i >> 12) & 63);
    b[at + 4] = 0x30 + ((i >> 18) & 63);
    b.set(item, at + 5);
  }
  return b;
}

/** `{variant: {field: <body>}}` around a generated body. */
function wrapped(
  variant: string,
  field: string,
  inner: Uint8Array,
): Uint8Array {
  const prefix = encodeCbor({ [variant]: { [field]: null } });
  // Replace the trailing null (0xf6) by the inner item.
  const b = new Uint8Array(prefix.length - 1 + inner.length);
  b.set(prefix.subarray(0, prefix.length - 1));
  b.set(inner, prefix.length - 1);
  return b;
}

/** A PKI document whose descriptors are byte strings of maps of big arrays. */
function pkiNested(item: number[]): Uint8Array {
  const per = 60_000;
  const desc = new Uint8Array(3 + 5 + per * item.length);
  desc.set([0xa1, 0x61, 0x58]); // {"X": …}
  desc.set(head(4, per), 3);
  for (let j = 0, at = 8; j < per; j++, at += item.length) desc.set(item, at);
  const n = Math.max(1, Math.floor(size / (desc.length + 5)));
  return encodeCbor(
    new Map<unknown, unknown>([
      ["Epoch", 1],
      ["ServiceNodes", Array.from({ length: n }, () => desc)],
    ]),
  );
}

type Shape = { name: string; body: Uint8Array; pki?: boolean };

function shape(): Shape {
  const item = SMALL_ITEMS[rnd(SMALL_ITEMS.length)]!;
  const name = item.map((x) => x.toString(16)).join("");
  switch (rnd(9)) {
    case 0:
      return { name: `array of ${name}`, body: flatArray(item) };
    case 1: {
      const per = [1000, 30_000, 60_000][rnd(3)]!;
      return { name: `arrays of ${per} ${name}`, body: manyArrays(item, per) };
    }
    case 2:
      return { name: `distinct keys to ${name}`, body: distinctKeys(item) };
    case 3:
      return {
        name: `unknown variant holding an array of ${name}`,
        body: wrapped("future_event", "x", flatArray(item)),
      };
    case 4:
      return {
        name: `envelopes of ${name}`,
        body: wrapped(
          "create_courier_envelopes_from_payload_reply",
          "envelopes",
          flatArray(item),
        ),
      };
    case 5: {
      // Under the element limit, deep nesting at the end.
      const b = flatArray(item);
      const deep = new Uint8Array(40).fill(0x81);
      b.set(deep, b.length - deep.length);
      b[b.length - 1] = 0x00;
      return { name: `array of ${name}, nested 40 deep at the end`, body: b };
    }
    case 6: {
      // Just under the limit: 60,000 byte strings in a known list field.
      const n = 60_000;
      const length = Math.floor(size / n) - 3;
      const b = new Uint8Array(5 + n * (3 + length));
      b.set(head(4, n));
      for (let i = 0, at = 5; i < n; i++, at += 3 + length) {
        b.set([0x59, length >> 8, length & 255, i & 255], at);
      }
      return {
        name: `envelopes of 60000 strings of ${length} B`,
        body: wrapped(
          "create_courier_envelopes_from_payload_reply",
          "envelopes",
          b,
        ),
      };
    }
    case 7: {
      // Just under the limit of a field: 2,000 directory authorities of one
      // long text.
      const n = 2_000;
      const length = Math.floor(size / n) - 20;
      return {
        name: `authorities of 2000 texts of ${length} B`,
        body: encodeCbor({
          get_directory_authorities_reply: {
            authorities: Array.from({ length: n }, (_, i) => ({
              identifier: String(i).padEnd(length, "x"),
            })),
          },
        }),
      };
    }
    default:
      return {
        name: `PKI document nesting arrays of ${name}`,
        body: pkiNested(item),
        pki: true,
      };
  }
}

const gc = (globalThis as { gc?: () => void }).gc;
const results: Record<string, unknown>[] = [];
for (let i = 0; i < count; i++) {
  const s = shape();
  gc?.();
  const before = kb("VmRSS");
  Deno.writeTextFileSync("/proc/self/clear_refs", "5");
  const t0 = performance.now();
  let outcome = "accepted";
  try {
    if (s.pki) parsePkiDocument(s.body);
    else decodeResponse(s.body);
  } catch (err) {
    outcome = `${(err as Error).name}: ${(err as Error).message}`.slice(0, 200);
  }
  const ms = performance.now() - t0;
  results.push({
    shape: s.name,
    bytes: s.body.length,
    extra: kb("VmHWM") - before,
    ms: Math.round(ms),
    outcome,
  });
}
console.log(JSON.stringify(results));
