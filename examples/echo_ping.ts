// deno-lint-ignore-file no-console
/**
 * Pings the mixnet's echo service a few times and prints each round trip.
 *
 *   deno run -A examples/echo_ping.ts [thinclient.toml] [count]
 *
 * Defaults: testdata/thinclient.toml, 3 pings. Each ping gives up after
 * 120 s; the program ends after `count` pings.
 *
 * @module
 */
import { connect } from "../transport/mod.ts";

const config = Deno.args[0] ?? "testdata/thinclient.toml";
const count = Number(Deno.args[1] ?? 3);

await using client = await connect(config, {
  signal: AbortSignal.timeout(60_000),
});
const echo = client.getService("echo");
console.log(
  `echo service at ${new TextDecoder().decode(echo.recipientQueueId)}`,
);

for (let i = 1; i <= count; i++) {
  const payload = new TextEncoder().encode(`ping ${i} ${crypto.randomUUID()}`);
  const started = performance.now();
  const reply = await client.blockingSendMessage(
    payload,
    echo.destinationIdHash,
    echo.recipientQueueId,
    { signal: AbortSignal.timeout(120_000) },
  );
  const ms = (performance.now() - started).toFixed(0);
  // The echo service pads its reply to the payload size of the geometry.
  const same = payload.every((b, j) => reply[j] === b);
  console.log(`ping ${i}: ${same ? "ok" : "MISMATCH"} in ${ms} ms`);
  if (!same) Deno.exit(1);
}
