/**
 * kpclientd killed and restarted while calls are pending: the client
 * reconnects on its own, every pending call settles, nothing hangs.
 */
import assert from "node:assert/strict";
import {
  ConnectionError,
  ThinClientError,
  type ThinClientEvent,
} from "../../mod.ts";
import {
  connectReal,
  enc,
  itest,
  mixnet,
  ownDaemon,
  within,
} from "./_mixnet.ts";

itest(
  "real kpclientd restarted during operations: reconnect, replay, pending calls settle",
  async () => {
    // A daemon of its own: the other test files run at the same time.
    await using daemon = await ownDaemon("restart");
    await using client = await connectReal(daemon.dial, {
      reconnect: { initialDelay: 200, maxDelay: 1000 },
    });
    const events = client.events({ signal: within(240) });
    const states = client.events({ types: ["state"], signal: within(240) });
    const echo = client.getService("echo");

    // A read of a box nobody writes waits in the daemon's ARQ until cancelled.
    const { readCap, firstMessageIndex } = await client.newKeypair(undefined, {
      signal: within(30),
    });
    const env = await client.encryptRead(readCap, firstMessageIndex, {
      signal: within(60),
    });
    const readCtl = new AbortController();
    const read = client.startResendingEncryptedMessage(
      { readCap, messageBoxIndex: firstMessageIndex, ...env },
      { signal: AbortSignal.any([readCtl.signal, within(240)]) },
    );
    const readSettled = read.then(() => "resolved", (err) => err);
    const send = client.blockingSendMessage(
      enc.encode("across restart"),
      echo.destinationIdHash,
      echo.recipientQueueId,
      {
        signal: within(240),
      },
    ).then(() => "resolved", (err) => err);
    const before = client.daemonInstanceToken;

    await mixnet("restart-daemon", "--name", "restart");

    let disconnected = false;
    let reconnected: Extract<ThinClientEvent, { type: "reconnected" }> | null =
      null;
    for await (const ev of events) {
      if (ev.type === "daemon_disconnected") disconnected = true;
      if (ev.type === "reconnected") {
        reconnected = ev;
        break;
      }
    }
    assert.ok(disconnected, "daemon_disconnected was reported");
    assert.ok(reconnected !== null, "reconnected was reported");
    assert.equal(reconnected.instanceTokenChanged, true);
    assert.equal(reconnected.resumed, false);
    assert.notDeepEqual(client.daemonInstanceToken, before);
    // client.state went from connected to reconnecting, then back up (the
    // new daemon may not have reached the mixnet yet).
    const down = (await states.next()).value;
    const back = (await states.next()).value;
    assert.deepEqual(
      down?.type === "state" && [down.previous, down.state],
      ["connected", "reconnecting"],
    );
    assert.ok(
      back?.type === "state" && back.previous === "reconnecting" &&
        ["connected", "daemon_offline"].includes(back.state),
      `after the restart: ${JSON.stringify(back)}`,
    );
    await states.return!();

    // The legacy reply died with the old daemon: a typed error, not a hang.
    const sendResult = await send;
    assert.ok(
      sendResult === "resolved" || sendResult instanceof ConnectionError,
      `blocking send settled with ${sendResult}`,
    );
    // The replayed read is still waiting; aborting it cancels it in the new daemon.
    const reason = new Error("stop reading");
    readCtl.abort(reason);
    assert.equal(await readSettled, reason);

    // The client works on the new daemon. An echo is a plain SURB reply, which
    // kpclientd drops when it reaches it later than the round trip + 4.5 s
    // (its SURB-ID garbage collector), and the read's last reply may still be
    // keeping the daemon's single ingress worker busy with CTIDH for seconds:
    // so up to three echoes, and one must come back.
    let reply: Uint8Array | null = null;
    const lost: unknown[] = [];
    for (let attempt = 0; attempt < 3 && reply === null; attempt++) {
      try {
        reply = await client.blockingSendMessage(
          enc.encode("after restart"),
          echo.destinationIdHash,
          echo.recipientQueueId,
          { signal: within(30) },
        );
      } catch (err) {
        lost.push(err);
      }
    }
    assert.ok(reply !== null, `no echo came back: ${lost.join("; ")}`);
    assert.ok(enc.encode("after restart").every((b, i) => reply[i] === b));
    assert.ok(
      !(sendResult instanceof ThinClientError) || sendResult.message.length > 0,
    );
  },
);
