#!/usr/bin/env bash
# pigeonhole-cp on the local mixnet (scripts/mixnet/): time of one Pigeonhole
# write and read (bench/pigeonhole_ops_bench.ts), then whole-file transfers of
# this package's pigeonhole-cp and the upstream Rust pigeonhole-cp (crate
# katzenpost_thin_client, feature cli) side by side, on the same mixnet,
# daemon and file, in copy mode and in stream mode (upstream: --no-copy).
#
#   bash bench/transfer_bench.sh [--sizes "100KiB 1MiB"] [--samples N] [--limit S]
#                                [--modes "copy stream"] [--tools "ours upstream"]
#                                [--timeout S] [--config thinclient.toml]
#
# --tools runs only some of the tools (a long pair can then run in two
# sittings); --timeout caps each send and each receive (default 3600 s).
#
# --samples 0 skips the single write/read timing.
#
# --config points both tools at another daemon and skips the mixnet
# readiness check (used to try the script against the fake daemon of
# bench/_fake_daemon_server.ts).
#
# Needs a ready mixnet (`deno run -A scripts/mixnet/mixnet.ts up`); it does
# not start or stop one. Each size runs, per tool and mode: genkey, send,
# receive, and a byte comparison. A size after the first runs for a tool and
# mode only if the previous size's send + receive time, scaled by the box
# count, stays within --limit seconds (default 900); otherwise the line says
# "skipped (estimate N s)".
#
# Upstream's tool is installed into .cache/bench/rs-cli (git-ignored, nice'd):
#   cargo install --root .cache/bench/rs-cli katzenpost_thin_client --version 0.0.25 --features cli
# Its config is testdata/thinclient.toml (the main kpclientd, 127.0.0.1:64331).
# Upstream's init sleeps 2 s before its first request; the "wall" column
# includes it, the "own" column is the time the tool itself prints.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DENO="${DENO:-$ROOT/tools/node_modules/.bin/deno}"
[[ -x "$DENO" ]] || DENO=deno
B="$ROOT/.cache/bench"
TOML="$ROOT/testdata/thinclient.toml"
RS_VERSION=0.0.25
SIZES="100KiB 1MiB"
SAMPLES=5
LIMIT=900
CHECK_READY=1
MODES="copy stream"
TOOLS="ours upstream"
STEP_TIMEOUT=3600
while [[ $# -gt 0 ]]; do
  case "$1" in
    --sizes) SIZES="$2"; shift 2 ;;
    --samples) SAMPLES="$2"; shift 2 ;;
    --limit) LIMIT="$2"; shift 2 ;;
    --modes) MODES="$2"; shift 2 ;;
    --tools) TOOLS="$2"; shift 2 ;;
    --timeout) STEP_TIMEOUT="$2"; shift 2 ;;
    --config) TOML="$2"; CHECK_READY=0; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

[[ $CHECK_READY == 0 ]] || "$DENO" run -A "$ROOT/scripts/mixnet/mixnet.ts" status 2>&1 | grep -q "ready after" || {
  echo "the mixnet is not ready (deno run -A scripts/mixnet/mixnet.ts up)" >&2
  exit 1
}
BACKEND=$("$DENO" run -A "$ROOT/scripts/mixnet/mixnet.ts" backend 2>/dev/null || echo unknown)
echo "CTIDH backend of the mixnet: $BACKEND" >&2
UP="$B/rs-cli/bin/pigeonhole-cp"
if [[ ! -x "$UP" ]]; then
  CARGO_TARGET_DIR="$B/rs-target" nice -n 19 cargo install --root "$B/rs-cli" \
    katzenpost_thin_client --version "$RS_VERSION" --features cli
fi
W="$B/transfer/$(date +%Y%m%dT%H%M%S)"
mkdir -p "$W"
OUT="$B/transfer-results.jsonl"
export KATZENPOST_THINCLIENT_CONFIG="$TOML"
OURS=("$DENO" run -A "$ROOT/cli/pigeonhole_cp.ts")

if ((SAMPLES > 0)); then
  echo "== single write / read (ours), $SAMPLES samples" >&2
  "$DENO" run -A "$ROOT/bench/pigeonhole_ops_bench.ts" "$TOML" "$SAMPLES" | tee -a "$OUT"
fi

