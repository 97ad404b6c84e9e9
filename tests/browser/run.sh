#!/usr/bin/env bash
# Browser smoke test in headless Chromium: bundles the library for the
# browser, serves a page on 127.0.0.1 next to a fake daemon listening on
# WebSocket (tests/browser/_server.ts), opens it in headless Chromium and
# reads the page's result marker over DevTools (tests/browser/_driver.ts).
# The page connects with WebSocketDialer, completes the handshake and does one
# echo round trip. Exits 0 on "PASS geometry=… echo=ok", 1 otherwise.
# Installs Chromium with apt-get when /usr/bin/chromium is missing (as root).
# Every process it starts is stopped again; Chromium gets at most 60 s.
#
#   bash tests/browser/run.sh
#
# DENO defaults to tools/node_modules/.bin/deno; CHROMIUM to /usr/bin/chromium.
set -uo pipefail
cd "$(dirname "$0")/../.."
DENO="${DENO:-$PWD/tools/node_modules/.bin/deno}"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
OUT=".cache/browser-smoke"
SERVER_START_TIMEOUT=60 # seconds (the first run may fetch npm packages)
CHROMIUM_TIMEOUT=60     # seconds before Chromium is killed, whatever happens
DRIVER_TIMEOUT=45       # seconds the driver waits for the result marker
export NO_COLOR=1

fail() {
  echo "browser smoke: FAIL: $*" >&2
  exit 1
}

[ -x "$DENO" ] || fail "deno not found at '$DENO' (run npm ci in tools/)"

# 1. Chromium.
if [ ! -x "$CHROMIUM" ]; then
  [ "$(id -u)" -eq 0 ] || fail "'$CHROMIUM' is missing; install it (apt-get install chromium) or set CHROMIUM"
  echo "browser smoke: installing chromium with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends chromium >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1 || true
    apt-get install -y -qq --no-install-recommends chromium >/dev/null ||
      fail "cannot install chromium with apt-get"
  fi
  [ -x "$CHROMIUM" ] || fail "apt-get installed chromium but '$CHROMIUM' is missing"
fi
echo "browser smoke: $("$CHROMIUM" --version 2>/dev/null | head -n 1), $("$DENO" --version | head -n 1)"

# 2. Bundle. Code splitting keeps transport/_node.ts in a chunk of its own
# that a browser never loads (checked below from the server's request log).
rm -rf "$OUT"
mkdir -p "$OUT/bundle"
"$DENO" bundle --quiet --platform=browser --code-splitting \
  --outdir "$OUT/bundle" mod.ts transport/mod.ts || fail "deno bundle failed"

# 3. Server and fake daemon; Chromium. Both stopped on exit.
SERVER_OUT="$OUT/server.out"
SERVER_LOG="$OUT/server.log"
PROFILE=$(mktemp -d "${TMPDIR:-/tmp}/thinclient-chromium.XXXXXX")
SERVER_PID=""
CHROME_PID=""
stop_pid() { # pid [group]: TERM, wait up to 5 s, then KILL
  local target="$1"
  [ "${2:-}" = group ] && target="-$1"
  if kill -0 -- "$target" 2>/dev/null; then
    kill -TERM -- "$target" 2>/dev/null
    for _ in $(seq 1 50); do
      kill -0 -- "$target" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "$target" 2>/dev/null
  fi
  wait "$1" 2>/dev/null
}
cleanup() {
  [ -n "$CHROME_PID" ] && stop_pid "$CHROME_PID" group
  [ -n "$SERVER_PID" ] && stop_pid "$SERVER_PID"
  rm -rf "$PROFILE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$DENO" run --quiet --config deno.json --allow-net=127.0.0.1 --allow-read \
  tests/browser/_server.ts "$OUT/bundle" >"$SERVER_OUT" 2>"$SERVER_LOG" &
SERVER_PID=$!
line=""
for _ in $(seq 1 $((SERVER_START_TIMEOUT * 10))); do
  line=$(grep -m 1 '^{' "$SERVER_OUT" 2>/dev/null)
  [ -n "$line" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$line" ]; then
  cat "$SERVER_OUT" "$SERVER_LOG" >&2
  kill -0 "$SERVER_PID" 2>/dev/null || fail "server exited before it listened"
  fail "server did not start within ${SERVER_START_TIMEOUT}s"
fi
json_field() { # name
  "$DENO" eval 'console.log(JSON.parse(Deno.args[0])[Deno.args[1]])' "$line" "$1"
}
PAGE_URL=$(json_field url)
EXPECT=$(json_field expect)
echo "browser smoke: page $PAGE_URL, fake daemon $(json_field daemon)"

# `timeout` puts itself and Chromium in a process group of their own, so the
# group (Chromium's helpers included) is killed after CHROMIUM_TIMEOUT and
# again on exit.
timeout -k 5 "$CHROMIUM_TIMEOUT" "$CHROMIUM" \
  --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --no-default-browser-check --disable-background-networking \
  --disable-component-update --disable-sync --disable-extensions \
  --disable-dev-shm-usage --mute-audio \
  --user-data-dir="$PROFILE" --remote-debugging-address=127.0.0.1 \
  --remote-debugging-port=0 about:blank >"$OUT/chromium.log" 2>&1 &
CHROME_PID=$!

for _ in $(seq 1 200); do
  [ -s "$PROFILE/DevToolsActivePort" ] && break
  kill -0 "$CHROME_PID" 2>/dev/null || break
  sleep 0.1
done
if [ ! -s "$PROFILE/DevToolsActivePort" ]; then
  tail -n 30 "$OUT/chromium.log" >&2
  kill -0 "$CHROME_PID" 2>/dev/null || fail "chromium exited at start"
  fail "chromium opened no DevTools port within 20s"
fi

# 4. Drive the page and check the marker.
"$DENO" run --quiet --config deno.json --allow-net=127.0.0.1 \
  --allow-read="$PROFILE" \
  tests/browser/_driver.ts "$PROFILE" "$PAGE_URL" "$EXPECT" "$DRIVER_TIMEOUT"
status=$?

if grep -q '_node-' "$SERVER_LOG"; then
  echo "browser smoke: FAIL: the page loaded the node:net chunk:" >&2
  grep '_node-' "$SERVER_LOG" >&2
  status=1
fi
if [ $status -ne 0 ]; then
  echo "--- requests served" >&2
  cat "$SERVER_LOG" >&2
  echo "--- chromium output (last 30 lines, D-Bus noise left out)" >&2
  grep -v 'dbus' "$OUT/chromium.log" | tail -n 30 >&2
  echo "browser smoke: FAIL" >&2
else
  echo "browser smoke: PASS (handshake and echo over WebSocket in headless Chromium)"
fi
exit $status
