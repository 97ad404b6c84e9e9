import assert from "node:assert/strict";
import { fullCollector, startHeapTrim } from "../cli/_heap.ts";
import { delay } from "../lib/_async.ts";

Deno.test("fullCollector() reaches V8's collector without command-line flags", () => {
  const gc = fullCollector();
  assert.equal(typeof gc, "function");
  const before = Deno.memoryUsage().heapUsed;
  let garbage: unknown[] | null = Array.from(
    { length: 200_000 },
    (_, i) => ({ i }),
  );
  assert.equal(garbage.length, 200_000);
  garbage = null;
  gc!();
  // The 200,000 objects (several MiB) are gone after one full collection.
  assert.ok(Deno.memoryUsage().heapUsed < before + 2 * 1024 * 1024);
});

Deno.test("startHeapTrim() collects only while the heap is over the limit, until disposed", async () => {
  let size = 5;
  let runs = 0;
  const trim = startHeapTrim({
    collect: () => {
      runs++;
      size = 5;
    },
    heapSize: () => size,
    limit: 10,
    intervalMs: 5,
  });
  await delay(40);
  assert.equal(runs, 0, "a heap under the limit is left alone");
  size = 11;
  await delay(40);
  assert.equal(runs, 1, "one collection brings it under the limit again");
  trim[Symbol.dispose]();
  size = 11;
  await delay(40);
  assert.equal(runs, 1, "nothing runs after dispose");
  trim[Symbol.dispose]();
});

Deno.test("startHeapTrim() with no collector is a no-op", () => {
  using _trim = startHeapTrim({ collect: null });
});
