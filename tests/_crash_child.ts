// Child process of tests/persistent_crash_test.ts, killed with SIGKILL at
// random points. It talks to the fake daemon that runs in the test process.
//
//   deno run -A tests/_crash_child.ts writer <host:port> <db> <share file> <count>
//     Creates (or reopens) channel "c", writes its share text to <share file>,
//     and sends "msg-<i>" for every i from the channel's write position up
//     to <count>, printing "sent <i>" after each.
//   deno run -A tests/_crash_child.ts reader <host:port> <db> <share file> <count>
//     Imports (or reopens) channel "c" and receives until <count> boxes are
//     consumed, printing "got <seq>" after each.
//   deno run -A tests/_crash_child.ts burst <host:port> <db> <tag> <count>
//     Sends "<tag>-<i>" for i in 0..<count> on the existing channel "c", as
//     fast as it can (to race another process on the same database).
//
// All print "ready" once the store is open and exit 0 when done.
import { ThinClient } from "../lib/client.ts";
import { ChannelNotFoundError, PigeonholeClient } from "../persistent/mod.ts";
import type { Channel } from "../persistent/mod.ts";
import { TcpDialer } from "../transport/mod.ts";

const [mode, address, dbPath, sharePath, countText] = Deno.args;
if (
  (mode !== "writer" && mode !== "reader" && mode !== "burst") ||
  address === undefined ||
  dbPath === undefined || sharePath === undefined || countText === undefined
) {
  throw new TypeError(
    "usage: _crash_child.ts writer|reader|burst <host:port> <db> <share file or tag> <count>",
  );
}
const count = Number(countText);
const out = Deno.stdout.writable.getWriter();
const enc = new TextEncoder();
const say = (line: string) => out.write(enc.encode(line + "\n"));

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

const signal = AbortSignal.timeout(
  Number(Deno.env.get("CRASH_CHILD_TIMEOUT_MS") ?? 20_000),
);
await using client = await ThinClient.connect(new TcpDialer({ address }), {
  signal,
});
using ph = await PigeonholeClient.open(client, dbPath);

if (mode === "writer") {
  let ch: Channel;
  try {
    ch = ph.getChannel("c");
  } catch (err) {
    if (!(err instanceof ChannelNotFoundError)) throw err;
    ch = await ph.createChannel("c", { signal });
  }
  if (!await exists(sharePath)) {
    await Deno.writeTextFile(`${sharePath}.tmp`, await ch.shareReadCap());
    await Deno.rename(`${sharePath}.tmp`, sharePath);
  }
  await say("ready");
  await ch.resumePending({ signal });
  const start = (await ch.cursors()).write!.seq;
  for (let i = start; i < count; i++) {
    await ch.send(enc.encode(`msg-${i}`), { signal });
    await say(`sent ${i}`);
  }
} else if (mode === "burst") {
  const ch = ph.getChannel("c");
  await say("ready");
  await Promise.all(
    Array.from(
      { length: count },
      (_, i) => ch.send(enc.encode(`${sharePath}-${i}`), { signal }),
    ),
  );
} else {
  let ch: Channel;
  try {
    ch = ph.getChannel("c");
  } catch (err) {
    if (!(err instanceof ChannelNotFoundError)) throw err;
    ch = await ph.importChannel("c", await Deno.readTextFile(sharePath));
  }
  await say("ready");
  while ((await ch.cursors()).read.seq < count) {
    const r = await ch.receive({ signal });
    if (r === null) throw new Error("receive returned null without noRetry");
    await say(`got ${r.type === "message" ? r.message.seq : r.seq}`);
  }
}
await out.close();
