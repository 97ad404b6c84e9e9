// Runs every program in examples/ as a subprocess against the fake daemon
// over TCP (a temporary thinclient.toml points at it) and checks its output.
import assert from "node:assert/strict";
import { FakeDaemon } from "../testing/mod.ts";

const ROOT = new URL("..", import.meta.url).pathname;

async function runExample(
  name: string,
  args: string[] = [],
): Promise<{ code: number; stdout: string; stderr: string }> {
  await using daemon = await FakeDaemon.start({ transport: "tcp" });
  const dir = await Deno.makeTempDir({ prefix: "examples-test-" });
  try {
    const config = `${dir}/thinclient.toml`;
    await Deno.writeTextFile(
      config,
      `[Dial]\n  [Dial.Tcp]\n    Address = "${daemon.address}"\n    Network = "tcp"\n`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--config",
        `${ROOT}deno.json`,
        `${ROOT}examples/${name}`,
        config,
        ...args,
      ],
      cwd: ROOT,
      stdin: "null",
      signal: AbortSignal.timeout(120_000),
    }).output();
    return {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("examples/echo_ping.ts pings the echo service", async () => {
  const r = await runExample("echo_ping.ts", ["2"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /ping 1: ok in \d+ ms\nping 2: ok in \d+ ms\n$/);
});

Deno.test("examples/chat.ts exchanges messages over two channels", async () => {
  const r = await runExample("chat.ts", ["2"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stdout,
    [
      "alice -> bob: hello Bob (1)",
      "bob -> alice: hi Alice (1)",
      "alice -> bob: hello Bob (2)",
      "bob -> alice: hi Alice (2)",
      "chat done: 4 messages",
      "",
    ].join("\n"),
  );
});

Deno.test("examples/share_read_cap.ts lets Bob read Alice's channel from its share text", async () => {
  const r = await runExample("share_read_cap.ts");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Alice shares: kpch1/);
  assert.match(r.stdout, /Bob imported 'alice-notes' \(owned: false\)/);
  assert.match(r.stdout, /Bob read: first note\nBob read: second note\n$/);
});

Deno.test("examples/file_transfer.ts moves a file with the copy command", async () => {
  const r = await runExample("file_transfer.ts");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /sent 65536 bytes via \d+ temporary boxes/);
  assert.match(
    r.stdout,
    /received 65536 bytes in \d+ boxes\nsha256 ok [0-9a-f]{64}\n$/,
  );
});
