// deno-lint-ignore-file no-console
/**
 * Moves a file through a fresh Pigeonhole channel with the courier copy
 * command, using the low-level ThinClient calls, then reads it back box by
 * box and compares SHA-256 digests. (For real transfers use pigeonhole-cp,
 * which adds a header with name, size and digest, progress and resume.)
 *
 *   deno run -A examples/file_transfer.ts [thinclient.toml] [file]
 *
 * Without a file, 64 KiB of random bytes are sent. Bounded: the whole run
 * gives up after 10 minutes; files above 10 MiB are refused.
 *
 * @module
 */
import { MAX_COPY_PAYLOAD } from "../mod.ts";
import { connect } from "../transport/mod.ts";

const config = Deno.args[0] ?? "testdata/thinclient.toml";
const data = Deno.args[1] === undefined
  ? crypto.getRandomValues(new Uint8Array(64 * 1024))
  : await Deno.readFile(Deno.args[1]);
if (data.length === 0 || data.length > MAX_COPY_PAYLOAD) {
  console.error(`file must be 1 byte to ${MAX_COPY_PAYLOAD} bytes`);
  Deno.exit(2);
}
const signal = AbortSignal.timeout(600_000);
const hex = async (b: Uint8Array) =>
  Array.from(
    new Uint8Array(await crypto.subtle.digest("SHA-256", b.slice())),
    (x) => x.toString(16).padStart(2, "0"),
  ).join("");

await using client = await connect(config, { signal });
const started = performance.now();

// 1. The destination channel (the receiver would get readCap + first index).
const dest = await client.newKeypair(undefined, { signal });

// 2. The daemon turns the payload into copy-stream elements: one destination
//    write per box, serialized and cut to fit temporary boxes.
const { envelopes } = await client.createCourierEnvelopesFromPayload(
  data,
  dest.writeCap,
  dest.firstMessageIndex,
  true,
  true,
  { signal },
);

// 3. Upload the elements into a temporary stream, several boxes in flight.
const temp = await client.newKeypair(undefined, { signal });
const writes: Promise<unknown>[] = [];
let index = temp.firstMessageIndex;
let last = index;
for (const element of envelopes) {
  const env = await client.encryptWrite(element, temp.writeCap, index, {
    signal,
  });
  writes.push(
    client.startResendingEncryptedMessage({ writeCap: temp.writeCap, ...env }, {
      signal,
    }),
  );
  last = index;
  index = env.nextMessageBoxIndex;
}
await Promise.all(writes);

// 4. Wait until the last temporary box is readable, then let the courier copy.
const gate = await client.encryptRead(temp.readCap, last, { signal });
await client.startResendingEncryptedMessage(
  { readCap: temp.readCap, messageBoxIndex: last, ...gate },
  { signal },
);
await client.startResendingCopyCommand(temp.writeCap, { signal });
console.log(
  `sent ${data.length} bytes via ${envelopes.length} temporary boxes in ${
    ((performance.now() - started) / 1000).toFixed(1)
  } s`,
);

// 5. The receiver reads the destination boxes in order until it has it all.
const parts: Uint8Array[] = [];
let have = 0;
let at = dest.firstMessageIndex;
while (have < data.length) {
  const env = await client.encryptRead(dest.readCap, at, { signal });
  const r = await client.startResendingEncryptedMessage(
    { readCap: dest.readCap, messageBoxIndex: at, ...env },
    { signal },
  );
  parts.push(r.plaintext!);
  have += r.plaintext!.length;
  at = env.nextMessageBoxIndex;
}
const got = new Uint8Array(have);
let off = 0;
for (const p of parts) {
  got.set(p, off);
  off += p.length;
}
const [a, b] = [await hex(data), await hex(got.subarray(0, data.length))];
console.log(`received ${data.length} bytes in ${parts.length} boxes`);
console.log(a === b ? `sha256 ok ${a}` : `sha256 MISMATCH ${a} != ${b}`);
if (a !== b) Deno.exit(1);
