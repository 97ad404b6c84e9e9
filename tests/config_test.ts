import assert from "node:assert/strict";
import {
  type DialConfig,
  parseConfig,
  parseTcpAddress,
  validateDialConfig,
} from "../lib/config.ts";
import { ConfigError } from "../lib/errors.ts";
import { TomlSyntaxError } from "../lib/toml.ts";
import {
  connect,
  dialerFromConfig,
  loadConfig,
  MAX_CONFIG_SIZE,
} from "../transport/mod.ts";

const TESTDATA = new URL("../testdata/", import.meta.url);

/** Asserts that `fn` throws a ConfigError with this message and key. */
function assertConfigError(
  fn: () => unknown,
  message: string | RegExp,
  key?: string,
): ConfigError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(
    caught instanceof ConfigError,
    `expected ConfigError, got ${caught}`,
  );
  if (typeof message === "string") assert.equal(caught.message, message);
  else assert.match(caught.message, message);
  assert.equal(caught.key, key);
  return caught;
}

// --- accepted files -------------------------------------------------------

Deno.test("parseConfig() reads testdata/thinclient.toml", async () => {
  const text = await Deno.readTextFile(new URL("thinclient.toml", TESTDATA));
  assert.deepEqual(parseConfig(text), {
    dial: { tcp: { address: "127.0.0.1:64331", network: "tcp" } },
  });
});

Deno.test("parseConfig() reads [Dial.Unix] with a path", () => {
  const config = parseConfig('[Dial.Unix]\nAddress = "/run/thin.sock"\n');
  assert.deepEqual(config, { dial: { unix: { address: "/run/thin.sock" } } });
});

Deno.test("parseConfig() reads [Dial.Unix] with an abstract name", () => {
  const config = parseConfig('[Dial.Unix]\nAddress = "@kpclientd"\n');
  assert.deepEqual(config, { dial: { unix: { address: "@kpclientd" } } });
});

Deno.test("parseConfig() reads [Dial.Ws]", () => {
  const config = parseConfig('[Dial.Ws]\nAddress = "ws://127.0.0.1:64331/"\n');
  assert.deepEqual(config, {
    dial: { ws: { address: "ws://127.0.0.1:64331/" } },
  });
});

Deno.test("parseConfig() leaves out an absent or empty Network", () => {
  for (const extra of ["", 'Network = ""\n']) {
    const config = parseConfig(
      `[Dial.Tcp]\nAddress = "localhost:64331"\n${extra}`,
    );
    assert.deepEqual(config, { dial: { tcp: { address: "localhost:64331" } } });
  }
});

Deno.test("parseConfig() accepts Network tcp4 and tcp6", () => {
  const v4 = parseConfig(
    '[Dial.Tcp]\nAddress = "127.0.0.1:1"\nNetwork = "tcp4"\n',
  );
  assert.deepEqual(v4.dial, {
    tcp: { address: "127.0.0.1:1", network: "tcp4" },
  });
  const v6 = parseConfig('[Dial.Tcp]\nAddress = "[::1]:1"\nNetwork = "tcp6"\n');
  assert.deepEqual(v6.dial, { tcp: { address: "[::1]:1", network: "tcp6" } });
});

Deno.test("parseConfig() accepts the inline-table spelling", () => {
  const config = parseConfig(
    'Dial = { Tcp = { Address = "127.0.0.1:64331" } }\n',
  );
  assert.deepEqual(config.dial, { tcp: { address: "127.0.0.1:64331" } });
});

// --- rejected files: one rule each ------------------------------------------

Deno.test("parseConfig() rejects the old flat layout", () => {
  assertConfigError(
    () => parseConfig('Network = "tcp"\nAddress = "127.0.0.1:64331"\n'),
    "Cannot load config: unknown key 'Network'",
    "Network",
  );
});

Deno.test("parseConfig() rejects an unknown top-level key", () => {
  assertConfigError(
    () =>
      parseConfig('LegacyFlag = true\n[Dial.Tcp]\nAddress = "127.0.0.1:1"\n'),
    "Cannot load config: unknown key 'LegacyFlag'",
    "LegacyFlag",
  );
});

Deno.test("parseConfig() rejects a geometry section", () => {
  assertConfigError(
    () =>
      parseConfig(
        '[Dial.Tcp]\nAddress = "127.0.0.1:1"\n[SphinxGeometry]\nPacketLength = 3082\n',
      ),
    "Cannot load config: unknown key 'SphinxGeometry'",
    "SphinxGeometry",
  );
});

