// deno-lint-ignore-file no-console camelcase
/**
 * Client-overhead bench for this package's ThinClient: requests per second of
 * local daemon operations (no mixnet traffic) against a running kpclientd.
 * Connects once, then for each operation and each concurrency C runs C loops
 * for the given time. Prints one JSON line per case (same fields as
 * bench/overhead_py.py and bench/overhead_rs.rs).
 *
 *   deno run -A bench/overhead_ts.ts <thinclient.toml> [seconds] [C...]
 *
 * Operations: new_keypair, next_message_box_index, and encrypt_write when the
 * daemon has a PKI document (an offline daemon fails it with code 4 after 4 s,
 * so it is skipped there).
 *
 * @module
 */
import { connect } from "../transport/mod.ts";
import type { MessageBoxIndex, WriteCap } from "../lib/caps.ts";
import type { ThinClient } from "../lib/client.ts";

const [toml, secArg, ...concArgs] = Deno.args;
if (toml === undefined) {
  throw new TypeError("usage: overhead_ts.ts <thinclient.toml> [s] [C...]");
}
const seconds = Number(secArg ?? 5);
const concs = concArgs.length > 0 ? concArgs.map(Number) : [1, 16];

const t0 = performance.now();
const client: ThinClient = await connect(toml, { reconnect: false });
const first = await client.newKeypair(new Uint8Array(32).fill(7));
console.error(
  `ts: connected and first reply after ${
    ((performance.now() - t0) / 1000).toFixed(1)
  }s`,
);
const writeCap: WriteCap = first.writeCap;
const index: MessageBoxIndex = first.firstMessageIndex;
const payload = new Uint8Array(
  client.pigeonholeGeometry.maxPlaintextPayloadLength,
).fill(1);

const ops: Record<string, () => Promise<unknown>> = {
  new_keypair: () => client.newKeypair(),
  next_message_box_index: () => client.nextMessageBoxIndex(index),
};
if (client.isConnected) {
  ops.encrypt_write = () => client.encryptWrite(payload, writeCap, index);
}

for (const [op, fn] of Object.entries(ops)) {
  for (const conc of concs) {
    // warm-up: 50 calls, or 1 s for slow operations (encrypt_write)
    const warm = performance.now() + 1000;
    for (let i = 0; i < 50 && (i === 0 || performance.now() < warm); i++) {
      await fn();
    }
    let n = 0;
    const start = performance.now();
    const deadline = start + seconds * 1000;
    await Promise.all(
      Array.from({ length: conc }, async () => {
        while (performance.now() < deadline) {
          await fn();
          n++;
        }
      }),
    );
    const el = (performance.now() - start) / 1000;
    console.log(JSON.stringify({
      client: "ts",
      op,
      concurrency: conc,
      n,
      seconds: +el.toFixed(3),
      ops_per_s: +(n / el).toFixed(1),
      mean_latency_us: +((el * 1e6 * conc) / n).toFixed(1),
    }));
  }
}
await client.close();
