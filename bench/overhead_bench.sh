#!/usr/bin/env bash
# Client overhead: requests/s of local daemon operations (new_keypair,
# next_message_box_index; encrypt_write too when the daemon is online) through
# this package's ThinClient, the upstream Python client (PyPI
# katzenpost_thinclient) and the upstream Rust crate (katzenpost_thin_client),
# one after the other against the SAME kpclientd, in one run.
#
#   bash bench/overhead_bench.sh [--seconds S] [--conc "1 16"] [--rounds N] [--address HOST:PORT]
#                                [--clients "ts py rs rs-nodelay"]
#
# With --rounds N the clients run N times, the order rotated each round
# (ts py rs rs+nodelay, then py rs rs+nodelay ts, ...), and the table shows
# the median requests/s with the min-max in brackets. --clients runs only
# some of them (e.g. "ts rs-nodelay": more rounds in the same time, each
# pair close together on a busy machine).
#
# Without --address it starts its own OFFLINE kpclientd (no mixnet behind it)
# on 127.0.0.1:64340: the binary built by scripts/mixnet/install.sh, with a
# config from upstream's genconfig written to .cache/bench/offline/ whose
# gateway and dirauth ports (base 20000) have nothing listening. It does not
# use `mixnet.ts offline`, which would stop a running mixnet first. The
# offline daemon makes every new connection wait ~30 s before its first
# frame, and serves connections one after the other, so each client costs
# about 30 s of connecting before it measures anything.
#
# With --address it uses a running kpclientd instead (e.g. 127.0.0.1:64331 of
# the local mixnet: then encrypt_write is measured too).
#
# Upstream code is built beside ours, never committed:
#   .cache/bench/py/   venv with katzenpost_thinclient==$PY_VERSION
#   .cache/bench/rs/   tiny crate (src/main.rs = bench/overhead_rs.rs), built nice'd
#   .cache/bench/rs-nodelay/  the same bench against a local copy of the crate
#       whose TCP dialer also calls set_nodelay(true) (one added line), to show
#       what its sequential latency is without Nagle's algorithm ("rust+nodelay")
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DENO="${DENO:-$ROOT/tools/node_modules/.bin/deno}"
[[ -x "$DENO" ]] || DENO=deno
B="$ROOT/.cache/bench"
PY_VERSION=0.0.25
RS_VERSION=0.0.25
SECONDS_PER_CASE=5
CONC="1 16"
ADDRESS=""
ROUNDS=1
CLIENTS="ts py rs rs-nodelay"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --clients) CLIENTS="$2"; shift 2 ;;
    --seconds) SECONDS_PER_CASE="$2"; shift 2 ;;
    --conc) CONC="$2"; shift 2 ;;
    --address) ADDRESS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$B"

# ---- upstream clients -------------------------------------------------------
if [[ ! -x "$B/py/bin/python" ]] || ! "$B/py/bin/pip" show katzenpost_thinclient 2>/dev/null | grep -q "^Version: $PY_VERSION$"; then
  python3 -m venv "$B/py"
  "$B/py/bin/pip" install -q "katzenpost_thinclient==$PY_VERSION"
fi
mkdir -p "$B/rs/src"
cat >"$B/rs/Cargo.toml" <<EOF
[package]
name = "overhead_rs"
version = "0.1.0"
edition = "2021"

[dependencies]
katzenpost_thin_client = "=$RS_VERSION"
tokio = { version = "1", features = ["full"] }
EOF
cmp -s "$ROOT/bench/overhead_rs.rs" "$B/rs/src/main.rs" || cp "$ROOT/bench/overhead_rs.rs" "$B/rs/src/main.rs"
echo "building the Rust bench (nice 19; first build takes minutes)" >&2
(cd "$B/rs" && CARGO_TARGET_DIR="$B/rs-target" nice -n 19 cargo build --release -q)
RS_BIN="$B/rs-target/release/overhead_rs"
# The nodelay variant: the registry's source of the same version, one line added.
SRC=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/katzenpost_thin_client-$RS_VERSION | head -1)
ND="$B/rs-nodelay"
if [[ ! -f "$ND/crate/.patched" ]]; then
  rm -rf "$ND" && mkdir -p "$ND/src" && cp -r "$SRC" "$ND/crate"
  sed -i 's/^\(\s*\)let socket = TcpStream::connect(&self.address).await?;/&\n\1socket.set_nodelay(true)?;/' "$ND/crate/src/transport/tcp.rs"
  grep -q "set_nodelay(true)" "$ND/crate/src/transport/tcp.rs" || { echo "nodelay patch failed" >&2; exit 1; }
  touch "$ND/crate/.patched"
fi
sed -e 's/^name = "overhead_rs"/name = "overhead_rs_nodelay"/' "$B/rs/Cargo.toml" >"$ND/Cargo.toml"
printf '\n[patch.crates-io]\nkatzenpost_thin_client = { path = "crate" }\n' >>"$ND/Cargo.toml"
sed -e 's/"client\\":\\"rust\\"/"client\\":\\"rust+nodelay\\"/' "$ROOT/bench/overhead_rs.rs" >"$ND/src/main.rs"
(cd "$ND" && CARGO_TARGET_DIR="$B/rs-target" nice -n 19 cargo build --release -q)
RS_ND_BIN="$B/rs-target/release/overhead_rs_nodelay"

