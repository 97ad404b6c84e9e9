// DevTools driver of the browser smoke test (tests/browser/run.sh). Attaches
// to a headless Chromium started with `--remote-debugging-port=0`, opens the
// smoke page, waits until `<pre id="result">` holds a marker and compares it
// with the expected one. Prints the page's console output and uncaught
// exceptions. Exit status: 0 when the marker matches, 1 otherwise.
//
//   deno run --allow-net=127.0.0.1 --allow-read tests/browser/_driver.ts \
//     <user-data-dir> <page-url> <expected-marker> [timeout-seconds]

import { delay } from "../../lib/_async.ts";

const [userDataDir, pageUrl, expected, timeoutArg] = Deno.args;
if (
  userDataDir === undefined || pageUrl === undefined || expected === undefined
) {
  throw new TypeError(
    "Cannot drive browser: usage: _driver.ts <user-data-dir> <page-url> <expected-marker> [timeout-seconds]",
  );
}
const deadline = AbortSignal.timeout(Number(timeoutArg ?? "45") * 1000);
const encoder = new TextEncoder();

function say(text: string): void {
  Deno.stdout.writeSync(encoder.encode(`browser smoke: ${text}\n`));
}

/** The DevTools port Chromium wrote into `<user-data-dir>/DevToolsActivePort`. */
async function devToolsPort(): Promise<number> {
  const path = `${userDataDir}/DevToolsActivePort`;
  for (;;) {
    try {
      const port = Number((await Deno.readTextFile(path)).split("\n")[0]);
      if (Number.isInteger(port) && port > 0) return port;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    await delay(100, deadline);
  }
}

interface Target {
  type: string;
  webSocketDebuggerUrl?: string;
}

/** The DevTools WebSocket URL of a page target, opening one if needed. */
async function pageTarget(port: number): Promise<string> {
  const base = `http://127.0.0.1:${port}/json`;
  const targets = await (await fetch(`${base}/list`, { signal: deadline }))
    .json() as Target[];
  const page = targets.find((t) => t.type === "page");
  if (page?.webSocketDebuggerUrl !== undefined) {
    return page.webSocketDebuggerUrl;
  }
  const created = await (await fetch(`${base}/new?about:blank`, {
    method: "PUT",
    signal: deadline,
  })).json() as Target;
  if (created.webSocketDebuggerUrl === undefined) {
    throw new Error("Cannot open page: DevTools returned no WebSocket URL");
  }
  return created.webSocketDebuggerUrl;
}

type Params = Record<string, unknown>;

/** A minimal Chrome DevTools Protocol session over one WebSocket. */
class Cdp {
  readonly #ws: WebSocket;
  readonly #pending = new Map<
    number,
    { resolve: (v: Params) => void; reject: (e: Error) => void }
  >();
  #nextId = 1;

  private constructor(ws: WebSocket, onEvent: (m: string, p: Params) => void) {
    this.#ws = ws;
    ws.onmessage = (event) => {
      const msg = JSON.parse(String(event.data)) as {
        id?: number;
        method?: string;
        params?: Params;
        result?: Params;
        error?: { message: string };
      };
      if (msg.id === undefined) {
        if (msg.method !== undefined) onEvent(msg.method, msg.params ?? {});
        return;
      }
      const waiter = this.#pending.get(msg.id);
      this.#pending.delete(msg.id);
      if (msg.error !== undefined) {
        waiter?.reject(new Error(`DevTools error: ${msg.error.message}`));
      } else waiter?.resolve(msg.result ?? {});
    };
    ws.onclose = () => {
      for (const waiter of this.#pending.values()) {
        waiter.reject(new Error("DevTools connection closed"));
      }
      this.#pending.clear();
    };
  }

  static open(
    url: string,
    onEvent: (method: string, params: Params) => void,
  ): Promise<Cdp> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.onopen = () => resolve(new Cdp(ws, onEvent));
      ws.onerror = () => reject(new Error(`Cannot open DevTools at '${url}'`));
    });
  }

  /** Sends a command; rejects when the driver's deadline passes. */
  send(method: string, params: Params = {}): Promise<Params> {
    if (deadline.aborted) return Promise.reject(deadline.reason);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        this.#pending.delete(id);
        reject(deadline.reason);
      };
      deadline.addEventListener("abort", onAbort, { once: true });
      this.#pending.set(id, {
        resolve: (v) => {
          deadline.removeEventListener("abort", onAbort);
          resolve(v);
        },
        reject: (e) => {
          deadline.removeEventListener("abort", onAbort);
          reject(e);
        },
      });
      this.#ws.send(JSON.stringify({ id, method, params }));
    });
  }

  close(): Promise<void> {
    if (this.#ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    // Waits at most 2 s for the closing handshake.
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, 2000);
      this.#ws.addEventListener("close", () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
      this.#ws.close();
    });
  }
}

function onEvent(method: string, params: Params): void {
  if (method === "Runtime.consoleAPICalled") {
    const args = (params.args as { value?: unknown; description?: string }[])
      .map((a) => a.description ?? String(a.value));
    say(`page console.${params.type}: ${args.join(" ")}`);
  } else if (method === "Runtime.exceptionThrown") {
    const details = params.exceptionDetails as {
      text: string;
      exception?: { description?: string };
    };
    say(`page exception: ${details.exception?.description ?? details.text}`);
  } else if (method === "Log.entryAdded") {
    const entry = params.entry as { level: string; text: string; url?: string };
    say(
      `page log ${entry.level}: ${entry.text}${
        entry.url ? ` (${entry.url})` : ""
      }`,
    );
  }
}

async function run(): Promise<string> {
  const port = await devToolsPort();
  const cdp = await Cdp.open(await pageTarget(port), onEvent);
  try {
    await cdp.send("Runtime.enable");
    await cdp.send("Log.enable");
    await cdp.send("Page.enable");
    const nav = await cdp.send("Page.navigate", { url: pageUrl });
    if (typeof nav.errorText === "string") {
      throw new Error(`Cannot open '${pageUrl}': ${nav.errorText}`);
    }
    for (;;) {
      const { result } = await cdp.send("Runtime.evaluate", {
        expression: 'document.getElementById("result")?.textContent ?? ""',
        returnByValue: true,
      }) as { result: { value?: unknown } };
      if (typeof result.value === "string" && result.value !== "") {
        return result.value;
      }
      await delay(100, deadline);
    }
  } finally {
    await cdp.send("Browser.close").catch(() => {});
    await cdp.close();
  }
}

let marker: string;
try {
  marker = await run();
} catch (err) {
  const why = deadline.aborted
    ? "timed out waiting for the result marker"
    : err instanceof Error
    ? err.message
    : String(err);
  say(`FAIL: ${why}`);
  Deno.exit(1);
}
say(`result marker: ${marker}`);
if (marker !== expected) {
  say(`FAIL: expected marker '${expected}'`);
  Deno.exit(1);
}
say("PASS");
