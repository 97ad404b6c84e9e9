// The resume state file of pigeonhole-cp: files written by earlier versions
// open and resume; foreign and newer files are refused and left unchanged.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { CliError, ExitCode } from "../cli/_errors.ts";
import { TransferStore } from "../cli/_state.ts";
import { PersistentError } from "../persistent/errors.ts";
import { TransferDb } from "../persistent/_transfer_store.ts";

/**
 * A state file made by the code before the SQL moved to persistent/: a send
 * record with copy-stream elements and a receive record (see the first test
 * for their contents); a third record was saved and deleted.
 */
const FIXTURE = new URL(
  "./fixtures/pigeonhole_cp_state_v0.db",
  import.meta.url,
);

/** A temporary folder, removed on dispose; `path` is `state.db` in it. */
interface Scratch extends AsyncDisposable {
  dir: string;
  path: string;
}

async function scratch(): Promise<Scratch> {
  const dir = await Deno.makeTempDir({ prefix: "transfer_state_test_" });
  return {
    dir,
    path: `${dir}/state.db`,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/** A copy of the fixture in a scratch folder, changed by `edit`. */
async function fixtureCopy(
  edit: (db: DatabaseSync) => void = () => {},
): Promise<Scratch> {
  const s = await scratch();
  await Deno.copyFile(FIXTURE, s.path);
  const raw = new DatabaseSync(s.path);
  try {
    edit(raw);
  } finally {
    raw.close();
  }
  return s;
}

Deno.test("TransferStore opens and resumes a state file of the previous version", async () => {
  await using tmp = await fixtureCopy();
  const path = tmp.path;
  await Deno.chmod(path, 0o644);
  {
    using store = await TransferStore.open(path);
    const send = store.get("send-key");
    assert.ok(send !== undefined);
    assert.deepEqual(send.record, {
      v: 1,
      lowIndex: new Uint8Array(104).fill(7),
      bytes: 1234,
      name: "report.pdf",
      boxes: [0, 1, 2],
    });
    assert.deepEqual(send.elements, new Uint8Array([1, 2, 3, 4]));
    const receive = store.get("receive-key");
    assert.ok(receive !== undefined);
    assert.equal(receive.record["bytes"], 99);
    assert.deepEqual(receive.record["sha256"], new Uint8Array(32).fill(9));
    assert.equal(receive.elements, null);
    assert.equal(store.get("done-key"), undefined);
    store.update("send-key", { ...send.record, bytes: 2000 });
    store.put("other", "receive", { v: 1 });
  }
  // Made private, and what was saved is there on the next open.
  assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
  using again = await TransferStore.open(path);
  const send = again.get("send-key");
  assert.equal(send?.record["bytes"], 2000);
  assert.deepEqual(send?.elements, new Uint8Array([1, 2, 3, 4]));
  assert.deepEqual(again.get("other")?.record, { v: 1 });
  again.delete("other");
  assert.equal(again.get("other"), undefined);
});

Deno.test("TransferStore adopts a state file from before application_id was set", async () => {
  await using tmp = await fixtureCopy((db) => {
    db.exec("PRAGMA application_id = 0");
  });
  {
    using store = await TransferStore.open(tmp.path);
    assert.equal(store.get("receive-key")?.record["bytes"], 99);
  }
  const check = new DatabaseSync(tmp.path, { readOnly: true });
  try {
    const id = check.prepare("PRAGMA application_id").get();
    assert.equal(id?.["application_id"], 0x6b706370);
  } finally {
    check.close();
  }
});

Deno.test("TransferStore refuses a newer state file and leaves it byte-identical", async () => {
  await using tmp = await fixtureCopy((db) => {
    db.exec("PRAGMA user_version = 1");
  });
  const before = await Deno.readFile(tmp.path);
  await assert.rejects(TransferDb.open(tmp.path), (err: unknown) => {
    assert.ok(err instanceof PersistentError);
    assert.match(
      err.message,
      /^Cannot open state file '.*': schema version 1 is newer than supported version 0 .*; it was left unchanged$/,
    );
    return true;
  });
  await assert.rejects(TransferStore.open(tmp.path), (err: unknown) => {
    assert.ok(err instanceof CliError);
    assert.equal(err.exitCode, ExitCode.Input);
    assert.match(err.message, /^Cannot open state file '.*': schema version/);
    return true;
  });
  assert.deepEqual(await Deno.readFile(tmp.path), before);
});

Deno.test("TransferStore creates its folder 0700 and its file 0600", async () => {
  await using tmp = await scratch();
  const path = `${tmp.dir}/a/b/state.db`;
  using store = await TransferStore.open(path);
  store.put("k", "send", { v: 1 });
  assert.equal((await Deno.stat(`${tmp.dir}/a/b`)).mode! & 0o777, 0o700);
  assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
});

Deno.test("TransferStore write failures are one-line CliErrors that keep the cause", async () => {
  const store = await TransferStore.open(":memory:");
  store.close();
  store.close(); // idempotent
  assert.equal(store.get("k"), undefined);
  assert.throws(() => store.put("k", "send", { v: 1 }), (err: unknown) => {
    assert.ok(err instanceof CliError);
    assert.equal(err.exitCode, ExitCode.Failure);
    assert.ok(err.cause instanceof PersistentError);
    assert.match(
      err.message,
      /^Cannot use state file: it is closed \(the transfer itself is not lost: free space or pass --no-state\)$/,
    );
    return true;
  });
});
