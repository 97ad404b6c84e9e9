/**
 * SQLite overhead of a persisted send in persistent/, without the network:
 *
 * - "reserve + complete": what every `Channel.send()` adds to the daemon
 *   round trips: one `BEGIN IMMEDIATE` transaction that re-reads the write
 *   cursor, inserts the intent (box index + plaintext) and moves the cursor,
 *   then one that deletes the intent once the write is acknowledged. Also
 *   the pending-intent check made before each send. Measured with
 *   `synchronous=FULL` (the default: a committed reservation survives power
 *   loss) and `NORMAL` (survives process crashes only), on a file in a
 *   temporary directory, and with AES-GCM sealing (two seals per send).
 * - "receive commit": the transaction storing a received message and moving
 *   the read cursor.
 * - "Channel.send() on the in-memory fake daemon": the whole call, for scale
 *   (two local daemon round trips, no mixnet).
 *
 * Run: `deno bench -A bench/persistent_bench.ts`
 *
 * @module
 */
import { ThinClient } from "../lib/client.ts";
import { PigeonholeClient, PigeonholeStore } from "../persistent/mod.ts";
import { storeParts } from "../persistent/db.ts";
import { FakeDaemon } from "../testing/mod.ts";

const dir = await Deno.makeTempDir({ prefix: "persistent_bench_" });
const plaintext = crypto.getRandomValues(new Uint8Array(1000));
const index = crypto.getRandomValues(new Uint8Array(104));
const cap = crypto.getRandomValues(new Uint8Array(168));

async function setup(
  name: string,
  options: { synchronous: "full" | "normal"; sealKey?: Uint8Array },
) {
  const store = await PigeonholeStore.open(`${dir}/${name}.db`, options);
  const { db, sealer } = storeParts(store);
  const id = db.insertChannel({
    name: "c",
    owned: true,
    writeCap: await sealer.seal("write_cap", cap),
    readCap: await sealer.seal("read_cap", cap.subarray(0, 136)),
    firstIndex: await sealer.seal("index", index),
    writeIndex: await sealer.seal("index", index),
    readIndex: await sealer.seal("index", index),
    createdAt: Date.now(),
  })!;
  return { store, db, sealer, id };
}

const full = await setup("full", { synchronous: "full" });
const normal = await setup("normal", { synchronous: "normal" });
const sealed = await setup("sealed", {
  synchronous: "full",
  sealKey: crypto.getRandomValues(new Uint8Array(32)),
});

/** The store work of one send, as Channel.send() does it. */
async function persistedSend(s: typeof full): Promise<void> {
  s.db.pendingIntentIds(s.id); // leftovers to replay first?
  const payload = await s.sealer.seal("plaintext", plaintext);
  const cur = s.db.writeCursor(s.id, "c");
  await s.sealer.open("index", cur.index);
  const next = await s.sealer.seal("index", index);
  const intentId = s.db.reserve(s.id, "c", cur.seq, {
    seq: cur.seq + 1,
    index: next,
  }, {
    kind: "message",
    seq: cur.seq,
    boxCount: 1,
    boxIndex: cur.index,
    payload,
  }, Date.now())!;
  // … encryptWrite and startResendingEncryptedMessage happen here …
  s.db.completeIntent(intentId);
}

Deno.bench({
  name: "reserve + complete (synchronous=FULL)",
  group: "send",
  baseline: true,
  fn: async () => {
    await persistedSend(full);
  },
});
Deno.bench({
  name: "reserve + complete (synchronous=NORMAL)",
  group: "send",
  fn: async () => {
    await persistedSend(normal);
  },
});
Deno.bench({
  name: "reserve + complete (FULL, sealed AES-GCM)",
  group: "send",
  fn: async () => {
    await persistedSend(sealed);
  },
});

Deno.bench({
  name: "receive commit (synchronous=FULL)",
  group: "receive",
  fn() {
    const cur = full.db.readCursor(full.id, "c");
    full.db.commitReceive(full.id, "c", cur.seq, {
      seq: cur.seq + 1,
      index,
    }, {
      seq: cur.seq,
      boxCount: 1,
      boxIndex: cur.index,
      plaintext,
      receivedAt: Date.now(),
    });
  },
});

const daemon = await FakeDaemon.start({ transport: "memory" });
const client = await ThinClient.connect(daemon.dialer);
const ph = await PigeonholeClient.open(client, `${dir}/e2e.db`);
const channel = await ph.createChannel("c");
Deno.bench({
  name: "Channel.send() on the in-memory fake daemon (FULL)",
  group: "e2e",
  n: 2000,
  fn: async () => {
    await channel.send(plaintext);
  },
});

globalThis.addEventListener("unload", () => {
  full.store.close();
  normal.store.close();
  sealed.store.close();
  ph.close();
  Deno.removeSync(dir, { recursive: true });
});