Deno.test("parseConfig() rejects an unknown dial sub-table", () => {
  assertConfigError(
    () => parseConfig('[Dial.Pipe]\nAddress = "x"\n'),
    "Cannot load config: unknown key 'Dial.Pipe'",
    "Dial.Pipe",
  );
});

Deno.test("parseConfig() rejects an unknown key inside a transport table", () => {
  assertConfigError(
    () => parseConfig('[Dial.Tcp]\nAdress = "127.0.0.1:1"\n'),
    "Cannot load config: unknown key 'Dial.Tcp.Adress'",
    "Dial.Tcp.Adress",
  );
});

Deno.test("parseConfig() rejects a Network key in [Dial.Unix]", () => {
  assertConfigError(
    () => parseConfig('[Dial.Unix]\nAddress = "/x"\nNetwork = "unix"\n'),
    "Cannot load config: unknown key 'Dial.Unix.Network'",
    "Dial.Unix.Network",
  );
});

Deno.test("parseConfig() rejects a file without [Dial]", () => {
  assertConfigError(
    () => parseConfig("# nothing here\n"),
    "Cannot load config: missing table 'Dial'",
    "Dial",
  );
});

Deno.test("parseConfig() rejects [Dial] with no transport", () => {
  assertConfigError(
    () => parseConfig("[Dial]\n"),
    /^Cannot load config: no dial transport configured: add one of \[Dial\.Tcp\], \[Dial\.Unix\], \[Dial\.Ws\]$/,
    "Dial",
  );
});

Deno.test("parseConfig() rejects two transports", () => {
  assertConfigError(
    () =>
      parseConfig(
        '[Dial.Tcp]\nAddress = "127.0.0.1:1"\n[Dial.Ws]\nAddress = "ws://127.0.0.1:1/"\n',
      ),
    "Cannot load config: exactly one dial transport must be configured, found 'Dial.Tcp' and 'Dial.Ws'",
    "Dial",
  );
});

Deno.test("parseConfig() rejects a missing Address", () => {
  assertConfigError(
    () => parseConfig('[Dial.Tcp]\nNetwork = "tcp"\n'),
    "Cannot load config: missing key 'Dial.Tcp.Address'",
    "Dial.Tcp.Address",
  );
});

Deno.test("parseConfig() rejects an empty Address", () => {
  assertConfigError(
    () => parseConfig('[Dial.Unix]\nAddress = ""\n'),
    "Cannot load config: key 'Dial.Unix.Address' must not be empty",
    "Dial.Unix.Address",
  );
});

Deno.test("parseConfig() rejects an Address that is not a string", () => {
  assertConfigError(
    () => parseConfig("[Dial.Tcp]\nAddress = 64331\n"),
    "Cannot load config: key 'Dial.Tcp.Address' must be a string, got integer",
    "Dial.Tcp.Address",
  );
});

Deno.test("parseConfig() rejects a Network other than tcp, tcp4, tcp6", () => {
  assertConfigError(
    () => parseConfig('[Dial.Tcp]\nAddress = "127.0.0.1:1"\nNetwork = "udp"\n'),
    "Cannot load config: key 'Dial.Tcp.Network' must be 'tcp', 'tcp4' or 'tcp6', got 'udp'",
    "Dial.Tcp.Network",
  );
});

Deno.test("parseConfig() rejects a Network that is not a string", () => {
  assertConfigError(
    () =>
      parseConfig('[Dial.Tcp]\nAddress = "127.0.0.1:1"\nNetwork = ["tcp"]\n'),
    "Cannot load config: key 'Dial.Tcp.Network' must be a string, got array",
    "Dial.Tcp.Network",
  );
});

Deno.test("parseConfig() rejects Dial that is not a table", () => {
  assertConfigError(
    () => parseConfig('Dial = "tcp"\n'),
    "Cannot load config: key 'Dial' must be a table, got string",
    "Dial",
  );
});

Deno.test("parseConfig() rejects a transport that is not a table", () => {
  assertConfigError(
    () => parseConfig("[Dial]\nTcp = 1979-05-27\n"),
    "Cannot load config: key 'Dial.Tcp' must be a table, got datetime",
    "Dial.Tcp",
  );
});

Deno.test("parseConfig() reports bad TOML syntax with the parser's line", () => {
  const err = assertConfigError(
    () => parseConfig('[Dial.Tcp]\nAddress = "127.0.0.1:1\n'),
    /^Cannot load config: invalid TOML at line 2, column \d+: /,
  );
  assert.ok(err.cause instanceof TomlSyntaxError);
  assert.equal(err.cause.line, 2);
  assert.ok(err.cause.cause instanceof Error, "the parser's own error is kept");
});

