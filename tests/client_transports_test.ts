// The shared client suite over every transport of transport/, each against
// the fake daemon listening on the matching socket, plus connect() from a
// config object and from a thinclient.toml file.
import assert from "node:assert/strict";
import {
  connect,
  TcpDialer,
  UnixDialer,
  WebSocketDialer,
} from "../transport/mod.ts";
import type { DialConfig } from "../transport/mod.ts";
import { FakeDaemon, type FakeTransport } from "../testing/mod.ts";
import { clientSuite } from "./_suites/client_suite.ts";
import { filled } from "./_helpers.ts";

const isLinux = Deno.build.os === "linux";
let abstractCounter = 0;

clientSuite("tcp", async (options) => {
  const fake = await FakeDaemon.start({ ...options, transport: "tcp" });
  return { fake, dialer: new TcpDialer({ address: fake.address }) };
});

clientSuite("unix", async (options) => {
  const fake = await FakeDaemon.start({ ...options, transport: "unix" });
  assert.ok(fake.address.startsWith("/"));
  return { fake, dialer: new UnixDialer({ address: fake.address }) };
}, { ignore: Deno.build.os === "windows" });

clientSuite("abstract unix", async (options) => {
  const name = `@kp-thin-test-${Deno.pid}-${++abstractCounter}`;
  const fake = await FakeDaemon.start({
    ...options,
    transport: "unix",
    path: name,
  });
  assert.equal(fake.address, name);
  return { fake, dialer: new UnixDialer({ address: name }) };
}, { ignore: !isLinux });

clientSuite("ws", async (options) => {
  const fake = await FakeDaemon.start({ ...options, transport: "ws" });
  return { fake, dialer: new WebSocketDialer({ address: fake.address }) };
});

Deno.test("connect() dials each transport from a config object", async () => {
  const name = `@kp-thin-test-${Deno.pid}-connect`;
  const cases: [FakeTransport | "abstract", (a: string) => DialConfig][] = [
    ["tcp", (a) => ({ tcp: { address: a } })],
    ["unix", (a) => ({ unix: { address: a } })],
    ["ws", (a) => ({ ws: { address: a } })],
  ];
  if (isLinux) cases.push(["abstract", (a) => ({ unix: { address: a } })]);
  for (const [transport, config] of cases) {
    await using fake = await FakeDaemon.start(
      transport === "abstract"
        ? { transport: "unix", path: name }
        : { transport },
    );
    await using client = await connect({ dial: config(fake.address) }, {
      reconnect: false,
    });
    assert.equal(client.isDaemonReachable, true, transport);
    assert.equal(
      (await client.newKeypair(filled(32, 1))).readCap.bytes.length,
      136,
    );
    const bare = await connect(config(fake.address), { reconnect: false });
    assert.deepEqual(bare.daemonInstanceToken, fake.instanceToken);
    await bare.close();
  }
});

Deno.test("connect() reads thinclient.toml and refuses a bad file", async () => {
  await using fake = await FakeDaemon.start({ transport: "tcp" });
  const dir = await Deno.makeTempDir({ prefix: "thinclient_test_" });
  try {
    const path = `${dir}/thinclient.toml`;
    await Deno.writeTextFile(
      path,
      `[Dial]\n  [Dial.Tcp]\n    Address = "${fake.address}"\n    Network = "tcp"\n`,
    );
    await using client = await connect(path, { reconnect: false });
    assert.equal(client.isDaemonReachable, true);
    await using viaUrl = await connect(new URL(`file://${path}`), {
      reconnect: false,
    });
    assert.equal(viaUrl.isDaemonReachable, true);
    await Deno.writeTextFile(path, `Network = "tcp"\nAddress = "x"\n`);
    await assert.rejects(connect(path), (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.equal(err.name, "ConfigError");
      return true;
    });
    await assert.rejects(connect(`${dir}/missing.toml`), (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.equal(err.name, "ConfigError");
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
