#!/usr/bin/env bash
# Build the Katzenpost daemons used by the local test mixnet into .cache/mixnet/bin.
# Idempotent: skips the build when every binary exists and the stamp (version + flags +
# go version) matches. Set KP_FORCE_BUILD=1 to rebuild anyway.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KP_VERSION="${KP_VERSION:-v0.0.99}"
MOD="github.com/katzenpost/katzenpost"
BIN="${KP_BIN_DIR:-$ROOT/.cache/mixnet/bin}"
# Same ldflags as upstream's docker/Makefile (warped = 2-minute epochs).
LDFLAGS="-extldflags '-Wl,-z,stack-size=0x1F40000' -buildid= -X ${MOD}/core/epochtime.WarpedEpoch=true"
CMDS=(genconfig dirauth server replica courier kpclientd ping fetch)

command -v go >/dev/null || { echo "install.sh: go not found in PATH" >&2; exit 1; }
command -v gcc >/dev/null || command -v cc >/dev/null || { echo "install.sh: a C compiler (gcc) is required (cgo)" >&2; exit 1; }

GOVER="$(go env GOVERSION)"
STAMP_WANT="version=${KP_VERSION}
ldflags=${LDFLAGS}
cmds=${CMDS[*]}
trimpath=1
cgo=1
go=${GOVER}"
STAMP="$BIN/.stamp"

have_all=1
for c in "${CMDS[@]}"; do [[ -x "$BIN/$c" ]] || have_all=0; done
if [[ "${KP_FORCE_BUILD:-0}" != 1 && $have_all == 1 && -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_WANT" ]]; then
  echo "install.sh: katzenpost ${KP_VERSION} binaries up to date in $BIN"
  exit 0
fi

mkdir -p "$BIN"
rm -f "$STAMP"
pkgs=()
for c in "${CMDS[@]}"; do pkgs+=("${MOD}/cmd/${c}@${KP_VERSION}"); done

echo "install.sh: building ${CMDS[*]} (${KP_VERSION}, ${GOVER}) into $BIN; cold build takes several minutes"
start=$(date +%s)
# GOFLAGS cleared on purpose; GOTOOLCHAIN=auto lets an older local Go fetch the required one.
env -u GOFLAGS CGO_ENABLED=1 GOBIN="$BIN" GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" \
  go install -trimpath -ldflags="$LDFLAGS" "${pkgs[@]}"
end=$(date +%s)
printf '%s\n' "$STAMP_WANT" > "$STAMP"
echo "install.sh: built in $((end - start))s"
