// The command line of pigeonhole-cp parsed into typed options.
import assert from "node:assert/strict";
import { CliError, ExitCode } from "../cli/_errors.ts";
import {
  commandOptions,
  type Invocation,
  parseCommandLine,
} from "../cli/_options.ts";

function run(args: string[]): Extract<Invocation, { kind: "run" }> {
  const inv = parseCommandLine(args);
  assert.equal(inv.kind, "run");
  return inv as Extract<Invocation, { kind: "run" }>;
}

Deno.test("parseCommandLine() tells help, version and a missing command apart", () => {
  assert.deepEqual(parseCommandLine([]), { kind: "usage" });
  for (const a of [["help"], ["-h"], ["--help"], ["send", "-h"]]) {
    assert.deepEqual(parseCommandLine(a), { kind: "help" });
  }
  assert.deepEqual(parseCommandLine(["--version"]), { kind: "version" });
  assert.throws(() => parseCommandLine(["bogus"]), (err: unknown) => {
    assert.ok(err instanceof CliError);
    assert.equal(err.exitCode, ExitCode.Usage);
    assert.equal(
      err.message,
      "Unknown command 'bogus' (see 'pigeonhole-cp --help')",
    );
    return true;
  });
});

Deno.test("commandOptions() gives typed send and receive options with defaults", () => {
  assert.deepEqual(
    commandOptions(run(["send", "--no-copy", "-w", "env:W", "a.pdf"])),
    {
      command: "send",
      config: undefined,
      json: false,
      quiet: false,
      timings: false,
      timeoutMs: null,
      index: undefined,
      window: 8,
      state: undefined,
      noState: false,
      fresh: false,
      input: "a.pdf",
      writeCap: "env:W",
      name: undefined,
      stream: true,
      confirmAll: false,
    },
  );
  const r = commandOptions(run([
    "receive",
    "--timeout",
    "1.5m",
    "--idle-timeout",
    "0",
    "--max-size",
    "100MiB",
    "--window",
    "64",
    "-d",
    "out",
  ]));
  assert.equal(r.command, "receive");
  assert.equal(r.timeoutMs, 90_000);
  if (r.command !== "receive") return;
  assert.equal(r.dest, "out");
  assert.equal(r.idleMs, 0);
  assert.equal(r.maxSize, 100 * 1024 * 1024);
  assert.equal(r.window, 64);
});

Deno.test("commandOptions() refuses genkey without a place for the write capability", () => {
  assert.throws(
    () => commandOptions(run(["genkey"])),
    /^CliError: genkey needs --out FILE/,
  );
  assert.deepEqual(commandOptions(run(["genkey", "--print-write-cap"])), {
    command: "genkey",
    config: undefined,
    json: false,
    quiet: false,
    timings: false,
    timeoutMs: null,
    out: undefined,
    printWriteCap: true,
  });
});
