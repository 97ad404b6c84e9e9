// deno-lint-ignore-file no-console
/**
 * Time of one Pigeonhole write and one read on a live mixnet, through this
 * package's ThinClient, and the mixnet's own throughput bound. Prints JSON
 * lines: one `params` line (lambdaP from the PKI document, box payload size
 * from the daemon's geometry, and the bound lambdaP × box payload), one line
 * per sample, and a `summary` line with medians.
 *
 *   deno run -A bench/pigeonhole_ops_bench.ts <thinclient.toml> [samples]
 *
 * A write is `encryptWrite` + `startResendingEncryptedMessage` until the
 * courier's ACK; a read is `encryptRead` + `startResendingEncryptedMessage`
 * until the box's plaintext arrives (the box written just before, so it
 * exists). Samples run one after the other (nothing else in flight).
 *
 * @module
 */
import { connect } from "../transport/mod.ts";

const [toml, samplesArg] = Deno.args;
if (toml === undefined) {
  throw new TypeError("usage: pigeonhole_ops_bench.ts <thinclient.toml> [n]");
}
const samples = Number(samplesArg ?? 5);
const client = await connect(toml, { reconnect: false });
const doc = client.pkiDocument();
const max = client.pigeonholeGeometry.maxPlaintextPayloadLength;
// lambdaP is in messages per millisecond.
const boundBoxesPerS = doc.lambdaP * 1000;
// The CTIDH backend the local mixnet harness recorded for this run, if any.
let ctidh = "unknown";
try {
  const state = JSON.parse(
    Deno.readTextFileSync(
      new URL("../.cache/mixnet/run/state.json", import.meta.url),
    ),
  );
  ctidh = String(state.backend ?? "unknown");
} catch { /* not run by the harness */ }
console.log(JSON.stringify({
  event: "params",
  ctidh,
  epoch: Number(doc.epoch),
  lambdaP_per_ms: doc.lambdaP,
  mu_per_ms: doc.mu,
  lambdaR_per_ms: doc.lambdaR,
  max_plaintext_payload_length: max,
  bound_boxes_per_s: boundBoxesPerS,
  bound_bytes_per_s: Math.round(boundBoxesPerS * max),
  replicas: doc.storageReplicas.length,
}));

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const writes: number[] = [];
const reads: number[] = [];
const { writeCap, readCap, firstMessageIndex } = await client.newKeypair();
let index = firstMessageIndex;
for (let i = 0; i < samples; i++) {
  const payload = crypto.getRandomValues(new Uint8Array(max));
  const signal = AbortSignal.timeout(120_000);
  let t = performance.now();
  const env = await client.encryptWrite(payload, writeCap, index, { signal });
  await client.startResendingEncryptedMessage({ writeCap, ...env }, { signal });
  const w = (performance.now() - t) / 1000;
  t = performance.now();
  const renv = await client.encryptRead(readCap, index, { signal });
  const r = await client.startResendingEncryptedMessage(
    { readCap, messageBoxIndex: index, ...renv },
    { signal },
  );
  const rd = (performance.now() - t) / 1000;
  const ok = r.plaintext !== null &&
    r.plaintext.length === payload.length &&
    r.plaintext.every((b, j) => b === payload[j]);
  if (!ok) throw new Error(`read ${i} returned other bytes than written`);
  writes.push(w);
  reads.push(rd);
  console.log(JSON.stringify({
    event: "sample",
    i,
    write_s: +w.toFixed(2),
    read_s: +rd.toFixed(2),
  }));
  index = env.nextMessageBoxIndex;
}
console.log(JSON.stringify({
  event: "summary",
  samples,
  write_median_s: +median(writes).toFixed(2),
  write_min_s: +Math.min(...writes).toFixed(2),
  write_max_s: +Math.max(...writes).toFixed(2),
  read_median_s: +median(reads).toFixed(2),
  read_min_s: +Math.min(...reads).toFixed(2),
  read_max_s: +Math.max(...reads).toFixed(2),
}));
await client.close();