Deno.test("parseConfig() rejects a TCP address without a port", () => {
  assertConfigError(
    () => parseConfig('[Dial.Tcp]\nAddress = "localhost"\n'),
    "Cannot load config: key 'Dial.Tcp.Address' must be 'host:port', got 'localhost': missing port in address",
    "Dial.Tcp.Address",
  );
});

Deno.test("parseConfig() rejects an IPv6 TCP address without brackets", () => {
  assertConfigError(
    () => parseConfig('[Dial.Tcp]\nAddress = "::1:64331"\n'),
    /must be 'host:port', got '::1:64331': too many colons/,
    "Dial.Tcp.Address",
  );
});

Deno.test("parseConfig() rejects a TCP port out of range", () => {
  assertConfigError(
    () => parseConfig('[Dial.Tcp]\nAddress = "127.0.0.1:65536"\n'),
    /port 65536 is out of range 1-65535$/,
    "Dial.Tcp.Address",
  );
});

Deno.test("parseConfig() rejects a WebSocket address that is not a ws URL", () => {
  assertConfigError(
    () => parseConfig('[Dial.Ws]\nAddress = "ftp://127.0.0.1/"\n'),
    "Cannot load config: key 'Dial.Ws.Address' must be a ws:// or wss:// URL, got 'ftp://127.0.0.1/'",
    "Dial.Ws.Address",
  );
  assertConfigError(
    () => parseConfig('[Dial.Ws]\nAddress = "127.0.0.1:64331"\n'),
    /must be a ws:\/\/ or wss:\/\/ URL/,
    "Dial.Ws.Address",
  );
});

Deno.test("parseConfig() rejects the AllowRemote key, which Go does not know", () => {
  assertConfigError(
    () =>
      parseConfig(
        '[Dial.Ws]\nAddress = "ws://10.0.0.1/"\nAllowRemote = true\n',
      ),
    "Cannot load config: unknown key 'Dial.Ws.AllowRemote'",
    "Dial.Ws.AllowRemote",
  );
});

Deno.test("parseConfig() names the file given in options.path", () => {
  assertConfigError(
    () => parseConfig("[Dial]\n", { path: "thin.toml" }),
    /^Cannot load config 'thin\.toml': no dial transport configured/,
    "Dial",
  );
});

// --- configs built in code ------------------------------------------------------

Deno.test("validateDialConfig() returns a normalised copy", () => {
  const input: DialConfig = { tcp: { address: "127.0.0.1:1", network: "tcp" } };
  const output = validateDialConfig(input);
  assert.deepEqual(output, input);
  assert.notEqual(output, input);
  const empty = {
    tcp: { address: "127.0.0.1:1", network: "" },
  } as unknown as DialConfig;
  assert.deepEqual(validateDialConfig(empty), {
    tcp: { address: "127.0.0.1:1" },
  });
});

Deno.test("validateDialConfig() rejects unknown keys in camelCase", () => {
  const bad = {
    tcp: { address: "127.0.0.1:1", netwrok: "tcp" },
  } as unknown as DialConfig;
  assertConfigError(
    () => validateDialConfig(bad),
    "Cannot use dial config: unknown key 'tcp.netwrok'",
    "tcp.netwrok",
  );
});

Deno.test("validateDialConfig() rejects zero and several transports", () => {
  assertConfigError(
    () => validateDialConfig({} as DialConfig),
    /^Cannot use dial config: no dial transport configured/,
  );
  const two = {
    tcp: { address: "a:1" },
    unix: { address: "/x" },
  } as unknown as DialConfig;
  assertConfigError(
    () => validateDialConfig(two),
    "Cannot use dial config: exactly one dial transport must be configured, found 'tcp' and 'unix'",
  );
  assertConfigError(
    () => validateDialConfig(null as unknown as DialConfig),
    "Cannot use dial config: dial config must be an object, got null",
  );
});

Deno.test("validateDialConfig() refuses plain ws:// to a non-loopback host", () => {
  const err = assertConfigError(
    () => validateDialConfig({ ws: { address: "ws://192.0.2.1:64331/" } }),
    /^Cannot use dial config: key 'ws\.address' names non-loopback host '192\.0\.2\.1' over plain ws:\/\/.*set 'ws\.allowRemote' to true$/,
    "ws.address",
  );
  assert.equal(err.name, "ConfigError");
});

