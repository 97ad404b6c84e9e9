// Crash safety of persistent/: a child process (tests/_crash_child.ts) sends
// or receives 100 messages and is killed with SIGKILL at random points, then
// restarted, until it finishes. The fake daemon, and with it the box store,
// lives in this process, so it outlives every child. Afterwards every message
// must have been delivered exactly once, in order.
import assert from "node:assert/strict";
import { ThinClient } from "../lib/client.ts";
import { PigeonholeClient } from "../persistent/mod.ts";
import { FakeDaemon } from "../testing/mod.ts";

const COUNT = 100;
const SEEDS = [1, 2, 3, 4, 5];
const KILLS_PER_PHASE = 4;
const CHILD = new URL("./_crash_child.ts", import.meta.url).pathname;
const DENO = Deno.execPath();

/** mulberry32: a small seeded PRNG, so a failing seed can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface RunResult {
  /** Exited by itself with code 0. */
  finished: boolean;
  /** Progress lines seen ("sent N" / "got N"). */
  progress: number;
}

/**
 * Runs the child once. When `killAfter` is a number, SIGKILLs it once it has
 * printed that many progress lines (0 = right after "ready"), after a random
 * extra delay of up to 3 ms; if it finishes first, that is fine too.
 */
async function runChild(
  args: string[],
  killAfter: number | null,
  random: () => number,
): Promise<RunResult> {
  const child = new Deno.Command(DENO, {
    args: ["run", "-A", "--quiet", CHILD, ...args],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let progress = 0;
  let ready = false;
  let killed = false;
  const kill = () => {
    if (killed) return;
    killed = true;
    setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
    }, Math.floor(random() * 4));
  };
  const stderr = new Response(child.stderr).text();
  const decoder = new TextDecoderStream();
  let buffered = "";
  for await (const chunk of child.stdout.pipeThrough(decoder)) {
    buffered += chunk;
    const lines = buffered.split("\n");
    buffered = lines.pop()!;
    for (const line of lines) {
      if (line === "ready") ready = true;
      else if (/^(sent|got) \d+$/.test(line)) progress++;
      if (killAfter !== null && ready && progress >= killAfter) kill();
    }
  }
  const status = await child.status;
  const err = await stderr;
  if (status.success) return { finished: true, progress };
  if (killed && status.signal === "SIGKILL") {
    return { finished: false, progress };
  }
  throw new Error(
    `Child ${
      args[0]
    } failed (code ${status.code}, signal ${status.signal}):\n${err}`,
  );
}

/** Runs a phase: a few random kills, then runs to completion. */
async function phase(
  args: string[],
  random: () => number,
): Promise<{ kills: number; runs: number }> {
  let done = 0;
  let kills = 0;
  let runs = 0;
  for (let k = 0; k < KILLS_PER_PHASE; k++) {
    // Kill somewhere in the next ~40 messages (sometimes right at start-up).
    const target = random() < 0.2 ? 0 : done + 1 + Math.floor(random() * 40);
    const r = await runChild(args, target, random);
    runs++;
    done += r.progress;
    if (r.finished) return { kills, runs };
    kills++;
  }
  for (let attempt = 0; attempt < 3; attempt++) {
    runs++;
    const r = await runChild(args, null, random);
    if (r.finished) return { kills, runs };
  }
  throw new Error("Child never finished");
}

for (const seed of SEEDS) {
  Deno.test(`Persistent channel survives SIGKILL of writer and reader (seed ${seed})`, async () => {
    const random = rng(seed);
    await using daemon = await FakeDaemon.start({ transport: "tcp", seed });
    const dir = await Deno.makeTempDir({ prefix: "persistent_crash_" });
    try {
      const share = `${dir}/share.txt`;
      const writer = await phase(
        ["writer", daemon.address, `${dir}/writer.db`, share, String(COUNT)],
        random,
      );
      const reader = await phase(
        ["reader", daemon.address, `${dir}/reader.db`, share, String(COUNT)],
        random,
      );
      assert.ok(writer.kills + reader.kills > 0, "no child was killed");

      // Check with fresh handles on both stores.
      await using client = await ThinClient.connect(daemon.dialer);
      using w = await PigeonholeClient.open(client, `${dir}/writer.db`);
      using r = await PigeonholeClient.open(client, `${dir}/reader.db`);
      const out = w.getChannel("c");
      assert.deepEqual(await out.outbox(), [], "writer outbox not empty");
      assert.equal((await out.cursors()).write!.seq, COUNT);
      const inbox = r.getChannel("c");
      const got = await inbox.inbox();
      assert.deepEqual(
        got.map((m) => [m.seq, new TextDecoder().decode(m.plaintext)]),
        Array.from({ length: COUNT }, (_, i) => [i, `msg-${i}`]),
      );
      // Nothing was written past the last message (no duplicate boxes).
      assert.equal(await inbox.receive({ noRetry: true }), null);
      // An independent reader of the writer's channel sees the same.
      const again = await w.importChannel(
        "check",
        await Deno.readTextFile(share),
      );
      for (let i = 0; i < COUNT; i++) {
        const m = await again.receive({ noRetry: true });
        assert.equal(m?.type, "message", `box ${i} is not a message`);
      }
      assert.equal(await again.receive({ noRetry: true }), null);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("Two processes sending on one channel database never share a box", async () => {
  await using daemon = await FakeDaemon.start({ transport: "tcp" });
  const dir = await Deno.makeTempDir({ prefix: "persistent_burst_" });
  try {
    const db = `${dir}/writer.db`;
    await using client = await ThinClient.connect(daemon.dialer);
    using w = await PigeonholeClient.open(client, db);
    using r = await PigeonholeClient.open(client, `${dir}/reader.db`);
    const inbox = await r.importChannel(
      "c",
      await (await w.createChannel("c")).shareReadCap(),
    );
    const n = 40;
    const random = rng(7);
    const runs = await Promise.all(
      ["p", "q"].map((tag) =>
        runChild(["burst", daemon.address, db, tag, String(n)], null, random)
      ),
    );
    assert.ok(runs.every((x) => x.finished));
    const got = new Set<string>();
    for (let i = 0; i < 2 * n; i++) {
      const m = await inbox.receive({ noRetry: true });
      assert.equal(m?.type, "message", `box ${i} is not a message`);
      if (m?.type === "message") {
        got.add(new TextDecoder().decode(m.message.plaintext));
      }
    }
    assert.equal(got.size, 2 * n);
    assert.equal(await inbox.receive({ noRetry: true }), null);
    assert.deepEqual(await w.getChannel("c").outbox(), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
