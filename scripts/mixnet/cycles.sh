#!/usr/bin/env bash
# Soak test of the harness itself: N x (up -> echo probes + one Pigeonhole write/read
# -> down). Prints one line per cycle and a closing "N passed, N failed" line.
# Logs of failed cycles are kept in .cache/mixnet/cycles/<n>/.
set -uo pipefail
N="${1:-10}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DENO="${DENO:-$ROOT/tools/node_modules/.bin/deno}"
[[ -x "$DENO" ]] || DENO=deno
M=("$DENO" run -A "$ROOT/scripts/mixnet/mixnet.ts")
OUT="$ROOT/.cache/mixnet/cycles"
rm -rf "$OUT" && mkdir -p "$OUT"
pass=0
fail=0
for i in $(seq 1 "$N"); do
  log="$OUT/cycle-$i.log"
  t0=$(date +%s)
  ok=1
  "${M[@]}" up >"$log" 2>&1 || ok=0
  t1=$(date +%s)
  probe=""
  if [[ $ok == 1 ]]; then
    probe=$("${M[@]}" probe --count 5 --pigeonhole 2>>"$log") || ok=0
  fi
  ready=$(grep -o 'READY: [0-9]*s after start' "$log" | grep -o '[0-9]*' || true)
  "${M[@]}" down >>"$log" 2>&1 || ok=0
  if [[ $ok == 1 ]]; then
    pass=$((pass + 1))
    echo "cycle $i ok: up ${ready:-?}s (wall $((t1 - t0))s) probe $probe"
    rm -f "$log"
  else
    fail=$((fail + 1))
    cp -r "$ROOT/.cache/mixnet/run/net/." "$OUT/$i/" 2>/dev/null || true
    echo "cycle $i FAILED (see $log and $OUT/$i/)"
    tail -5 "$log" | sed 's/^/    /'
  fi
done
echo "$pass passed, $fail failed"
[[ $fail == 0 ]]
