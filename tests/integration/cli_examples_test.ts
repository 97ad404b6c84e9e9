/**
 * pigeonhole-cp (copy and streaming modes) and every program in examples/,
 * run as subprocesses against the real kpclientd of the local mixnet.
 */
import assert from "node:assert/strict";
import { itest, thinConfigPath } from "./_mixnet.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

async function withConfig<T>(
  fn: (config: string, dir: string) => Promise<T>,
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "mixnet-cli-" });
  try {
    // This file's daemon (the parallel files use one daemon each).
    const config = thinConfigPath("unix");
    return await fn(config, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function run(
  script: string,
  args: string[],
  timeoutS = 900,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      "--config",
      `${ROOT}deno.json`,
      `${ROOT}${script}`,
      ...args,
    ],
    cwd: ROOT,
    stdin: "null",
    signal: AbortSignal.timeout(timeoutS * 1000),
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

for (const mode of ["copy", "stream"] as const) {
  itest(
    `pigeonhole-cp on the real mixnet: send and receive a file (${mode} mode)`,
    async () => {
      await withConfig(async (config, dir) => {
        const file = `${dir}/payload.bin`;
        // Each box costs seconds of CTIDH: copy mode gets one destination
        // box, stream mode two (multi-box copies are proven elsewhere).
        const size = mode === "copy" ? 1000 : 2500;
        const data = crypto.getRandomValues(new Uint8Array(size));
        await Deno.writeFile(file, data);
        const cp = ([command, ...rest]: string[]) =>
          run("cli/pigeonhole_cp.ts", [command!, "--config", config, ...rest]);
        const key = `${dir}/key.json`;
        const gen = await cp(["genkey", "--out", key, "--json"]);
        assert.equal(gen.code, 0, gen.stderr);
        const sendArgs = ["send", "-w", `file:${key}`, "--no-state", "-q"];
        if (mode === "stream") sendArgs.push("--stream");
        const sent = await cp([...sendArgs, "--timings", file]);
        assert.equal(sent.code, 0, sent.stderr);
        // --timings: the real daemon's writes, each counted and timed.
        assert.match(sent.stderr, /^pigeonhole-cp: time per daemon call\n/);
        assert.match(
          sent.stderr,
          /\n {2}start_resending_encrypted_message +\d+ +0 +[\d.]+ m?s +[\d.]+ m?s +\d+\n/,
        );
        const outDir = `${dir}/out`;
        await Deno.mkdir(outDir);
        const got = await cp([
          "receive",
          "-r",
          `file:${key}`,
          "--no-state",
          "-q",
          "--timeout",
          "600s",
          outDir,
        ]);
        assert.equal(got.code, 0, got.stderr);
        assert.deepEqual(await Deno.readFile(`${outDir}/payload.bin`), data);
      });
    },
  );
}

itest(
  "examples on the real mixnet: echo_ping, share_read_cap, chat, file_transfer",
  async () => {
    await withConfig(async (config, dir) => {
      const ping = await run("examples/echo_ping.ts", [config, "2"]);
      assert.equal(ping.code, 0, ping.stderr);
      assert.match(ping.stdout, /ping 2: ok in \d+ ms/);

      const share = await run("examples/share_read_cap.ts", [config]);
      assert.equal(share.code, 0, share.stderr);
      assert.match(share.stdout, /Bob read: second note\n$/);

      const chat = await run("examples/chat.ts", [config, "1"]);
      assert.equal(chat.code, 0, chat.stderr);
      assert.match(chat.stdout, /chat done: 2 messages/);

      const file = `${dir}/small.bin`;
      await Deno.writeFile(file, crypto.getRandomValues(new Uint8Array(1000)));
      const transfer = await run("examples/file_transfer.ts", [config, file]);
      assert.equal(transfer.code, 0, transfer.stderr);
      assert.match(transfer.stdout, /sha256 ok [0-9a-f]{64}\n$/);
    });
  },
);
