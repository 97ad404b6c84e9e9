// Static server of the browser smoke test (tests/browser/run.sh). Starts a
// fake daemon listening on WebSocket, then serves on 127.0.0.1:
//   /                 tests/browser/index.html with the daemon's ws:// address
//   /smoke_page.js    tests/browser/smoke_page.js
//   /lib/…            the browser bundle (the directory given as argument)
// Prints one JSON line on stdout,
// `{"url":"http://127.0.0.1:PORT/","daemon":"ws://…","expect":"PASS geometry=2000 echo=ok"}`,
// logs every request path on stderr, and serves until SIGTERM or SIGINT (or
// 5 minutes, so nothing lingers).
//
//   deno run --allow-net --allow-read tests/browser/_server.ts .cache/browser-smoke
import { FakeDaemon } from "../../testing/mod.ts";

const LIFETIME_MS = 5 * 60_000;
const HERE = new URL(".", import.meta.url);
const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".map": "application/json",
};

const bundleArg = Deno.args[0];
if (bundleArg === undefined) {
  throw new TypeError("Cannot start server: no bundle directory given");
}
const bundleDir = await Deno.realPath(bundleArg);

const daemon = await FakeDaemon.start({ transport: "ws" });
const encoder = new TextEncoder();

function log(text: string): void {
  Deno.stderr.writeSync(encoder.encode(text + "\n"));
}

function typeOf(path: string): string {
  const dot = path.lastIndexOf(".");
  return TYPES[dot < 0 ? "" : path.slice(dot)] ?? "application/octet-stream";
}

async function file(path: string | URL): Promise<Response> {
  try {
    const body = await Deno.readFile(path);
    const name = typeof path === "string" ? path : path.pathname;
    return new Response(body, {
      headers: { "content-type": typeOf(name), "cache-control": "no-store" },
    });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      return new Response("not found\n", { status: 404 });
    }
    throw err;
  }
}

async function handle(req: Request): Promise<Response> {
  const { pathname } = new URL(req.url);
  log(`${req.method} ${pathname}`);
  if (req.method !== "GET") return new Response(null, { status: 405 });
  if (pathname === "/" || pathname === "/index.html") {
    const html = (await Deno.readTextFile(new URL("index.html", HERE)))
      .replace("{{FAKE_DAEMON_WS}}", daemon.address);
    return new Response(html, {
      headers: { "content-type": TYPES[".html"]!, "cache-control": "no-store" },
    });
  }
  if (pathname === "/smoke_page.js") {
    return await file(new URL("smoke_page.js", HERE));
  }
  if (pathname.startsWith("/lib/")) {
    const rel = decodeURIComponent(pathname.slice("/lib/".length));
    if (rel.split("/").some((part) => part === ".." || part === "")) {
      return new Response("bad path\n", { status: 400 });
    }
    return await file(`${bundleDir}/${rel}`);
  }
  return new Response("not found\n", { status: 404 });
}

const lifetime = new AbortController();
const server = Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  signal: lifetime.signal,
  onListen: () => {},
}, handle);

let stopping = false;
async function stop(): Promise<never> {
  if (!stopping) {
    stopping = true;
    lifetime.abort();
    await Promise.allSettled([server.finished, daemon.close()]);
  }
  Deno.exit(0);
}
Deno.addSignalListener("SIGTERM", stop);
Deno.addSignalListener("SIGINT", stop);
setTimeout(stop, LIFETIME_MS);

const line = JSON.stringify({
  url: `http://127.0.0.1:${server.addr.port}/`,
  daemon: daemon.address,
  expect:
    `PASS geometry=${daemon.sphinxGeometry.UserForwardPayloadLength} echo=ok`,
});
await Deno.stdout.write(encoder.encode(line + "\n"));
