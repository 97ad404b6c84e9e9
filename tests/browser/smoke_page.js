// The browser smoke test's page script (served by tests/browser/_server.ts,
// driven by tests/browser/_driver.ts). Imports the browser bundle, connects
// to the fake daemon over WebSocket (the fake sends every frame as two
// messages), does one echo round trip and writes the outcome into
// <pre id="result">: `PASS geometry=2000 echo=ok` or `FAIL <reason>`.

// The bundle only exists once run.sh has built it: computed specifiers keep
// `deno check tests/` from resolving these imports.
const BUNDLE = new URL("./lib/", import.meta.url);

const TIMEOUT_MS = 20_000;

async function run(address) {
  const { ThinClient } = await import(new URL("mod.js", BUNDLE).href);
  const { WebSocketDialer } = await import(
    new URL("transport/mod.js", BUNDLE).href
  );
  const client = await ThinClient.connect(
    new WebSocketDialer({ address }),
    { reconnect: false, signal: AbortSignal.timeout(TIMEOUT_MS) },
  );
  try {
    const geometry = client.sphinxGeometry.userForwardPayloadLength;
    const echo = client.getService("echo");
    const payload = new TextEncoder().encode("hello from chromium");
    const reply = await client.blockingSendMessage(
      payload,
      echo.destinationIdHash,
      echo.recipientQueueId,
      { signal: AbortSignal.timeout(TIMEOUT_MS) },
    );
    const echoed = reply.length >= payload.length &&
      payload.every((b, i) => reply[i] === b) &&
      reply.subarray(payload.length).every((b) => b === 0);
    if (!echoed) {
      throw new Error(
        `echo reply of ${reply.length} bytes does not start with the payload`,
      );
    }
    return `PASS geometry=${geometry} echo=ok`;
  } finally {
    await client.close();
  }
}

const out = document.getElementById("result");
const address = document.querySelector('meta[name="fake-daemon"]')
  ?.getAttribute("content") ?? "";
let marker;
try {
  marker = await run(address);
} catch (err) {
  marker = `FAIL ${err?.name ?? "Error"}: ${err?.message ?? String(err)}`;
}
out.textContent = marker;
