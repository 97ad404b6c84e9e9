// Unit tests of persistent/ against the fake daemon.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { MessageBoxIndex, ReadCap } from "../lib/caps.ts";
import { ThinClient } from "../lib/client.ts";
import {
  DaemonError,
  PayloadTooLargeError,
  ReplicaError,
  ThinClientError,
} from "../lib/errors.ts";
import {
  BoxConflictError,
  type Channel,
  ChannelNotFoundError,
  formatShareText,
  MAX_LARGE_MESSAGE,
  parseShareText,
  PersistentError,
  PigeonholeClient,
  PigeonholeStore,
  SCHEMA_VERSION,
} from "../persistent/mod.ts";
import { FakeDaemon, type FakeDaemonOptions } from "../testing/mod.ts";
import { persistentScenarios } from "./_suites/persistent_suite.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const TIMEOUT = 10_000;

interface Env extends AsyncDisposable {
  daemon: FakeDaemon;
  writer: ThinClient;
  reader: ThinClient;
  dir: string;
  timeoutMs: number;
}

async function fakeEnv(options: FakeDaemonOptions = {}): Promise<Env> {
  const daemon = await FakeDaemon.start({ transport: "memory", ...options });
  const writer = await ThinClient.connect(daemon.dialer);
  const reader = await ThinClient.connect(daemon.dialer);
  const dir = await Deno.makeTempDir({ prefix: "persistent_test_" });
  return {
    daemon,
    writer,
    reader,
    dir,
    timeoutMs: TIMEOUT,
    async [Symbol.asyncDispose]() {
      await writer.close();
      await reader.close();
      await daemon.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Alice owns channel "c" in alice.db; Bob imported it in bob.db. */
async function pair(env: Env, options: { confirmWrites?: boolean } = {}) {
  const alice = await PigeonholeClient.open(
    env.writer,
    `${env.dir}/alice.db`,
    options,
  );
  const bob = await PigeonholeClient.open(env.reader, `${env.dir}/bob.db`);
  const out = await alice.createChannel("c");
  const inbox = await bob.importChannel("c", await out.shareReadCap());
  return {
    alice,
    bob,
    out,
    inbox,
    [Symbol.dispose]() {
      alice.close();
      bob.close();
    },
  };
}

async function text(ch: Channel, signal?: AbortSignal): Promise<string> {
  const r = await ch.receive(signal === undefined ? {} : { signal });
  assert.equal(r?.type, "message", `expected a message, got ${r?.type}`);
  return dec.decode(r.type === "message" ? r.message.plaintext : undefined);
}

/** Whether a recorded request is a box write. */
function isWrite(r: { body: Readonly<Record<string, unknown>> }): boolean {
  return r.body["write_cap"] instanceof Uint8Array;
}

/** Makes the next `n` box writes vanish (no reply, nothing stored). */
function dropWrites(daemon: FakeDaemon, n: number): void {
  let left = n;
  daemon.script("start_resending_encrypted_message", (req) => {
    if (isWrite(req) && left > 0) {
      left--;
      return "none";
    }
    return "default";
  });
}

/** Aborts as soon as the fake daemon sees a `kind` request. */
function abortOn(
  daemon: FakeDaemon,
  kind: "start_resending_encrypted_message" | "start_resending_copy_command",
): AbortSignal {
  const ctl = new AbortController();
  daemon.waitForRequest(kind, { timeoutMs: TIMEOUT }).then(
    () => setTimeout(() => ctl.abort(new Error("test abort")), 5),
    () => {},
  );
  return ctl.signal;
}

// -----------------------------------------------------------------------------
// Shared scenarios, on the fake daemon

for (const s of persistentScenarios) {
  Deno.test(`persistent suite (fake daemon): ${s.name}`, async () => {
    await using env = await fakeEnv();
    await s.run(env);
  });
}

// -----------------------------------------------------------------------------
// Store

Deno.test("PigeonholeStore.open() creates a 0600 WAL database at the current schema", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/s.db`;
    const store = await PigeonholeStore.open(path);
    assert.equal(store.path, path);
    assert.equal(store.isSealed, false);
    if (Deno.build.os !== "windows") {
      assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
    }
    store.close();
    const raw = new DatabaseSync(path);
    assert.equal(raw.prepare("PRAGMA journal_mode").get()?.journal_mode, "wal");
    assert.equal(
      raw.prepare("PRAGMA user_version").get()?.user_version,
      SCHEMA_VERSION,
    );
    raw.close();
    // Reopening an up-to-date store works.
    (await PigeonholeStore.open(path)).close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The application_id of a store file ("kphs"). */
const STORE_APPLICATION_ID = 0x6b706873;

/** SHA-256 of a file, hex. */
async function digest(path: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("PigeonholeStore.open() refuses a foreign file before any write and leaves it byte-identical", async () => {
  await withDir(async (dir) => {
    const cases: [string, (path: string) => void, RegExp][] = [
      [
        "another application's database",
        (path) => {
          const db = new DatabaseSync(path);
          db.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)");
          db.exec("INSERT INTO notes (body) VALUES ('hello')");
          db.close();
        },
        /it is not a store of this library \(application_id 0x00000000, expected 0x6b706873; user_version 0; 1 tables\); it was left unchanged$/,
      ],
      [
        "a database with another application_id",
        (path) => {
          const db = new DatabaseSync(path);
          db.exec("PRAGMA application_id = 1234");
          db.exec("PRAGMA user_version = 1");
          db.exec("CREATE TABLE meta (key TEXT)");
          db.close();
        },
        /application_id 0x000004d2, expected 0x6b706873; user_version 1; 1 tables/,
      ],
      [
        "the same tables under another application_id",
        (path) => {
          const db = new DatabaseSync(path);
          db.exec("PRAGMA application_id = 7");
          for (const t of ["meta", "channels", "outbox", "inbox"]) {
            db.exec(`CREATE TABLE ${t} (x)`);
          }
          db.close();
        },
        /application_id 0x00000007/,
      ],
      [
        "a file that is not SQLite",
        (path) => Deno.writeTextFileSync(path, "channel = news\n".repeat(400)),
        /it is not an SQLite database \(is this the right path\?\)$/,
      ],
    ];
    for (const [what, make, re] of cases) {
      const path = `${dir}/${what.replaceAll(" ", "_")}.db`;
      make(path);
      const before = await digest(path);
      await assert.rejects(PigeonholeStore.open(path), (err: unknown) => {
        assert.ok(err instanceof PersistentError, `${what}: ${err}`);
        assert.match(err.message, new RegExp(`^Cannot open store '${path}': `));
        assert.match(err.message, re, what);
        assert.ok(!err.message.includes("\n"), `${what}: one line`);
        assert.ok(err.message.length < 300, `${what}: ${err.message.length}`);
        return true;
      });
      assert.equal(await digest(path), before, `${what}: bytes unchanged`);
      for (const side of ["-wal", "-shm", "-journal"]) {
        assert.throws(() => Deno.statSync(path + side), Deno.errors.NotFound);
      }
    }
  });
});

Deno.test("PigeonholeStore.open() marks new stores and adopts stores written before application_id", async () => {
  await withDir(async (dir) => {
    const appId = (path: string): number => {
      const raw = new DatabaseSync(path, { readOnly: true });
      const v = Number(
        raw.prepare("PRAGMA application_id").get()?.application_id,
      );
      raw.close();
      return v;
    };
    const path = `${dir}/s.db`;
    (await PigeonholeStore.open(path)).close();
    assert.equal(appId(path), STORE_APPLICATION_ID);
    // A store of the previous release: our tables, application_id 0.
    const raw = new DatabaseSync(path);
    raw.exec("PRAGMA application_id = 0");
    raw.close();
    (await PigeonholeStore.open(path)).close();
    assert.equal(appId(path), STORE_APPLICATION_ID);
    // An empty file (say, created and never written) is a new store.
    const empty = `${dir}/empty.db`;
    Deno.writeFileSync(empty, new Uint8Array(0));
    (await PigeonholeStore.open(empty)).close();
    assert.equal(appId(empty), STORE_APPLICATION_ID);
  });
});

Deno.test("PigeonholeStore.open() makes a store readable by others private", {
  ignore: Deno.build.os === "windows",
}, async () => {
  await withDir(async (dir) => {
    const path = `${dir}/s.db`;
    const first = await PigeonholeStore.open(path);
    // While open, WAL side files exist; loosen them all.
    for (const f of [path, `${path}-wal`, `${path}-shm`]) {
      Deno.chmodSync(f, 0o644);
    }
    first.close();
    Deno.chmodSync(path, 0o644);
    const again = await PigeonholeStore.open(path);
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
    for (const f of [`${path}-wal`, `${path}-shm`]) {
      try {
        assert.equal(Deno.statSync(f).mode! & 0o777, 0o600, f);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
    }
    again.close();
    // A foreign file keeps its mode: it is not ours to change.
    const foreign = `${dir}/foreign.db`;
    const db = new DatabaseSync(foreign);
    db.exec("CREATE TABLE x (y)");
    db.close();
    Deno.chmodSync(foreign, 0o644);
    await assert.rejects(PigeonholeStore.open(foreign), PersistentError);
    assert.equal(Deno.statSync(foreign).mode! & 0o777, 0o644);
  });
});

Deno.test("PigeonholeStore.open() refuses a newer schema and bad arguments", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/s.db`;
    const raw = new DatabaseSync(path);
    raw.exec(`PRAGMA application_id = ${STORE_APPLICATION_ID}`);
    raw.exec("PRAGMA user_version = 99");
    raw.close();
    const before = await digest(path);
    await assert.rejects(PigeonholeStore.open(path), (err: unknown) => {
      assert.ok(err instanceof PersistentError);
      assert.match(
        err.message,
        /^Cannot open store '.*': schema version 99 is newer than supported version 1 \(written by a newer version of this library\); it was left unchanged$/,
      );
      return true;
    });
    assert.equal(await digest(path), before, "the newer store is unchanged");
    await assert.rejects(PigeonholeStore.open(""), TypeError);
    await assert.rejects(
      PigeonholeStore.open(":memory:", { busyTimeout: -1 }),
      RangeError,
    );
    await assert.rejects(
      PigeonholeStore.open(`${dir}/no/such/dir/x.db`),
      PersistentError,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("PigeonholeStore.close() is idempotent and later calls fail with PersistentError", async () => {
  await using env = await fakeEnv();
  const store = await PigeonholeStore.open(":memory:");
  const ph = new PigeonholeClient(env.writer, store);
  await ph.createChannel("c");
  store.close();
  store.close();
  assert.equal(store.isClosed, true);
  assert.throws(() => ph.listChannels(), PersistentError);
  assert.throws(() => ph.getChannel("c"), /store: it is closed/);
});

Deno.test("PigeonholeStore with sealKey keeps capabilities and messages out of the file", async () => {
  await using env = await fakeEnv();
  const marker = "SECRET-MARKER-0123456789";
  const find = async (sealKey?: Uint8Array) => {
    const path = `${env.dir}/${sealKey ? "sealed" : "plain"}.db`;
    const ph = await PigeonholeClient.open(
      env.writer,
      path,
      sealKey ? { sealKey } : {},
    );
    const ch = await ph.createChannel("c");
    const share = await ch.shareReadCap();
    await ch.send(enc.encode(marker));
    assert.equal(await text(ch), marker); // received into the inbox too
    const r = await ph.importChannel("imported", share);
    void r;
    const bytes = new Uint8Array([
      ...await Deno.readFile(path),
      ...await Deno.readFile(`${path}-wal`).catch(() => new Uint8Array()),
    ]);
    ph.close();
    const contains = (needle: Uint8Array) => {
      outer: for (let i = 0; i + needle.length <= bytes.length; i++) {
        for (let j = 0; j < needle.length; j++) {
          if (bytes[i + j] !== needle[j]) continue outer;
        }
        return true;
      }
      return false;
    };
    const cap = parseShareText(share).readCap.bytes.subarray(0, 32);
    return { plain: contains(enc.encode(marker)), cap: contains(cap) };
  };
  assert.deepEqual(await find(), { plain: true, cap: true }); // the control
  const key = crypto.getRandomValues(new Uint8Array(32));
  assert.deepEqual(await find(key), { plain: false, cap: false });
});

Deno.test("PigeonholeStore.open() checks the seal key", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const key = crypto.getRandomValues(new Uint8Array(32));
    const sealed = `${dir}/sealed.db`;
    (await PigeonholeStore.open(sealed, { sealKey: key })).close();
    // Same key as a CryptoKey.
    const cryptoKey = await crypto.subtle.importKey(
      "raw",
      key,
      "AES-GCM",
      false,
      ["encrypt", "decrypt"],
    );
    using again = await PigeonholeStore.open(sealed, { sealKey: cryptoKey });
    assert.equal(again.isSealed, true);
    await assert.rejects(
      PigeonholeStore.open(sealed),
      /it is sealed, a seal key is required/,
    );
    await assert.rejects(
      PigeonholeStore.open(sealed, {
        sealKey: crypto.getRandomValues(new Uint8Array(32)),
      }),
      /wrong seal key/,
    );
    const plain = `${dir}/plain.db`;
    (await PigeonholeStore.open(plain)).close();
    await assert.rejects(
      PigeonholeStore.open(plain, { sealKey: key }),
      /created without a seal key/,
    );
    await assert.rejects(
      PigeonholeStore.open(plain, { sealKey: new Uint8Array(16) }),
      RangeError,
    );
    await assert.rejects(
      PigeonholeStore.open(plain, {
        sealKey: "nope" as unknown as Uint8Array,
      }),
      TypeError,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// -----------------------------------------------------------------------------
// Channels

Deno.test("PigeonholeClient creates, lists, gets and deletes channels", async () => {
  await using env = await fakeEnv();
  using ph = await PigeonholeClient.open(env.writer, ":memory:");
  const a = await ph.createChannel("a");
  assert.equal(a.name, "a");
  assert.equal(a.owned, true);
  const share = await a.shareReadCap();
  const b = await ph.importChannel("b", share);
  assert.equal(b.owned, false);
  assert.deepEqual(
    ph.listChannels().map((c) => [c.name, c.owned, c.writeSeq, c.readSeq]),
    [["a", true, 0, 0], ["b", false, null, 0]],
  );
  assert.equal(ph.getChannel("a").owned, true);
  assert.equal(JSON.stringify(a), '{"name":"a","owned":true}');

  await assert.rejects(ph.createChannel("a"), /name already in use/);
  await assert.rejects(ph.importChannel("a", share), /name already in use/);
  await assert.rejects(ph.createChannel(""), TypeError);
  assert.throws(() => ph.getChannel("zz"), ChannelNotFoundError);
  assert.throws(() => ph.getChannel("zz"), ThinClientError);
  assert.throws(() => ph.deleteChannel("zz"), ChannelNotFoundError);

  ph.deleteChannel("a");
  assert.deepEqual(ph.listChannels().map((c) => c.name), ["b"]);
  // A stale handle fails cleanly.
  await assert.rejects(a.send(enc.encode("x")), ChannelNotFoundError);
  await assert.rejects(a.cursors(), ChannelNotFoundError);
});

Deno.test("PigeonholeClient.deleteChannel() keeps a channel with undelivered sends unless forced", async () => {
  await using env = await fakeEnv();
  using ph = await PigeonholeClient.open(env.writer, ":memory:");
  const ch = await ph.createChannel("c");
  dropWrites(env.daemon, 1);
  await assert.rejects(
    ch.send(enc.encode("x"), {
      signal: abortOn(env.daemon, "start_resending_encrypted_message"),
    }),
    /test abort/,
  );
  assert.throws(
    () => ph.deleteChannel("c"),
    /1 outbox item\(s\) not delivered/,
  );
  ph.deleteChannel("c", { force: true });
  assert.deepEqual(ph.listChannels(), []);
});

Deno.test("PigeonholeClient.open() owns its store; the constructor does not", async () => {
  await using env = await fakeEnv();
  const opened = await PigeonholeClient.open(env.writer, ":memory:");
  opened.close();
  assert.equal(opened.store.isClosed, true);
  using store = await PigeonholeStore.open(":memory:");
  const ph = new PigeonholeClient(env.writer, store);
  ph.close();
  assert.equal(store.isClosed, false);
  assert.deepEqual(ph.listChannels(), []);
});

Deno.test("Channel.shareReadCap() encodes the read cap and a start index", async () => {
  await using env = await fakeEnv();
  using p = await pair(env);
  const first = await p.out.shareReadCap();
  const { write } = await p.out.cursors();
  assert.equal(first, await p.out.shareReadCap({ from: "first" }));
  assert.ok(parseShareText(first).startIndex.equals(write!.index));
  await p.out.send(enc.encode("old"));
  const next = await p.out.shareReadCap({ from: "next" });
  const late = await p.bob.importChannel("late", next);
  await p.out.send(enc.encode("new"));
  assert.equal(await text(late), "new"); // starts after "old"
  assert.equal(await text(p.inbox), "old");
  // An imported channel shares its read position.
  const reshared = await late.shareReadCap({ from: "next" });
  assert.ok(
    parseShareText(reshared).startIndex.equals(
      (await late.cursors()).read.index,
    ),
  );
  await assert.rejects(
    p.out.shareReadCap({ from: "last" as "first" }),
    TypeError,
  );
});

Deno.test("formatShareText() and parseShareText() round-trip and detect damage", () => {
  const readCap = new ReadCap(new Uint8Array(136).fill(3));
  const startIndex = new MessageBoxIndex(new Uint8Array(104).fill(4));
  const t = formatShareText({ readCap, startIndex });
  assert.match(t, /^kpch1[A-Za-z0-9_-]+$/);
  const back = parseShareText(`  ${t}\n`);
  assert.deepEqual(back.readCap.bytes, readCap.bytes);
  assert.ok(back.startIndex.equals(startIndex));
  const damaged = t.slice(0, 20) + (t[20] === "A" ? "B" : "A") + t.slice(21);
  assert.throws(() => parseShareText(damaged), /checksum mismatch/);
  assert.throws(() => parseShareText(readCap.toText()), /does not start with/);
  assert.throws(
    () => parseShareText("kpch1abc"),
    /expected 244 base64url bytes/,
  );
  assert.throws(() => parseShareText("kpch1***"), TypeError);
  assert.throws(
    () => formatShareText({ readCap, startIndex: readCap as never }),
    TypeError,
  );
});

Deno.test("PigeonholeClient.importChannel() rejects a bad share text; imported channels are read-only", async () => {
  await using env = await fakeEnv();
  using p = await pair(env);
  await assert.rejects(p.bob.importChannel("x", "hello"), TypeError);
  await assert.rejects(
    p.inbox.send(enc.encode("x")),
    /it is imported \(read only\)/,
  );
  await assert.rejects(p.inbox.sendLarge(enc.encode("x")), PersistentError);
  const { read } = await p.inbox.cursors();
  await assert.rejects(
    p.inbox.writeBox(read.index, enc.encode("x")),
    PersistentError,
  );
  await assert.rejects(p.inbox.tombstone(read.index), PersistentError);
  assert.deepEqual(await p.inbox.resumePending(), { delivered: 0, failed: 0 });
  assert.equal((await p.inbox.cursors()).write, null);
});

// -----------------------------------------------------------------------------
// Sending and receiving

Deno.test("Channel.send() checks its argument and the payload size", async () => {
  await using env = await fakeEnv();
  using p = await pair(env);
  const max = env.writer.pigeonholeGeometry.maxPlaintextPayloadLength;
  await p.out.send(new Uint8Array(max - 1).fill(7));
  await assert.rejects(p.out.send(new Uint8Array(max)), (err: unknown) => {
    assert.ok(err instanceof PayloadTooLargeError);
    assert.match(err.message, /use sendLarge/);
    return true;
  });
  await assert.rejects(p.out.send("x" as never), TypeError);
  await assert.rejects(p.out.sendLarge(new Uint8Array(0)), RangeError);
  await assert.rejects(
    p.out.sendLarge(new Uint8Array(MAX_LARGE_MESSAGE + 1)),
    PayloadTooLargeError,
  );
  const r = await p.inbox.receive();
  assert.equal(r?.type === "message" && r.message.plaintext.length, max - 1);
});

Deno.test("Channel.send() reserves nothing when encryption fails", async () => {
  await using env = await fakeEnv();
  using p = await pair(env);
  env.daemon.script("encrypt_write", 4, { times: 1 });
  await assert.rejects(p.out.send(enc.encode("x")), DaemonError);
  assert.equal((await p.out.cursors()).write!.seq, 0);
  assert.deepEqual(await p.out.outbox(), []);
  await p.out.send(enc.encode("y"));
  assert.equal(await text(p.inbox), "y");
});

Deno.test("Channel.send() with an aborted signal rejects with its reason and reserves nothing", async () => {
  await using env = await fakeEnv();
  using p = await pair(env);
  const reason = new Error("stop");
  await assert.rejects(
    p.out.send(enc.encode("x"), { signal: AbortSignal.abort(reason) }),
    (err) => err === reason,
  );
  assert.equal((await p.out.cursors()).write!.seq, 0);
});

Deno.test("Channel.receive() with noRetry returns null, and by default waits for the box", async () => {
  await using env = await fakeEnv();
  using p = await pair(env);
  assert.equal(await p.inbox.receive({ noRetry: true }), null);
  const waiting = text(p.inbox, AbortSignal.timeout(TIMEOUT));
  await new Promise((r) => setTimeout(r, 20));
  await p.out.send(enc.encode("late"));
  assert.equal(await waiting, "late");
  assert.equal((await p.inbox.cursors()).read.seq, 1);
});

Deno.test("Channel.receive() rejects with the abort reason and releases the channel", async () => {
  await using env = await fakeEnv();
  using p = await pair(env);
  const ctl = new AbortController();
  const pending = p.inbox.receive({ signal: ctl.signal });
  const queued = p.inbox.receive({ signal: ctl.signal }); // waits for the first
  const reason = new Error("bored");
  setTimeout(() => ctl.abort(reason), 20);
  await assert.rejects(pending, (err) => err === reason);
  await assert.rejects(queued, (err) => err === reason);
  await p.out.send(enc.encode("x"));
  assert.equal(await text(p.inbox, AbortSignal.timeout(TIMEOUT)), "x");
});

Deno.test("Channel.receive() called concurrently stores each box once", async () => {
  await using env = await fakeEnv();
  using p = await pair(env);
  const other = await PigeonholeClient.open(env.reader, `${env.dir}/bob.db`);
  try {
    const handles = [p.inbox, p.bob.getChannel("c"), other.getChannel("c")];
    const results = handles.flatMap((h) =>
      [0, 1].map(() => text(h, AbortSignal.timeout(TIMEOUT)))
    );
    for (let i = 0; i < 6; i++) await p.out.send(enc.encode(`m${i}`));
    const got = await Promise.all(results);
    assert.deepEqual(got.toSorted(), ["m0", "m1", "m2", "m3", "m4", "m5"]);
    const stored = await p.inbox.inbox();
    assert.deepEqual(
      stored.map((m) => [m.seq, dec.decode(m.plaintext)]),
      [[0, "m0"], [1, "m1"], [2, "m2"], [3, "m3"], [4, "m4"], [5, "m5"]],
    );
  } finally {
    other.close();
  }
});

Deno.test("Channel.messages() yields messages, skips tombstones and ends on abort", async () => {
  await using env = await fakeEnv();
  using p = await pair(env);
  await p.out.send(enc.encode("a"));
  const t = await p.out.send(enc.encode("b"));
  await p.out.send(enc.encode("c"));
  await p.out.tombstone(t.index);
  const ctl = new AbortController();
  const got: string[] = [];
  const reason = new Error("enough");
  await assert.rejects(
    (async () => {
      for await (const m of p.inbox.messages({ signal: ctl.signal })) {
        got.push(dec.decode(m.plaintext));
        if (got.length === 2) setTimeout(() => ctl.abort(reason), 10);
      }
    })(),
    (err) => err === reason,
  );
  assert.deepEqual(got, ["a", "c"]);
});

Deno.test("Channel.inbox(), markRead() and deleteMessages()", async () => {
  await using env = await fakeEnv();
  using p = await pair(env);
  for (const m of ["a", "b", "c"]) await p.out.send(enc.encode(m));
  for (let i = 0; i < 3; i++) await p.inbox.receive();
  const all = await p.inbox.inbox();
  assert.deepEqual(all.map((m) => [m.seq, m.read, m.channel]), [
    [0, false, "c"],
    [1, false, "c"],
    [2, false, "c"],
  ]);
  assert.ok(all[0]!.receivedAt instanceof Date);
  p.inbox.markRead([all[0]!.id, all[1]!.id]);
  assert.deepEqual(
    (await p.inbox.inbox({ unreadOnly: true })).map((m) =>
      dec.decode(m.plaintext)
    ),
    ["c"],
  );
  assert.equal((await p.inbox.inbox({ limit: 1 })).length, 1);
  assert.equal(p.bob.listChannels()[0]!.unread, 1);
  assert.throws(
    () => p.inbox.markRead([all[2]!.id, 9999]),
    /'9999' is not a message of channel 'c'/,
  );
  assert.equal((await p.inbox.inbox({ unreadOnly: true })).length, 1); // all or none
  assert.throws(() => p.inbox.markRead(1.5), TypeError);
  await assert.rejects(p.inbox.inbox({ limit: -1 }), RangeError);
  // Another channel's message id is not ours.
  const other = await p.bob.importChannel("again", await p.out.shareReadCap());
  await other.receive();
  const [foreign] = await other.inbox();
  assert.throws(() => p.inbox.markRead(foreign!.id), PersistentError);
  assert.equal(p.inbox.deleteMessages([all[0]!.id, foreign!.id]), 1);
  assert.equal((await p.inbox.inbox()).length, 2);
});

Deno.test("Channel.readBox() and writeBox() work on raw boxes", async () => {
  await using env = await fakeEnv();
  using p = await pair(env);
  const { write } = await p.out.cursors();
  const index = write!.index;
  const empty = await p.inbox.readBox(index, { noRetry: true });
  assert.equal(empty.status, "empty");
  assert.equal(empty.plaintext, null);
  await p.out.writeBox(index, enc.encode("raw"));
  const box = await p.inbox.readBox(index);
  assert.equal(box.status, "data");
  assert.equal(dec.decode(box.plaintext!), "raw");
  assert.ok(box.next.equals(empty.next));
  // Identical bytes are accepted again; other bytes are refused.
  await p.out.writeBox(index, enc.encode("raw"));
  await assert.rejects(
    p.out.writeBox(index, enc.encode("other")),
    (err: unknown) => err instanceof ReplicaError && err.code === 10,
  );
  await assert.rejects(p.out.writeBox(index, new Uint8Array(0)), RangeError);
  await assert.rejects(p.out.readBox("x" as never), TypeError);
  // The reader does not understand the raw box and moves past it.
  const r = await p.inbox.receive();
  assert.equal(r?.type, "skipped");
  assert.equal(r.type === "skipped" && r.reason, "malformed");
});

Deno.test("Channel.tombstone() deletes a range, and readers skip it", async () => {
  await using env = await fakeEnv();
  using p = await pair(env);
  const first = await p.out.send(enc.encode("a"));
  await p.out.send(enc.encode("b"));
  await p.out.send(enc.encode("c"));
  await p.out.tombstone(first.index, { count: 2 });
  await assert.rejects(p.out.tombstone(first.index, { count: 0 }), RangeError);
  const kinds = [];
  for (let i = 0; i < 3; i++) {
    const r = await p.inbox.receive();
    kinds.push(
      r?.type === "message" ? dec.decode(r.message.plaintext) : r?.type,
    );
  }
  assert.deepEqual(kinds, ["skipped", "skipped", "c"]);
  assert.deepEqual(await p.out.outbox(), []);
});

Deno.test("Channel.sendLarge() message with a deleted part is skipped as malformed", async () => {
  await using env = await fakeEnv();
  using p = await pair(env);
  const max = env.writer.pigeonholeGeometry.maxPlaintextPayloadLength;
  const sent = await p.out.sendLarge(new Uint8Array(max * 3).fill(9));
  const second = await p.out.readBox(sent.index);
  await p.out.tombstone(second.next); // the second box
  await p.out.send(enc.encode("after"));
  const r = await p.inbox.receive();
  assert.equal(r?.type, "skipped");
  if (r?.type === "skipped") {
    assert.equal(r.reason, "malformed");
    assert.equal(r.boxCount, 2);
  }
  // The cursor is inside the large message: the rest is skipped too.
  let next = await p.inbox.receive();
  while (next?.type === "skipped") next = await p.inbox.receive();
  assert.equal(
    next?.type === "message" && dec.decode(next.message.plaintext),
    "after",
  );
});

Deno.test("Channel.send() into a tombstoned box fails with BoxConflictError", async () => {
  await using env = await fakeEnv();
  using p = await pair(env);
  const { write } = await p.out.cursors();
  await p.out.tombstone(write!.index); // burns the next box
  await assert.rejects(p.out.send(enc.encode("x")), (err: unknown) => {
    assert.ok(err instanceof BoxConflictError);
    assert.equal(err.seq, 0);
    assert.equal(err.channel, "c");
    assert.ok(err.cause instanceof ReplicaError);
    return true;
  });
  const [item] = await p.out.outbox();
  assert.equal(item?.state, "failed");
  assert.equal(item?.kind, "message");
  assert.match(item?.error ?? "", /box already exists/);
  assert.equal(p.alice.listChannels()[0]!.failedSends, 1);
  // The failed item stays until discarded, and is not sent again.
  assert.deepEqual(await p.out.resumePending(), { delivered: 0, failed: 0 });
  p.out.discard(item!.id);
  assert.deepEqual(await p.out.outbox(), []);
  assert.throws(() => p.out.discard(item!.id), /not in channel 'c'/);
  await p.out.send(enc.encode("y"));
  const r = await p.inbox.receive();
  assert.equal(r?.type === "skipped" && r.reason, "tombstone");
  assert.equal(await text(p.inbox), "y");
});

Deno.test("confirmWrites: false sends without the box-exists check", async () => {
  await using env = await fakeEnv();
  using p = await pair(env, { confirmWrites: false });
  await p.out.send(enc.encode("x"));
  const writes = env.daemon.received.filter((r) =>
    r.kind === "start_resending_encrypted_message" &&
    isWrite(r)
  );
  assert.equal(writes.length, 1);
  assert.notEqual(writes[0]!.body["no_idempotent_box_already_exists"], true);
  // With the default, the flag is set.
  using q = await PigeonholeClient.open(env.writer, ":memory:");
  await (await q.createChannel("d")).send(enc.encode("y"));
  const last = env.daemon.received.findLast((r) =>
    r.kind === "start_resending_encrypted_message" &&
    isWrite(r)
  );
  assert.equal(last!.body["no_idempotent_box_already_exists"], true);
});

Deno.test("Channel.sendLarge() into an occupied range fails with BoxConflictError", async () => {
  await using env = await fakeEnv();
  using p = await pair(env);
  const { write } = await p.out.cursors();
  const second = await p.out.readBox(write!.index, { noRetry: true });
  await p.out.writeBox(second.next, enc.encode("\0squatter"));
  const max = env.writer.pigeonholeGeometry.maxPlaintextPayloadLength;
  await assert.rejects(
    p.out.sendLarge(new Uint8Array(max * 2).fill(1)),
    BoxConflictError,
  );
  const [item] = await p.out.outbox();
  assert.equal(item?.kind, "copy");
  assert.equal(item?.state, "failed");
  assert.equal(item?.plaintext.length, max * 2);
});

// -----------------------------------------------------------------------------
// Recovery

Deno.test("An interrupted send is delivered into its box before the next send", async () => {
  await using env = await fakeEnv();
  {
    using p = await pair(env);
    dropWrites(env.daemon, 1);
    await assert.rejects(
      p.out.send(enc.encode("first"), {
        signal: abortOn(env.daemon, "start_resending_encrypted_message"),
      }),
      /test abort/,
    );
    const [item] = await p.out.outbox();
    assert.equal(item?.state, "pending");
    assert.equal(dec.decode(item?.plaintext), "first");
    assert.equal(p.alice.listChannels()[0]!.pendingSends, 1);
    assert.equal(await p.inbox.receive({ noRetry: true }), null); // a hole, for now
  }
  // "Restart": new handles on the same files.
  using alice = await PigeonholeClient.open(env.writer, `${env.dir}/alice.db`);
  using bob = await PigeonholeClient.open(env.reader, `${env.dir}/bob.db`);
  const out = alice.getChannel("c");
  const sent = await out.send(enc.encode("second"));
  assert.equal(sent.seq, 1);
  assert.deepEqual(await out.outbox(), []);
  const inbox = bob.getChannel("c");
  assert.equal(await text(inbox), "first");
  assert.equal(await text(inbox), "second");
  const [replayed] = env.daemon.received.filter((r) =>
    r.kind === "encrypt_write"
  ).slice(-2);
  assert.ok(replayed !== undefined); // re-encrypted, not a stored ciphertext
});

Deno.test("PigeonholeClient.resumePending() sends every channel's leftovers", async () => {
  await using env = await fakeEnv();
  using p = await pair(env);
  const other = await p.alice.createChannel("d");
  const otherIn = await p.bob.importChannel("d", await other.shareReadCap());
  dropWrites(env.daemon, 2);
  for (const ch of [p.out, other]) {
    await assert.rejects(
      ch.send(enc.encode(`pending ${ch.name}`), {
        signal: abortOn(env.daemon, "start_resending_encrypted_message"),
      }),
      /test abort/,
    );
  }
  assert.deepEqual(await p.alice.resumePending(), { delivered: 2, failed: 0 });
  assert.deepEqual(await p.alice.resumePending(), { delivered: 0, failed: 0 });
  assert.equal(await text(p.inbox), "pending c");
  assert.equal(await text(otherIn), "pending d");
  const [item] = await p.out.outbox();
  assert.equal(item, undefined);
});

Deno.test("A replayed send whose box already holds its bytes counts as delivered", async () => {
  await using env = await fakeEnv();
  using p = await pair(env);
  dropWrites(env.daemon, 1);
  const cursor = (await p.out.cursors()).write!;
  await assert.rejects(
    p.out.send(enc.encode("landed"), {
      signal: abortOn(env.daemon, "start_resending_encrypted_message"),
    }),
    /test abort/,
  );
  // The first attempt had in fact landed...
  await p.out.writeBox(cursor.index, enc.encode("\0landed"));
  // ...and the replica answers the replay with "box already exists".
  env.daemon.script(
    "start_resending_encrypted_message",
    (req) => isWrite(req) ? 10 : "default",
    { times: 1 },
  );
  assert.deepEqual(await p.out.resumePending(), { delivered: 1, failed: 0 });
  assert.equal(await text(p.inbox), "landed");
});

Deno.test("A replayed send whose box holds other bytes fails and is kept", async () => {
  await using env = await fakeEnv();
  using p = await pair(env);
  dropWrites(env.daemon, 1);
  const cursor = (await p.out.cursors()).write!;
  await assert.rejects(
    p.out.send(enc.encode("mine"), {
      signal: abortOn(env.daemon, "start_resending_encrypted_message"),
    }),
    /test abort/,
  );
  await p.out.writeBox(cursor.index, enc.encode("\0theirs"));
  assert.deepEqual(await p.out.resumePending(), { delivered: 0, failed: 1 });
  const [item] = await p.out.outbox();
  assert.equal(item?.state, "failed");
  assert.equal(item?.attempts, 1);
  // A later send is not blocked by it.
  await p.out.send(enc.encode("next"));
  assert.equal(await text(p.inbox), "theirs");
  assert.equal(await text(p.inbox), "next");
});

Deno.test("Channel.discard() turns a pending send into a tombstone readers skip", async () => {
  await using env = await fakeEnv();
  using p = await pair(env);
  dropWrites(env.daemon, 1);
  await assert.rejects(
    p.out.send(enc.encode("regret"), {
      signal: abortOn(env.daemon, "start_resending_encrypted_message"),
    }),
    /test abort/,
  );
  const [item] = await p.out.outbox();
  p.out.discard(item!.id);
  const [tomb] = await p.out.outbox();
  assert.equal(tomb?.kind, "tombstone");
  assert.equal(tomb?.state, "pending");
  assert.equal(tomb?.seq, null);
  await p.out.send(enc.encode("ok")); // delivers the tombstone first
  const r = await p.inbox.receive();
  assert.equal(r?.type === "skipped" && r.reason, "tombstone");
  assert.equal(await text(p.inbox), "ok");
  assert.throws(() => p.out.discard(1.5), TypeError);
});

Deno.test("Channel.discard() refuses an item that is being sent", async () => {
  await using env = await fakeEnv();
  using p = await pair(env);
  dropWrites(env.daemon, 1);
  const ctl = new AbortController();
  const sending = p.out.send(enc.encode("slow"), { signal: ctl.signal });
  await env.daemon.waitForRequest("start_resending_encrypted_message");
  const [item] = await p.out.outbox();
  assert.throws(() => p.out.discard(item!.id), /it is being sent/);
  ctl.abort(new Error("done"));
  await assert.rejects(sending, /done/);
});

Deno.test("An interrupted sendLarge() is copied again on resume", async () => {
  await using env = await fakeEnv();
  using p = await pair(env);
  env.daemon.script("start_resending_copy_command", "none", { times: 1 });
  const big = crypto.getRandomValues(new Uint8Array(4000));
  await assert.rejects(
    p.out.sendLarge(big, {
      signal: abortOn(env.daemon, "start_resending_copy_command"),
    }),
    /test abort/,
  );
  const [item] = await p.out.outbox();
  assert.equal(item?.kind, "copy");
  assert.equal(item?.state, "pending");
  assert.ok(item!.boxCount >= 3);
  assert.deepEqual(await p.out.resumePending(), { delivered: 1, failed: 0 });
  const r = await p.inbox.receive({ noRetry: true });
  assert.deepEqual(r?.type === "message" && r.message.plaintext, big);
});

Deno.test("Channel.send() in two handles at once uses distinct boxes", async () => {
  await using env = await fakeEnv();
  using p = await pair(env);
  const twin = p.alice.getChannel("c");
  const sent = await Promise.all(
    Array.from(
      { length: 20 },
      (_, i) => (i % 2 ? p.out : twin).send(enc.encode(`m${i}`)),
    ),
  );
  assert.deepEqual(
    sent.map((s) => s.seq).toSorted((a, b) => a - b),
    Array.from({ length: 20 }, (_, i) => i),
  );
  const got = [];
  for (let i = 0; i < 20; i++) got.push(await text(p.inbox));
  assert.equal(new Set(got).size, 20);
});

Deno.test("a damaged capability or sealed value in the store is a PersistentError, not a RangeError", async () => {
  await using env = await fakeEnv();
  for (const sealKey of [undefined, new Uint8Array(32).fill(4)]) {
    const path = `${env.dir}/damaged-${
      sealKey === undefined ? "plain" : "sealed"
    }.db`;
    const p = await PigeonholeClient.open(
      env.writer,
      path,
      sealKey === undefined ? {} : { sealKey },
    );
    await p.createChannel("c");
    p.close();
    // Five bytes where a 136-byte read capability (or its sealed form) was.
    const raw = new DatabaseSync(path);
    raw.prepare("UPDATE channels SET read_cap = ? WHERE name = 'c'").run(
      new Uint8Array(5),
    );
    raw.close();
    const again = await PigeonholeClient.open(
      env.writer,
      path,
      sealKey === undefined ? {} : { sealKey },
    );
    try {
      const ch = again.getChannel("c");
      await assert.rejects(ch.shareReadCap(), (err: unknown) => {
        assert.ok(err instanceof PersistentError, String(err));
        assert.match(
          err.message,
          sealKey === undefined
            ? /stored read_cap has 5 bytes, expected 136 \(the store is damaged\)/
            : /Cannot unseal the stored read_cap: it is malformed/,
        );
        return true;
      });
    } finally {
      again.close();
    }
  }
});
