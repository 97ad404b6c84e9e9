#!/usr/bin/env bash
# Builds the Katzenpost daemons for the local test mixnet into .cache/mixnet/bin.
#
# Idempotent: does nothing when every binary exists and the stamp (version, flags,
# replacements, Go version) matches. KP_FORCE_BUILD=1 rebuilds anyway.
#
# Build route: a throw-away wrapper module in .cache/mixnet/build requires
# github.com/katzenpost/katzenpost at $KP_VERSION and `go install`s its cmd/ packages
# (module mode, no @version: the proxy refuses the @v/list query that `go install pkg@v`
# makes for its deprecation check). Two dependencies pinned by v0.0.99 are not served
# by the Go module proxy reachable from the project machines, so by default they are
# replaced (KP_EXACT_PINS=1 turns this off on a machine that can fetch them):
#   * github.com/katzenpost/hpqc  pseudo-version (commit e598e7ee, 2026-07-15)
#       -> tag v0.0.85 (commit fef482c6, same day, the release cut right after it);
#   * github.com/katzenpost/sqisign/bindings/go and github.com/katzenpost/falcon
#       (SQIsign and Falcon signatures, unused by the test net, which signs with
#       Ed25519) -> local stand-ins with the same API whose operations all fail.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KP_VERSION="${KP_VERSION:-v0.0.99}"
MOD="github.com/katzenpost/katzenpost"
CACHE="$ROOT/.cache/mixnet"
BIN="${KP_BIN_DIR:-$CACHE/bin}"
WRAP="$CACHE/build"
# Same ldflags as upstream's docker/Makefile (warped epochs = 2-minute epochs).
LDFLAGS="-extldflags '-Wl,-z,stack-size=0x1F40000' -buildid= -X ${MOD}/core/epochtime.WarpedEpoch=true"
CMDS=(genconfig dirauth server replica courier kpclientd ping fetch)
HPQC_REPLACE="github.com/katzenpost/hpqc v0.0.85"
SQISIGN_MOD="github.com/katzenpost/sqisign/bindings/go"
FALCON_MOD="github.com/katzenpost/falcon"

command -v go >/dev/null || { echo "install.sh: go not found in PATH" >&2; exit 1; }
command -v gcc >/dev/null || command -v cc >/dev/null || { echo "install.sh: a C compiler (gcc) is required (cgo)" >&2; exit 1; }

GOVER="$(go env GOVERSION)"
if [[ "${KP_EXACT_PINS:-0}" == 1 ]]; then REPL="none"; else REPL="hpqc=>v0.0.85 sqisign=>stub falcon=>stub"; fi
STAMP_WANT="version=${KP_VERSION}
ldflags=${LDFLAGS}
cmds=${CMDS[*]}
replace=${REPL} stubs=r1
trimpath=1 cgo=1
go=${GOVER}"
STAMP="$BIN/.stamp"

have_all=1
for c in "${CMDS[@]}"; do [[ -x "$BIN/$c" ]] || have_all=0; done
if [[ "${KP_FORCE_BUILD:-0}" != 1 && $have_all == 1 && -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_WANT" ]]; then
  echo "install.sh: katzenpost ${KP_VERSION} binaries up to date in $BIN"
  exit 0
fi

mkdir -p "$BIN" "$WRAP"
rm -f "$STAMP"

# --- wrapper module (regenerated every build; lives in the git-ignored cache) ---
rm -rf "$WRAP/go.mod" "$WRAP/go.sum" "$WRAP/sqisign-stub" "$WRAP/falcon-stub"
{
  echo "module kpmixnetbuild"
  echo
  echo "go 1.26.2"
  echo
  echo "require ${MOD} ${KP_VERSION}"
  if [[ "$REPL" != none ]]; then
    echo
    echo "replace github.com/katzenpost/hpqc => ${HPQC_REPLACE}"
    echo "replace ${SQISIGN_MOD} => ./sqisign-stub"
    echo "replace ${FALCON_MOD} => ./falcon-stub"
  fi
} > "$WRAP/go.mod"
if [[ "$REPL" != none ]]; then
  mkdir -p "$WRAP/sqisign-stub/sqisign"
  printf 'module %s\n\ngo 1.25.0\n' "$SQISIGN_MOD" > "$WRAP/sqisign-stub/go.mod"
  cat > "$WRAP/sqisign-stub/sqisign/stub.go" <<'GO'
// Package sqisign is a stand-in for the SQIsign bindings, which the module
// proxy reachable here does not serve. Same API; every operation fails.
// The local test mixnet signs with Ed25519 and never calls it.
package sqisign

import (
	"errors"
	"io"
)

// Level-1 sizes, as published by the real bindings.
const (
	PublicKeyBytes = 65
	SecretKeyBytes = 353
	SignatureBytes = 148
)

// ErrUnsupported is returned by every operation of this stand-in.
var ErrUnsupported = errors.New("sqisign: not available in this build (stub)")

func KeyGen(_ io.Reader) ([]byte, []byte, error) { return nil, nil, ErrUnsupported }

func Sign(_ io.Reader, _, _ []byte) ([]byte, error) { return nil, ErrUnsupported }

func Verify(_, _, _ []byte) (bool, error) { return false, ErrUnsupported }
GO
  # Falcon-padded stand-in: sizes are the PQClean Falcon-padded parameters.
  mkdir -p "$WRAP/falcon-stub"
  printf 'module %s\n\ngo 1.25.0\n' "$FALCON_MOD" > "$WRAP/falcon-stub/go.mod"
  for spec in "padded512 897 1281 666" "padded1024 1793 2305 1280"; do
    read -r pkg pk sk sig <<<"$spec"
    mkdir -p "$WRAP/falcon-stub/$pkg"
    cat > "$WRAP/falcon-stub/$pkg/stub.go" <<GO
// Package $pkg is a stand-in for the Falcon bindings, which the module proxy
// reachable here does not serve. Same API; every operation fails.
package $pkg

import "errors"

const (
	PublicKeySize  = $pk
	PrivateKeySize = $sk
	SignatureSize  = $sig
)

var ErrUnsupported = errors.New("falcon: not available in this build (stub)")

type PublicKey [PublicKeySize]byte

type PrivateKey [PrivateKeySize]byte

func GenerateKey() (PublicKey, PrivateKey, error) {
	return PublicKey{}, PrivateKey{}, ErrUnsupported
}

func Sign(_ *PrivateKey, _ []byte) ([]byte, error) { return nil, ErrUnsupported }

func Verify(_ *PublicKey, _, _ []byte) bool { return false }
GO
  done
fi

pkgs=()
for c in "${CMDS[@]}"; do pkgs+=("${MOD}/cmd/${c}"); done

echo "install.sh: building ${CMDS[*]} (katzenpost ${KP_VERSION}, ${GOVER}, replace: ${REPL}) into $BIN"
echo "install.sh: a cold build takes several minutes on 2 cores"
start=$(date +%s)
(
  cd "$WRAP"
  # -mod=mod fills go.sum (verified against the checksum database via the proxy).
  env -u GOFLAGS CGO_ENABLED=1 GOBIN="$BIN" GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" \
    go install -mod=mod -trimpath -ldflags="$LDFLAGS" "${pkgs[@]}"
)
end=$(date +%s)
for c in "${CMDS[@]}"; do [[ -x "$BIN/$c" ]] || { echo "install.sh: $BIN/$c missing after build" >&2; exit 1; }; done
printf '%s\n' "$STAMP_WANT" > "$STAMP"
echo "install.sh: built in $((end - start))s"
