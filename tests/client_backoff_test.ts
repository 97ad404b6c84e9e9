// The redial delays of ThinClient: exponential backoff with equal jitter.
import assert from "node:assert/strict";
import { Backoff, backoffPolicy } from "../lib/_backoff.ts";

/** Uniform numbers in [0, 1) from a small fixed-seed generator (xorshift32). */
function seeded(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

Deno.test("Backoff waits between half the delay and the delay, doubling up to maxDelay", () => {
  const policy = { initialDelay: 100, maxDelay: 1000, maxAttempts: Infinity };
  const backoff = new Backoff(policy, seeded(42));
  const expected = [100, 200, 400, 800, 1000, 1000, 1000, 1000];
  for (const delay of expected) {
    const wait = backoff.next();
    assert.ok(
      wait >= delay / 2 && wait <= delay,
      `wait ${wait} is within [${delay / 2}, ${delay}]`,
    );
  }
  for (let i = 0; i < 1000; i++) {
    const wait = backoff.next();
    assert.ok(wait >= 500 && wait <= 1000, `wait ${wait} is bounded`);
  }
});

Deno.test("Backoff takes its jitter from the random source", () => {
  const policy = { initialDelay: 10, maxDelay: 40, maxAttempts: 3 };
  const low = new Backoff(policy, () => 0);
  assert.deepEqual([low.next(), low.next(), low.next(), low.next()], [
    5,
    10,
    20,
    20,
  ]);
  const high = new Backoff(policy, () => 0.5);
  assert.deepEqual([high.next(), high.next(), high.next()], [7.5, 15, 30]);
});

Deno.test("Backoff spreads the waits of equal delays", () => {
  const policy = { initialDelay: 1000, maxDelay: 1000, maxAttempts: Infinity };
  const backoff = new Backoff(policy);
  const waits = Array.from({ length: 20 }, () => backoff.next());
  assert.ok(waits.every((w) => w >= 500 && w <= 1000));
  assert.ok(new Set(waits).size > 1, "the waits are not all equal");
  // Two clients that lost the same daemon do not redial in step.
  const other = new Backoff(policy);
  const otherWaits = Array.from({ length: 20 }, () => other.next());
  assert.notDeepEqual(waits, otherWaits);
});

Deno.test("backoffPolicy fills in the defaults of the reconnect option", () => {
  const defaults = {
    initialDelay: 1000,
    maxDelay: 60_000,
    maxAttempts: Infinity,
  };
  assert.deepEqual(backoffPolicy(undefined), defaults);
  assert.deepEqual(backoffPolicy(true), defaults);
  assert.equal(backoffPolicy(false), null);
  assert.deepEqual(backoffPolicy({ maxDelay: 5 }), {
    ...defaults,
    maxDelay: 5,
  });
});
