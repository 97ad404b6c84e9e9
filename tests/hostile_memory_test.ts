// Fuzz target for memory amplification: random hostile bodies of 8 MiB
// (arrays and maps of tiny items, many small arrays, distinct keys, unknown
// variants, PKI documents whose nested descriptors multiply the items) are
// decoded in a child process that measures each one's peak RSS. Before the
// CBOR limits, a 10 MiB array of empty maps cost about 950 MB.
import assert from "node:assert/strict";

const MIB = 1024 * 1024;
const child = new URL("./_hostile_child.ts", import.meta.url).pathname;

interface Result {
  shape: string;
  bytes: number;
  extra: number;
  ms: number;
  outcome: string;
}

async function run(seed: number, count: number): Promise<Result[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      child,
      String(seed),
      String(count),
      String(8 * MIB),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.ok(out.success, `child failed: ${stderr.slice(-2000)}`);
  return JSON.parse(new TextDecoder().decode(out.stdout)) as Result[];
}

Deno.test("hostile bodies cost at most a small multiple of their size (peak RSS fuzz)", async () => {
  const results = [...await run(0x9e3779b9, 14), ...await run(12345, 14)];
  assert.equal(results.length, 28);
  const shapes = new Set(results.map((r) => r.shape.split(" of ")[0]));
  assert.ok(shapes.size >= 4, `too few shapes: ${[...shapes].join(", ")}`);
  for (const r of results) {
    const detail = `${r.shape} (${r.bytes} B): +${
      (r.extra / MIB).toFixed(1)
    } MiB, ${r.ms} ms, ${r.outcome}`;
    assert.ok(
      r.outcome === "accepted" || r.outcome.startsWith("ProtocolError: "),
      `not a ProtocolError: ${detail}`,
    );
    assert.ok(r.extra <= 3 * r.bytes + 32 * MIB, `too much memory: ${detail}`);
  }
});
