#!/usr/bin/env bash
# Soak test of the harness: N cycles of up -> body -> down, one line per cycle
# and a closing "N passed, M failed" line. The body is the whole integration
# suite (tests/integration/) with --suite, else echo probes and one Pigeonhole
# write/read. Suite logs, and all logs of failed cycles, are kept in
# .cache/mixnet/cycles/.
#
#   bash scripts/mixnet/cycles.sh 10            # up -> probe -> down, 10 times
#   bash scripts/mixnet/cycles.sh 10 --suite    # up -> integration suite -> down
set -uo pipefail
N="${1:-10}"
BODY="probe"
[[ "${2:-}" == "--suite" ]] && BODY="suite"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DENO="${DENO:-$ROOT/tools/node_modules/.bin/deno}"
[[ -x "$DENO" ]] || DENO=deno
M=("$DENO" run -A "$ROOT/scripts/mixnet/mixnet.ts")
OUT="$ROOT/.cache/mixnet/cycles"
rm -rf "$OUT" && mkdir -p "$OUT"
echo "CTIDH backend: $("${M[@]}" backend)"
pass=0
fail=0
strip() { sed 's/\x1b\[[0-9;]*m//g' "$@"; }
for i in $(seq 1 "$N"); do
  log="$OUT/cycle-$i.log"
  t0=$(date +%s)
  ok=1
  "${M[@]}" up --daemons unix,ws >"$log" 2>&1 || ok=0
  t1=$(date +%s)
  what=""
  if [[ $ok == 1 && $BODY == probe ]]; then
    what=$("${M[@]}" probe --count 5 --pigeonhole 2>>"$log") || ok=0
  elif [[ $ok == 1 ]]; then
    (cd "$ROOT" && "$DENO" task -q test:integration) \
      >"$OUT/suite-$i.log" 2>&1 || ok=0
    what="suite: $(strip "$OUT/suite-$i.log" | grep -E '^(ok|FAILED) \| ' | paste -sd';')"
  fi
  t2=$(date +%s)
  ready=$(grep -o 'READY: [0-9]*s after start' "$log" | grep -o '[0-9]*' || true)
  "${M[@]}" down >>"$log" 2>&1 || ok=0
  if [[ $ok == 1 ]]; then
    pass=$((pass + 1))
    echo "cycle $i ok: up ${ready:-?}s (wall $((t1 - t0))s), $BODY $((t2 - t1))s; $what"
    rm -f "$log"
  else
    fail=$((fail + 1))
    cp -r "$ROOT/.cache/mixnet/run/net/." "$OUT/$i/" 2>/dev/null || true
    echo "cycle $i FAILED after $(($(date +%s) - t0))s (see $log, $OUT/$i/ and $OUT/suite-$i.log); $what"
    tail -5 "$log" | sed 's/^/    /'
    [[ -f "$OUT/suite-$i.log" ]] && strip "$OUT/suite-$i.log" | sed -n '/^ *FAILURES *$/,$p' | head -n 30 | sed 's/^/    /'
  fi
done
echo "$pass passed, $fail failed"
[[ $fail == 0 ]]