Deno.test("validateDialConfig() accepts loopback ws://, allowRemote and wss://", () => {
  for (
    const address of [
      "ws://127.0.0.1:64331/",
      "ws://127.8.9.10/",
      "ws://[::1]:64331/",
      "ws://localhost:64331/",
      "ws://LOCALHOST/",
    ]
  ) {
    assert.deepEqual(validateDialConfig({ ws: { address } }), {
      ws: { address },
    });
  }
  const remote = { ws: { address: "ws://192.0.2.1/", allowRemote: true } };
  assert.deepEqual(validateDialConfig(remote), remote);
  const tls = { ws: { address: "wss://daemon.example/" } };
  assert.deepEqual(validateDialConfig(tls), tls);
});

Deno.test("validateDialConfig() rejects a non-boolean allowRemote", () => {
  const bad = {
    ws: { address: "ws://127.0.0.1/", allowRemote: "yes" },
  } as unknown as DialConfig;
  assertConfigError(
    () => validateDialConfig(bad),
    "Cannot use dial config: key 'ws.allowRemote' must be a boolean, got string",
    "ws.allowRemote",
  );
});

Deno.test("validateDialConfig() rejects a NUL byte in a Unix address", () => {
  assertConfigError(
    () => validateDialConfig({ unix: { address: "\0name" } }),
    /must not contain NUL bytes \(write '@name' for an abstract socket\)$/,
    "unix.address",
  );
});

Deno.test("parseTcpAddress() splits host and port like Go", () => {
  assert.deepEqual(parseTcpAddress("127.0.0.1:64331"), {
    hostname: "127.0.0.1",
    port: 64331,
  });
  assert.deepEqual(parseTcpAddress("[::1]:64331"), {
    hostname: "::1",
    port: 64331,
  });
  assert.deepEqual(parseTcpAddress("localhost:1"), {
    hostname: "localhost",
    port: 1,
  });
  assert.deepEqual(parseTcpAddress(":64331"), { hostname: "", port: 64331 });
  assert.throws(() => parseTcpAddress("[::1]64331"), TypeError);
  assert.throws(() => parseTcpAddress("host:http"), /invalid port 'http'/);
  assert.throws(() => parseTcpAddress("host:0"), /out of range/);
});

// --- files and dialers ------------------------------------------------------------

Deno.test("loadConfig() reads the good sample files", async () => {
  const expected: Record<string, DialConfig> = {
    "good_unix.toml": { unix: { address: "/run/kpclientd/thin.sock" } },
    "good_unix_abstract.toml": { unix: { address: "@kpclientd" } },
    "good_ws.toml": { ws: { address: "ws://127.0.0.1:64331/" } },
    "good_tcp6.toml": { tcp: { address: "[::1]:64331", network: "tcp6" } },
  };
  for (const [file, dial] of Object.entries(expected)) {
    const config = await loadConfig(new URL(`config/${file}`, TESTDATA));
    assert.deepEqual(config.dial, dial, file);
  }
});

Deno.test("loadConfig() rejects every bad sample file with the right key", async () => {
  const expected: Record<string, string | undefined> = {
    "bad_flat.toml": "Network",
    "bad_geometry.toml": "SphinxGeometry",
    "bad_pipe.toml": "Dial.Pipe",
    "bad_legacy_flag.toml": "LegacyFlag",
    "bad_two_transports.toml": "Dial",
    "bad_no_transport.toml": "Dial",
    "bad_missing_dial.toml": "Dial",
    "bad_network.toml": "Dial.Tcp.Network",
    "bad_misspelt_key.toml": "Dial.Tcp.Adress",
    "bad_address_type.toml": "Dial.Tcp.Address",
    "bad_syntax.toml": undefined,
  };
  const seen: string[] = [];
  for await (const entry of Deno.readDir(new URL("config/", TESTDATA))) {
    if (entry.name.startsWith("bad_")) seen.push(entry.name);
  }
  assert.deepEqual(seen.sort(), Object.keys(expected).sort());
  for (const [file, key] of Object.entries(expected)) {
    const path = new URL(`config/${file}`, TESTDATA);
    await assert.rejects(loadConfig(path), (err: unknown) => {
      assert.ok(err instanceof ConfigError, file);
      assert.equal(err.key, key, file);
      assert.ok(
        err.message.startsWith(`Cannot load config '${path.href}': `),
        err.message,
      );
      return true;
    });
  }
});

