// deno-lint-ignore-file no-console
/**
 * Alice creates a channel and writes two messages; she gives Bob the
 * channel's share text (read capability and start index, with a checksum);
 * Bob imports it and reads the messages. Both keep their channels in
 * in-memory stores (use a file path to keep them across runs).
 *
 *   deno run -A examples/share_read_cap.ts [thinclient.toml]
 *
 * Bounded: each read gives up after 120 s.
 *
 * @module
 */
import { connect } from "../transport/mod.ts";
import { PigeonholeClient } from "../persistent/mod.ts";

const config = Deno.args[0] ?? "testdata/thinclient.toml";
const text = (s: string) => new TextEncoder().encode(s);

await using client = await connect(config, {
  signal: AbortSignal.timeout(60_000),
});

// Alice: a channel she owns, and the text she hands to Bob out of band.
using alice = await PigeonholeClient.open(client, ":memory:");
const channel = await alice.createChannel("notes");
const share = await channel.shareReadCap();
console.log(`Alice shares: ${share.slice(0, 24)}… (${share.length} chars)`);
await channel.send(text("first note"), {
  signal: AbortSignal.timeout(120_000),
});
await channel.send(text("second note"), {
  signal: AbortSignal.timeout(120_000),
});

// Bob: imports the share text; his copy can read but not write.
using bob = await PigeonholeClient.open(client, ":memory:");
const notes = await bob.importChannel("alice-notes", share);
console.log(`Bob imported '${notes.name}' (owned: ${notes.owned})`);
for (let i = 0; i < 2; i++) {
  const r = await notes.receive({ signal: AbortSignal.timeout(120_000) });
  if (r?.type === "message") {
    console.log(`Bob read: ${new TextDecoder().decode(r.message.plaintext)}`);
    notes.markRead(r.message.id);
  }
}
