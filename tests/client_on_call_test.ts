// ThinClient's onCall option against the fake daemon: one record per settled
// request, with its outcome, error code, duration and re-sends, and nothing
// secret in it.
import assert from "node:assert/strict";
import type { CallRecord } from "../mod.ts";
import { DaemonError } from "../lib/errors.ts";
import { connectTo, filled, startFake, within } from "./_helpers.ts";

function recorder(): {
  records: CallRecord[];
  onCall: (r: CallRecord) => void;
} {
  const records: CallRecord[] = [];
  return { records, onCall: (r) => records.push(r) };
}

Deno.test("onCall records a reply's outcome and error code, and nothing else", async () => {
  await using fake = await startFake();
  const { records, onCall } = recorder();
  await using client = await connectTo(fake, { onCall });
  await client.newKeypair(filled(32, 1));
  fake.script("get_directory_authorities", { errorCode: 10 }, { times: 1 });
  await assert.rejects(client.getDirectoryAuthorities(), DaemonError);
  assert.equal(records.length, 2);
  const [ok, failed] = records as [CallRecord, CallRecord];
  assert.deepEqual(Object.keys(ok).sort(), [
    "durationMs",
    "errorCode",
    "kind",
    "outcome",
    "resent",
  ]);
  assert.deepEqual(
    { ...ok, durationMs: 0 },
    {
      kind: "new_keypair",
      outcome: "ok",
      durationMs: 0,
      errorCode: 0,
      resent: 0,
    },
  );
  assert.ok(ok.durationMs >= 0 && ok.durationMs < 10_000, `${ok.durationMs}`);
  assert.deepEqual(
    [failed.kind, failed.outcome, failed.errorCode],
    ["get_directory_authorities", "error", 10],
  );
});

Deno.test("onCall records aborted calls, calls cut by close(), and re-sends", async () => {
  await using fake = await startFake();
  const { records, onCall } = recorder();
  const client = await connectTo(fake, { onCall });
  // Re-sent once after the connection drops, then answered.
  fake.script("get_directory_authorities", "none", { times: 1 });
  const resent = client.getDirectoryAuthorities();
  await fake.waitForRequest("get_directory_authorities");
  fake.drop();
  await within(resent, 5000, "re-sent call");
  // Aborted by its signal.
  fake.script("get_pki_document", "none");
  const controller = new AbortController();
  const aborted = client.getPkiDocumentRaw(0n, { signal: controller.signal });
  await fake.waitForRequest("get_pki_document");
  controller.abort(new Error("stop"));
  await assert.rejects(aborted, /stop/);
  // Still waiting when the client closes.
  const cut = client.getPkiDocumentRaw(0n);
  await fake.waitForRequest("get_pki_document");
  await client.close();
  await assert.rejects(cut);
  assert.deepEqual(
    records.map((r) => [r.kind, r.outcome, r.errorCode, r.resent]),
    [
      ["get_directory_authorities", "ok", 0, 1],
      ["get_pki_document", "aborted", null, 0],
      ["get_pki_document", "closed", null, 0],
    ],
  );
});

Deno.test("onCall: a throwing recorder does not fail the call; a non-function is a TypeError", async () => {
  await using fake = await startFake();
  let calls = 0;
  await using client = await connectTo(fake, {
    onCall: () => {
      calls++;
      throw new Error("recorder bug");
    },
  });
  const kp = await client.newKeypair(filled(32, 2));
  assert.equal(kp.readCap.bytes.length > 0, true);
  assert.equal(calls, 1);
  await assert.rejects(
    // @ts-expect-error: not a function
    connectTo(fake, { onCall: "log" }),
    (err: unknown) =>
      err instanceof TypeError &&
      /onCall: it is not a function/.test(err.message),
  );
});
