// Fake daemons for the Node smoke test (tests/node/run.sh): one listening on
// TCP, one on a Unix socket. Prints one JSON line on stdout,
// `{"tcp":"127.0.0.1:PORT","unix":"/tmp/…/sock","userForwardPayloadLength":2000}`,
// then serves until SIGTERM or SIGINT (or 5 minutes, so nothing lingers).
import { FakeDaemon } from "../../testing/mod.ts";

const LIFETIME_MS = 5 * 60_000;

const tcp = await FakeDaemon.start({ transport: "tcp" });
const unix = await FakeDaemon.start({ transport: "unix" });

let stopping = false;
async function stop(): Promise<never> {
  if (!stopping) {
    stopping = true;
    await Promise.allSettled([tcp.close(), unix.close()]);
  }
  Deno.exit(0);
}
Deno.addSignalListener("SIGTERM", stop);
Deno.addSignalListener("SIGINT", stop);
setTimeout(stop, LIFETIME_MS);

const line = JSON.stringify({
  tcp: tcp.address,
  unix: unix.address,
  userForwardPayloadLength: tcp.sphinxGeometry.UserForwardPayloadLength,
});
await Deno.stdout.write(new TextEncoder().encode(line + "\n"));