# ---- the daemon ---------------------------------------------------------------
KPD_PID=""
cleanup() {
  if [[ -n "$KPD_PID" ]]; then kill "$KPD_PID" 2>/dev/null || true; wait "$KPD_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT
if [[ -z "$ADDRESS" ]]; then
  ADDRESS=127.0.0.1:64340
  BIN="${KP_BIN_DIR:-$ROOT/.cache/mixnet/bin}"
  [[ -x "$BIN/kpclientd" && -x "$BIN/genconfig" ]] || bash "$ROOT/scripts/mixnet/install.sh"
  NET="$B/offline/net"
  if [[ ! -f "$NET/client/client.toml" ]]; then
    rm -rf "$B/offline" && mkdir -p "$NET" && chmod 700 "$NET"
    (cd "$NET" && "$BIN/genconfig" --voting --wirekem xwing --nike x25519 --nrVoting 3 \
      --layers 3 --nodes 3 --gateways 1 --serviceNodes 1 --storageNodes 2 \
      --mu 0.05 --lambdaP 0.02 --lambdaL 0.0005 --lambdaM 0.0005 --lambdaR 0.05 \
      --noDecoy --noMixDecoy=true --noGatewayDecoy=true --noMetrics \
      --UserForwardPayloadLength 2000 --logLevel INFO --port 20000 \
      --baseDir "$NET" --outDir "$NET" >"$B/offline/genconfig.log" 2>&1)
  fi
  CFG="$B/offline/client.toml"
  # Hostnames -> 127.0.0.1 (ports 20000+: nothing listens), [Listen] -> $ADDRESS.
  sed -E 's/\b(auth[0-9]+|gateway[0-9]+|servicenode[0-9]+|mix[0-9]+|replica[0-9]+|kpclientd):([0-9]+)/127.0.0.1:\2/g' \
    "$NET/client/client.toml" | awk '/^\[Listen/ {skip=1; next} /^\[/ {skip=0} !skip' >"$CFG"
  printf '\n[Listen]\n  [Listen.Tcp]\n    Address = "%s"\n    Network = "tcp"\n' "$ADDRESS" >>"$CFG"
  port="${ADDRESS##*:}"
  if ss -ltn "sport = :$port" | grep -q LISTEN; then
    echo "port $port is in use" >&2
    exit 1
  fi
  (cd "$B/offline" && exec "$BIN/kpclientd" -c "$CFG" >"$B/offline/kpclientd.out" 2>&1) &
  KPD_PID=$!
  # Wait for the listener without connecting (a probe connection would cost
  # the next client 30 s in the offline daemon's accept loop).
  for _ in $(seq 1 100); do
    ss -ltn "sport = :$port" | grep -q LISTEN && break
    sleep 0.1
  done
  ss -ltn "sport = :$port" | grep -q LISTEN || { echo "kpclientd did not listen" >&2; tail "$B/offline/kpclientd.out" >&2; exit 1; }
  echo "offline kpclientd pid $KPD_PID on $ADDRESS" >&2
fi
TOML="$B/overhead-thinclient.toml"
printf '[Dial]\n  [Dial.Tcp]\n    Address = "%s"\n    Network = "tcp"\n' "$ADDRESS" >"$TOML"

# ---- the run ----------------------------------------------------------------------
OUT="$B/overhead-results.jsonl"
: >"$OUT"
run_client() {
  # shellcheck disable=SC2086
  case "$1" in
    ts) "$DENO" run -A "$ROOT/bench/overhead_ts.ts" "$TOML" "$SECONDS_PER_CASE" $CONC ;;
    py) "$B/py/bin/python" "$ROOT/bench/overhead_py.py" "$TOML" "$SECONDS_PER_CASE" $CONC ;;
    rs) "$RS_BIN" "$TOML" "$SECONDS_PER_CASE" $CONC ;;
    rs-nodelay) "$RS_ND_BIN" "$TOML" "$SECONDS_PER_CASE" $CONC ;;
  esac
}
read -r -a ORDER <<<"$CLIENTS"
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r: ${ORDER[*]}" >&2
  for c in "${ORDER[@]}"; do
    run_client "$c" | sed "s/^{/{\"round\":$r,/" | tee -a "$OUT"
  done
  ORDER=("${ORDER[@]:1}" "${ORDER[0]}")
done

# ---- table --------------------------------------------------------------------------
python3 - "$OUT" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
clients = ["ts", "python", "rust", "rust+nodelay"]
names = ["ours (TS)", "Python", "Rust", "Rust+nodelay"]
keys = []
for r in rows:
    k = (r["op"], r["concurrency"])
    if k not in keys: keys.append(k)
def cell(cl, op, c):
    v = [r["ops_per_s"] for r in rows if r["client"] == cl and r["op"] == op and r["concurrency"] == c]
    if not v: return "-"
    fmt = lambda x: f"{x:,.0f}" if x >= 10 else f"{x:.2f}"
    m = fmt(statistics.median(v))
    return m if len(v) == 1 else f"{m} ({fmt(min(v))}-{fmt(max(v))})"
print()
print("| operation | in flight | " + " | ".join(names) + " |")
print("| --- | ---: | " + " | ".join("---:" for _ in names) + " |")
for op, c in keys:
    print(f"| {op} | {c} | " + " | ".join(cell(cl, op, c) for cl in clients) + " |")
# Ours against Rust+nodelay, round by round (the two ran close together).
def val(cl, op, c, r):
    v = [x["ops_per_s"] for x in rows if x["client"] == cl and x["op"] == op and x["concurrency"] == c and x["round"] == r]
    return v[0] if v else None
pairs = False
for op, c in keys:
    ratios = []
    for r in sorted({x["round"] for x in rows}):
        a, b = val("ts", op, c, r), val("rust+nodelay", op, c, r)
        if a and b: ratios.append(a / b)
    if ratios:
        if not pairs:
            print()
            print("ours / Rust+nodelay, per round (median):")
            pairs = True
        print(f"  {op} in flight {c}: " + " ".join(f"{x:.2f}" for x in ratios) + f"  ({statistics.median(ratios):.2f})")
EOF
