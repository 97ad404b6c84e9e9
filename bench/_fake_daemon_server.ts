// deno-lint-ignore-file no-console
/**
 * Runs the fake daemon (testing/) on TCP in its own process, for benches that
 * measure another process against it. Prints one JSON line with the address
 * and a thinclient.toml path when listening; stops on SIGTERM or SIGINT.
 *
 *   deno run -A bench/_fake_daemon_server.ts [--port N] [--toml PATH]
 *
 * @module
 */
import { FakeDaemon } from "../testing/mod.ts";

const args = Deno.args;
const opt = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const port = Number(opt("--port") ?? 0);
const toml = opt("--toml") ??
  `${await Deno.makeTempDir({ prefix: "fake_daemon_" })}/thinclient.toml`;

const daemon = await FakeDaemon.start({ transport: "tcp", port });
await Deno.writeTextFile(
  toml,
  `[Dial]\n  [Dial.Tcp]\n    Address = "${daemon.address}"\n    Network = "tcp"\n`,
);
console.log(JSON.stringify({ address: daemon.address, thinclient: toml }));

const stop = Promise.withResolvers<void>();
Deno.addSignalListener("SIGTERM", () => stop.resolve());
Deno.addSignalListener("SIGINT", () => stop.resolve());
await stop.promise;
await daemon.close();
Deno.exit(0);
