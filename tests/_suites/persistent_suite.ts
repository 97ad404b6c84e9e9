// Scenarios of the persistent channel layer that need nothing but connected
// thin clients: run by tests/persistent_test.ts against the fake daemon, and
// meant for tests/integration/ against the real mixnet:
//
//   for (const s of persistentScenarios) {
//     Deno.test(`persistent (mixnet): ${s.name}`, async () => {
//       await using writer = await connect("testdata/thinclient.toml");
//       await using reader = await connect("testdata/thinclient.toml");
//       const dir = await Deno.makeTempDir();
//       try {
//         await s.run({ writer, reader, dir, timeoutMs: 600_000 });
//       } finally {
//         await Deno.remove(dir, { recursive: true });
//       }
//     });
//   }
import assert from "node:assert/strict";
import type { ThinClient } from "../../lib/client.ts";
import { BoxConflictError, PigeonholeClient } from "../../persistent/mod.ts";

/** What a scenario gets. */
export interface PersistentSuiteEnv {
  /** The writer's client (Alice). */
  writer: ThinClient;
  /** The reader's client (Bob); may be the writer's. */
  reader: ThinClient;
  /** An empty temporary directory for database files. */
  dir: string;
  /** Upper bound of every network wait, in milliseconds. */
  timeoutMs: number;
}

/** One scenario. */
export interface PersistentScenario {
  name: string;
  run(env: PersistentSuiteEnv): Promise<void>;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

async function pair(env: PersistentSuiteEnv, channel = "c"): Promise<{
  alice: PigeonholeClient;
  bob: PigeonholeClient;
  [Symbol.dispose](): void;
}> {
  const alice = await PigeonholeClient.open(env.writer, `${env.dir}/alice.db`);
  const bob = await PigeonholeClient.open(env.reader, `${env.dir}/bob.db`);
  const ch = await alice.createChannel(channel);
  await bob.importChannel(channel, await ch.shareReadCap());
  return {
    alice,
    bob,
    [Symbol.dispose]() {
      alice.close();
      bob.close();
    },
  };
}

async function receiveText(
  ph: PigeonholeClient,
  name: string,
  signal: AbortSignal,
): Promise<string> {
  const r = await ph.getChannel(name).receive({ signal });
  assert.equal(r?.type, "message");
  return dec.decode(r.type === "message" ? r.message.plaintext : undefined);
}

/** Scenarios that run unchanged on the fake daemon and the real mixnet. */
export const persistentScenarios: readonly PersistentScenario[] = [
  {
    name: "messages arrive in order and fill the inbox",
    async run(env) {
      const signal = AbortSignal.timeout(env.timeoutMs);
      using p = await pair(env);
      const out = p.alice.getChannel("c");
      for (const m of ["one", "two", "three"]) {
        await out.send(enc.encode(m), { signal });
      }
      const got: string[] = [];
      for (let i = 0; i < 3; i++) {
        got.push(await receiveText(p.bob, "c", signal));
      }
      assert.deepEqual(got, ["one", "two", "three"]);
      const inbox = p.bob.getChannel("c");
      const unread = await inbox.inbox({ unreadOnly: true });
      assert.deepEqual(unread.map((m) => dec.decode(m.plaintext)), got);
      inbox.markRead(unread[0]!.id);
      assert.equal((await inbox.inbox({ unreadOnly: true })).length, 2);
      assert.equal((await inbox.inbox()).length, 3);
      assert.deepEqual(await out.outbox(), []);
    },
  },
  {
    name: "an empty message is delivered, not a tombstone",
    async run(env) {
      const signal = AbortSignal.timeout(env.timeoutMs);
      using p = await pair(env);
      await p.alice.getChannel("c").send(new Uint8Array(0), { signal });
      const r = await p.bob.getChannel("c").receive({ signal });
      assert.equal(r?.type, "message");
      assert.equal(r.type === "message" && r.message.plaintext.length, 0);
    },
  },
  {
    name: "sendLarge delivers a multi-box message as one",
    async run(env) {
      const signal = AbortSignal.timeout(env.timeoutMs);
      using p = await pair(env);
      const max = env.writer.pigeonholeGeometry.maxPlaintextPayloadLength;
      const big = crypto.getRandomValues(new Uint8Array(max + 100));
      const out = p.alice.getChannel("c");
      const sent = await out.sendLarge(big, { signal });
      assert.ok(sent.boxCount >= 2, `boxCount ${sent.boxCount}`);
      await out.send(enc.encode("after"), { signal });
      const r = await p.bob.getChannel("c").receive({ signal });
      assert.equal(r?.type, "message");
      if (r.type === "message") {
        assert.deepEqual(r.message.plaintext, big);
        assert.equal(r.message.boxCount, sent.boxCount);
      }
      assert.equal(await receiveText(p.bob, "c", signal), "after");
    },
  },
  {
    name: "a reader passes a tombstoned box",
    async run(env) {
      const signal = AbortSignal.timeout(env.timeoutMs);
      using p = await pair(env);
      const out = p.alice.getChannel("c");
      await out.send(enc.encode("keep 1"), { signal });
      const gone = await out.send(enc.encode("delete me"), { signal });
      await out.send(enc.encode("keep 2"), { signal });
      await out.tombstone(gone.index, { signal });
      // Wait until the tombstone is visible (replicas are eventually consistent).
      for (;;) {
        const box = await out.readBox(gone.index, { signal });
        if (box.status === "tombstone") break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const inbox = p.bob.getChannel("c");
      assert.equal(await receiveText(p.bob, "c", signal), "keep 1");
      const skipped = await inbox.receive({ signal });
      assert.equal(skipped?.type, "skipped");
      assert.equal(skipped.type === "skipped" && skipped.reason, "tombstone");
      assert.equal(await receiveText(p.bob, "c", signal), "keep 2");
    },
  },
  {
    name: "a send into an occupied box fails loudly",
    async run(env) {
      const signal = AbortSignal.timeout(env.timeoutMs);
      using p = await pair(env);
      const out = p.alice.getChannel("c");
      const { write } = await out.cursors();
      // Someone wrote the next box behind the store's back.
      await out.writeBox(write!.index, enc.encode("\0intruder"), { signal });
      await assert.rejects(
        out.send(enc.encode("lost?"), { signal }),
        BoxConflictError,
      );
      const [failed] = await out.outbox();
      assert.equal(failed?.state, "failed");
      assert.equal(dec.decode(failed?.plaintext), "lost?");
      out.discard(failed!.id);
      await out.send(enc.encode("lost?"), { signal });
      assert.equal(await receiveText(p.bob, "c", signal), "intruder");
      assert.equal(await receiveText(p.bob, "c", signal), "lost?");
    },
  },
  {
    name: "two stores on one file never write the same box",
    async run(env) {
      const signal = AbortSignal.timeout(env.timeoutMs);
      using p = await pair(env);
      using second = await PigeonholeClient.open(
        env.writer,
        `${env.dir}/alice.db`,
      );
      const a = p.alice.getChannel("c");
      const b = second.getChannel("c");
      const sends: Promise<unknown>[] = [];
      for (let i = 0; i < 5; i++) {
        sends.push(a.send(enc.encode(`a${i}`), { signal }));
        sends.push(b.send(enc.encode(`b${i}`), { signal }));
      }
      await Promise.all(sends);
      const got = new Set<string>();
      for (let i = 0; i < 10; i++) {
        got.add(await receiveText(p.bob, "c", signal));
      }
      assert.equal(got.size, 10);
      assert.equal(
        await p.bob.getChannel("c").receive({ signal, noRetry: true }),
        null,
      );
    },
  },
];
