#!/usr/bin/env bash
# Peak RSS of `pigeonhole-cp send --stream` and `pigeonhole-cp receive` through
# the fake daemon (testing/) over TCP. The fake runs in its own Deno process;
# only the CLI process is measured (/usr/bin/time -v, "Maximum resident set
# size"). Each size gets its own channel (genkey), so runs do not collide.
#
#   bash bench/memory_bench.sh [SIZE_MIB...]      (default: 1 10 100)
#
# Each size is sent and received twice: with Deno's default V8 heap settings,
# and with the heap capped (--v8-flags=--max-old-space-size=16,
# --max-semi-space-size=1). If the capped run finishes at the small-file RSS,
# the growth of the default run is garbage V8 has not collected yet, not
# memory the CLI keeps. bench/_mem_probe.ts shows the heap over time.
#
# Work files go to .cache/bench/mem/ (git-ignored) and are removed at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DENO="${DENO:-$ROOT/tools/node_modules/.bin/deno}"
[[ -x "$DENO" ]] || DENO=deno
SIZES=("$@")
[[ ${#SIZES[@]} -gt 0 ]] || SIZES=(1 10 100)
W="$ROOT/.cache/bench/mem"
rm -rf "$W" && mkdir -p "$W"
CP=("$DENO" run -A "$ROOT/cli/pigeonhole_cp.ts")
CAP_FLAGS="--v8-flags=--max-old-space-size=16,--max-semi-space-size=1"

"$DENO" run -A "$ROOT/bench/_fake_daemon_server.ts" --toml "$W/thinclient.toml" \
  >"$W/fake.out" 2>"$W/fake.err" &
FAKE=$!
trap 'kill "$FAKE" 2>/dev/null || true; wait "$FAKE" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  [[ -s "$W/fake.out" ]] && break
  sleep 0.1
done
[[ -s "$W/fake.out" ]] || { echo "fake daemon did not start" >&2; cat "$W/fake.err" >&2; exit 1; }
export KATZENPOST_THINCLIENT_CONFIG="$W/thinclient.toml"

# Runs "$@" under /usr/bin/time -v; prints "<max RSS KiB> <elapsed s>".
measure() {
  local tv="$W/time.txt"
  /usr/bin/time -v -o "$tv" "$@" >"$W/cmd.out" 2>"$W/cmd.err" || {
    echo "FAILED: $*" >&2
    tail -5 "$W/cmd.err" >&2
    return 1
  }
  local rss el
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tv")
  el=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$tv")
  echo "$rss $el"
}

# Baseline: the CLI printing its help (Deno + modules loaded, no transfer).
read -r base_rss base_el < <(measure "${CP[@]}" --help)
printf '%-36s %12s %10s\n' "case" "maxRSS MiB" "wall"
printf '%-36s %12.1f %10s\n' "--help (baseline)" "$(echo "$base_rss/1024" | bc -l)" "$base_el"

for mib in "${SIZES[@]}"; do
  f="$W/file-$mib"
  head -c "$((mib * 1024 * 1024))" /dev/urandom >"$f"
  for heap in default capped; do
    if [[ $heap == capped ]]; then
      CPH=("$DENO" run -A "$CAP_FLAGS" "$ROOT/cli/pigeonhole_cp.ts")
    else
      CPH=("${CP[@]}")
    fi
    "${CP[@]}" genkey --out "$W/key-$mib-$heap" --json >/dev/null
    read -r s_rss s_el < <(measure "${CPH[@]}" send --no-state --stream \
      --write-cap "file:$W/key-$mib-$heap" "$f")
    rm -rf "$W/recv" && mkdir -p "$W/recv"
    read -r r_rss r_el < <(measure "${CPH[@]}" receive --no-state \
      --read-cap "file:$W/key-$mib-$heap" --max-size 1G "$W/recv")
    cmp -s "$f" "$W/recv/file-$mib" || { echo "received file differs ($mib MiB)" >&2; exit 1; }
    printf '%-36s %12.1f %10s\n' "send --stream ${mib} MiB ($heap heap)" "$(echo "$s_rss/1024" | bc -l)" "$s_el"
    printf '%-36s %12.1f %10s\n' "receive ${mib} MiB ($heap heap)" "$(echo "$r_rss/1024" | bc -l)" "$r_el"
  done
  rm -rf "$f" "$W/recv"
done
