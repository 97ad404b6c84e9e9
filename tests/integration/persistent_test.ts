/**
 * Persistent channels against the real mixnet: the shared scenarios that
 * matter most, and one crash run (writer and reader SIGKILLed mid-way).
 */
import assert from "node:assert/strict";
import { PigeonholeClient } from "../../persistent/mod.ts";
import { persistentScenarios } from "../_suites/persistent_suite.ts";
import { connectReal, daemonDial, itest } from "./_mixnet.ts";

const ON_MIXNET = new Set([
  "messages arrive in order and fill the inbox",
  "sendLarge delivers a multi-box message as one",
  "a reader passes a tombstoned box",
]);

for (const s of persistentScenarios.filter((s) => ON_MIXNET.has(s.name))) {
  itest(`persistent channels on the real mixnet: ${s.name}`, async () => {
    await using writer = await connectReal();
    await using reader = await connectReal();
    const dir = await Deno.makeTempDir({ prefix: "persistent_mixnet_" });
    try {
      await s.run({ writer, reader, dir, timeoutMs: 600_000 });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

const CHILD = new URL("../_crash_child.ts", import.meta.url).pathname;
const COUNT = 4;

/** Runs the crash child; SIGKILLs it after `killAfter` progress lines (or never). */
async function runChild(
  args: string[],
  killAfter: number | null,
): Promise<boolean> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", CHILD, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { CRASH_CHILD_TIMEOUT_MS: "600000" },
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 900_000);
  let progress = 0;
  let killed = false;
  const stderr = new Response(child.stderr).text();
  let buffered = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    const lines = buffered.split("\n");
    buffered = lines.pop()!;
    for (const line of lines) {
      if (/^(sent|got) \d+$/.test(line)) progress++;
      if (killAfter !== null && !killed && progress >= killAfter) {
        killed = true;
        child.kill("SIGKILL");
      }
    }
  }
  const status = await child.status;
  clearTimeout(timer);
  const err = await stderr;
  if (status.success) return true;
  if (killed) return false;
  throw new Error(
    `Crash child ${args[0]} failed (code ${status.code}):\n${err}`,
  );
}

itest(
  "persistent channels on the real mixnet: writer and reader killed mid-way lose and duplicate nothing",
  async () => {
    const dial = daemonDial("tcp");
    const address = "tcp" in dial ? dial.tcp.address : "";
    const dir = await Deno.makeTempDir({ prefix: "persistent_mixnet_crash_" });
    try {
      const share = `${dir}/share.txt`;
      const w = ["writer", address, `${dir}/writer.db`, share, String(COUNT)];
      const r = ["reader", address, `${dir}/reader.db`, share, String(COUNT)];
      assert.equal(
        await runChild(w, 2),
        false,
        "writer was killed after its second send",
      );
      assert.equal(await runChild(w, null), true);
      assert.equal(
        await runChild(r, 2),
        false,
        "reader was killed after its second message",
      );
      assert.equal(await runChild(r, null), true);

      await using client = await connectReal();
      using writer = await PigeonholeClient.open(client, `${dir}/writer.db`);
      using reader = await PigeonholeClient.open(client, `${dir}/reader.db`);
      assert.deepEqual(await writer.getChannel("c").outbox(), []);
      const inbox = await reader.getChannel("c").inbox();
      assert.deepEqual(
        inbox.map((m) => new TextDecoder().decode(m.plaintext)),
        Array.from({ length: COUNT }, (_, i) => `msg-${i}`),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