bytes_of() {
  case "$1" in
    *KiB) echo $((${1%KiB} * 1024)) ;;
    *MiB) echo $((${1%MiB} * 1024 * 1024)) ;;
    *) echo "$1" ;;
  esac
}
now() { date +%s.%N; }
# The "seconds" of our CLI's --json result object for command $1 in file $2.
own_seconds() {
  python3 - "$1" "$2" <<'EOF' 2>/dev/null || echo null
import json, sys
rows = [json.loads(l) for l in open(sys.argv[2]) if l.startswith("{")]
print(round([r for r in rows if r.get("command") == sys.argv[1]][-1]["seconds"], 1))
EOF
}
# Runs "$@" with a cap of STEP_TIMEOUT seconds; sets EL (seconds) and LOG (combined output file).
run_timed() {
  LOG="$W/$1.log"
  shift
  local t0
  t0=$(now)
  if ! timeout "$STEP_TIMEOUT" "$@" >"$LOG" 2>&1; then
    EL=$(echo "$(now) - $t0" | bc)
    echo "FAILED after ${EL}s: $*" >&2
    tail -5 "$LOG" >&2
    return 1
  fi
  EL=$(echo "$(now) - $t0" | bc)
}

declare -A PREV # "<tool> <mode>" -> "<bytes> <send+receive s>"
for size in $SIZES; do
  n=$(bytes_of "$size")
  f="$W/data-$size.bin"
  head -c "$n" /dev/urandom >"$f"
  for mode in $MODES; do
    for tool in $TOOLS; do
      key="$tool $mode"
      if [[ -n "${PREV[$key]:-}" ]]; then
        read -r pb ps <<<"${PREV[$key]}"
        est=$(echo "$ps * $n / $pb" | bc)
        if ((est > LIMIT)); then
          echo "{\"event\":\"transfer\",\"tool\":\"$tool\",\"mode\":\"$mode\",\"size\":\"$size\",\"skipped\":true,\"estimate_s\":$est,\"ctidh\":\"$BACKEND\"}" | tee -a "$OUT"
          continue
        fi
      fi
      tag="$tool-$mode-$size"
      dest="$W/recv-$tag"
      mkdir -p "$dest"
      echo "== $tag" >&2
      if [[ $tool == ours ]]; then
        "${OURS[@]}" genkey --out "$W/$tag.key" --json >/dev/null
        flag=()
        [[ $mode == stream ]] && flag=(--stream)
        run_timed "$tag-send" "${OURS[@]}" send --no-state --json "${flag[@]}" \
          --write-cap "file:$W/$tag.key" "$f"
        send_el=$EL
        send_own=$(own_seconds send "$LOG")
        run_timed "$tag-receive" "${OURS[@]}" receive --no-state --json --timeout 60m \
          --read-cap "file:$W/$tag.key" "$dest"
        recv_el=$EL
        recv_own=$(own_seconds receive "$LOG")
      else
        "$UP" genkey -c "$TOML" >"$W/$tag.genkey" 2>&1
        rcap=$(awk '/^Read Capability/ {getline; print}' "$W/$tag.genkey")
        wcap=$(awk '/^Write Capability/ {getline; print}' "$W/$tag.genkey")
        idx=$(awk '/^First Index/ {getline; print}' "$W/$tag.genkey")
        flag=()
        [[ $mode == stream ]] && flag=(--no-copy)
        run_timed "$tag-send" "$UP" send -c "$TOML" -w "$wcap" -i "$idx" -f "$f" "${flag[@]}"
        send_el=$EL
        send_own=$(grep -o 'in [0-9.]*s:' "$LOG" | grep -o '[0-9.]*' | tail -1 || echo null)
        run_timed "$tag-receive" "$UP" receive -c "$TOML" -r "$rcap" -i "$idx" -d "$dest"
        recv_el=$EL
        recv_own=null
      fi
      cmp -s "$f" "$dest/$(basename "$f")" || { echo "received file differs: $tag" >&2; exit 1; }
      PREV[$key]="$n $(echo "$send_el + $recv_el" | bc)"
      printf '{"event":"transfer","ctidh":"%s","tool":"%s","mode":"%s","size":"%s","bytes":%s,"send_wall_s":%.1f,"send_own_s":%s,"receive_wall_s":%.1f,"receive_own_s":%s}\n' \
        "$BACKEND" "$tool" "$mode" "$size" "$n" "$send_el" "${send_own:-null}" "$recv_el" "${recv_own:-null}" | tee -a "$OUT"
    done
  done
done
echo "results: $OUT" >&2
