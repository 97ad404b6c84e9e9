// deno-lint-ignore-file no-console
/**
 * A two-party chat over two Pigeonhole channels: Alice writes to Bob on one
 * channel and reads Bob on another, and Bob the other way round. Each side
 * has its own daemon connection and its own store; they only exchange the
 * share texts of their outgoing channels.
 *
 *   deno run -A examples/chat.ts [thinclient.toml] [rounds]
 *
 * Defaults: testdata/thinclient.toml, 2 rounds. Bounded: a fixed script,
 * and each read gives up after 120 s.
 *
 * @module
 */
import { connect } from "../transport/mod.ts";
import { type Channel, PigeonholeClient } from "../persistent/mod.ts";

const config = Deno.args[0] ?? "testdata/thinclient.toml";
const rounds = Number(Deno.args[1] ?? 2);
const enc = new TextEncoder();
const dec = new TextDecoder();

interface Party {
  name: string;
  out: Channel;
  in?: Channel;
}

async function party(
  name: string,
  store: PigeonholeClient,
): Promise<Party & { share: string }> {
  const out = await store.createChannel(`${name}-out`);
  return { name, out, share: await out.shareReadCap() };
}

async function say(from: Party, to: Party, line: string): Promise<void> {
  await from.out.send(enc.encode(line), {
    signal: AbortSignal.timeout(120_000),
  });
  const r = await to.in!.receive({ signal: AbortSignal.timeout(120_000) });
  if (r?.type !== "message") throw new Error(`${to.name} got no message`);
  to.in!.markRead(r.message.id);
  console.log(`${from.name} -> ${to.name}: ${dec.decode(r.message.plaintext)}`);
}

await using aliceClient = await connect(config, {
  signal: AbortSignal.timeout(60_000),
});
await using bobClient = await connect(config, {
  signal: AbortSignal.timeout(60_000),
});
using aliceStore = await PigeonholeClient.open(aliceClient, ":memory:");
using bobStore = await PigeonholeClient.open(bobClient, ":memory:");

const alice = await party("alice", aliceStore);
const bob = await party("bob", bobStore);
// The only thing exchanged out of band: each side's share text.
alice.in = await aliceStore.importChannel("from-bob", bob.share);
bob.in = await bobStore.importChannel("from-alice", alice.share);

for (let i = 1; i <= rounds; i++) {
  await say(alice, bob, `hello Bob (${i})`);
  await say(bob, alice, `hi Alice (${i})`);
}
console.log(`chat done: ${rounds * 2} messages`);
