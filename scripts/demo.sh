#!/usr/bin/env bash
# The main job, from a fresh checkout: install the pinned tools, start the
# local Katzenpost test mixnet, move a random 16 KiB file through it with
# pigeonhole-cp (copy mode), compare the bytes, print the timings, and always
# take the mixnet down again.
#
#   bash scripts/demo.sh
#
# Environment:
#   DEMO_SIZE       bytes of the random file (default 16384; every box costs CTIDH CPU in the
#                   daemon, courier and replicas on this 2-core test net, see BENCHMARKS.md)
#   DEMO_SEND_ARGS  extra send options, e.g. "--stream"
#   DEMO_KEEP_UP=1  leave the mixnet running at the end
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SIZE=${DEMO_SIZE:-16384}
SEND_ARGS=${DEMO_SEND_ARGS:-}
DENO="$ROOT/tools/node_modules/.bin/deno"
CONFIG="$ROOT/testdata/thinclient.toml"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pigeonhole-cp-demo.XXXXXX")
MIXNET_STARTED=0

step() { printf '\n==> %s\n' "$*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# deno task NAME when deno.json defines it, else the mixnet script itself.
mixnet() {
  if grep -q "\"mixnet:$1\"" deno.json; then
    "$DENO" task "mixnet:$1"
  else
    "$DENO" run -A scripts/mixnet/mixnet.ts "$1"
  fi
}

cleanup() {
  local code=$?
  trap - EXIT INT TERM
  if [[ $MIXNET_STARTED == 1 && ${DEMO_KEEP_UP:-0} != 1 ]]; then
    step "taking the mixnet down"
    mixnet down || echo "demo: mixnet down failed" >&2
  fi
  rm -rf "$WORK"
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cp_() { "$DENO" run -A "$ROOT/cli/pigeonhole_cp.ts" "$@"; }

T0=$(now)
step "installing the pinned tools (tools/: npm ci)"
if [[ -f scripts/install_tools.sh ]]; then
  bash scripts/install_tools.sh
else
  (cd tools && npm ci --no-audit --no-fund)
fi
export PATH="$ROOT/tools/node_modules/.bin:$PATH"
T_TOOLS=$(now)

step "building the Katzenpost daemons (cached after the first run)"
bash scripts/mixnet/install.sh
T_BUILD=$(now)

step "starting the local mixnet (ready at an epoch boundary: 1-2 minutes)"
MIXNET_STARTED=1
mixnet up
T_UP=$(now)

step "making a random file of $SIZE bytes"
head -c "$SIZE" /dev/urandom >"$WORK/demo.bin"
mkdir "$WORK/received"

step "genkey"
cp_ genkey --config "$CONFIG" --out "$WORK/demo.key" --json
T_KEY=$(now)

step "send (${SEND_ARGS:-copy mode})"
# shellcheck disable=SC2086 # SEND_ARGS holds options
cp_ send --config "$CONFIG" --state "$WORK/state.db" --timeout 30m \
  --write-cap "file:$WORK/demo.key" $SEND_ARGS "$WORK/demo.bin"
T_SENT=$(now)

step "receive"
cp_ receive --config "$CONFIG" --state "$WORK/state.db" --timeout 30m \
  --read-cap "file:$WORK/demo.key" "$WORK/received"
T_RECV=$(now)

step "comparing"
cmp "$WORK/demo.bin" "$WORK/received/demo.bin"
sha256sum "$WORK/demo.bin" "$WORK/received/demo.bin" >&2

cat >&2 <<EOF

demo: OK, $SIZE bytes went through the mixnet and came back identical
  tools install   $(elapsed "$T0" "$T_TOOLS") s
  build           $(elapsed "$T_TOOLS" "$T_BUILD") s (CTIDH backend: $("$DENO" run -A scripts/mixnet/mixnet.ts backend))
  mixnet up       $(elapsed "$T_BUILD" "$T_UP") s
  genkey          $(elapsed "$T_UP" "$T_KEY") s
  send            $(elapsed "$T_KEY" "$T_SENT") s
  receive         $(elapsed "$T_SENT" "$T_RECV") s
  total           $(elapsed "$T0" "$T_RECV") s
EOF