Deno.test("loadConfig() names the path of an unreadable file", async () => {
  const path = "/nonexistent/thinclient.toml";
  await assert.rejects(loadConfig(path), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(
      err.message,
      "Cannot load config '/nonexistent/thinclient.toml': No such file or directory",
    );
    assert.ok(err.cause instanceof Error);
    return true;
  });
});

Deno.test("dialerFromConfig() picks the transport and labels its address", () => {
  assert.equal(
    dialerFromConfig({ tcp: { address: "127.0.0.1:1" } }).address,
    "tcp 127.0.0.1:1",
  );
  assert.equal(
    dialerFromConfig({ tcp: { address: "[::1]:1", network: "tcp6" } }).address,
    "tcp6 [::1]:1",
  );
  assert.equal(
    dialerFromConfig({ unix: { address: "@thin" } }).address,
    "unix @thin",
  );
  assert.equal(
    dialerFromConfig({ ws: { address: "ws://127.0.0.1:1/" } }).address,
    "ws ws://127.0.0.1:1/",
  );
});

Deno.test("dialerFromConfig() refuses a parsed non-loopback ws:// address", () => {
  const config = parseConfig('[Dial.Ws]\nAddress = "ws://192.0.2.1:64331/"\n');
  assert.throws(() => dialerFromConfig(config.dial), ConfigError);
  const dial = config.dial as {
    ws: { address: string; allowRemote?: boolean };
  };
  dial.ws.allowRemote = true;
  assert.equal(dialerFromConfig(dial).address, "ws ws://192.0.2.1:64331/");
});

Deno.test("parseConfig() refuses text over 64 KiB before parsing it", () => {
  assert.equal(MAX_CONFIG_SIZE, 65_536);
  const dial = '[Dial.Tcp]\nAddress = "127.0.0.1:1"\n';
  // Exactly the limit, padded with a comment: parsed.
  const fits = dial + "#" + "x".repeat(MAX_CONFIG_SIZE - dial.length - 2) +
    "\n";
  assert.equal(new TextEncoder().encode(fits).length, MAX_CONFIG_SIZE);
  assert.deepEqual(parseConfig(fits).dial, { tcp: { address: "127.0.0.1:1" } });
  // One byte more (here a 2-byte character in the comment): refused.
  const over = fits.replace("#x", "#é");
  assertConfigError(
    () => parseConfig(over, { path: "big.toml" }),
    /^Cannot load config 'big.toml': it is larger than 65536 bytes; .*is this the right file\?\)$/,
  );
  // Megabytes of unknown keys cost nothing: the parser never sees them.
  const lines = "k = 1\n".repeat(2_000_000);
  const t0 = performance.now();
  assertConfigError(() => parseConfig(lines), /larger than 65536 bytes/);
  assert.ok(performance.now() - t0 < 1000);
});

Deno.test("loadConfig() reads at most 64 KiB + 1 of a file", async () => {
  // An endless file: reading it whole would never finish.
  await assert.rejects(loadConfig("/dev/zero"), (err: unknown) => {
    assert.ok(err instanceof ConfigError, String(err));
    assert.match(
      err.message,
      /^Cannot load config '\/dev\/zero': it is larger than 65536 bytes/,
    );
    return true;
  });
  const dir = await Deno.makeTempDir();
  try {
    const big = `${dir}/thinclient.toml`;
    const file = await Deno.open(big, { write: true, create: true });
    const chunk = new TextEncoder().encode("unknown_key = 1\n".repeat(65536));
    for (let i = 0; i < 50; i++) await file.write(chunk); // 50 MiB
    file.close();
    const t0 = performance.now();
    await assert.rejects(loadConfig(big), /larger than 65536 bytes/);
    assert.ok(performance.now() - t0 < 2000);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("connect() names a remote plain ws:// address as the file spells it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/thinclient.toml`;
    await Deno.writeTextFile(
      path,
      '[Dial]\n  [Dial.Ws]\n    Address = "ws://192.0.2.1:64331/"\n',
    );
    await assert.rejects(connect(path), (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.equal(err.key, "Dial.Ws.Address");
      assert.match(
        err.message,
        new RegExp(
          `^Cannot load config '${path}': key 'Dial.Ws.Address' names non-loopback host '192.0.2.1' over plain ws://.*use wss:// or pass a config object with 'ws.allowRemote' set to true`,
        ),
      );
      return true;
    });
    // From a URL too, and a loopback address passes the check (then fails to dial).
    await assert.rejects(connect(new URL(`file://${path}`)), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.key, "Dial.Ws.Address");
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
