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

# --- CTIDH backend ---
cpu_has_asm() {
  [[ "$(uname -m)" == x86_64 ]] || return 1
  local flags
  flags="$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)"
  [[ " $flags " == *" bmi2 "* && " $flags " == *" adx "* ]]
}
BACKEND="${KP_CTIDH_BACKEND:-auto}"
case "$BACKEND" in
  auto) if cpu_has_asm; then BACKEND=asm; else BACKEND=portable; fi ;;
  asm)
    cpu_has_asm || {
      echo "install.sh: KP_CTIDH_BACKEND=asm needs an x86-64 CPU with BMI2 and ADX (Broadwell, Zen or later);" \
        "this one lacks them and the binaries would die with SIGILL. Use KP_CTIDH_BACKEND=portable." >&2
      exit 2
    }
    ;;
  portable) ;;
  *)
    echo "install.sh: KP_CTIDH_BACKEND must be auto, asm or portable, not '$BACKEND'" >&2
    exit 2
    ;;
esac
ASM_HEADER_SRC="$ROOT/scripts/mixnet/highctidh_asm.h"
CGO_CFLAGS_BUILD="${CGO_CFLAGS:--O2 -g}"
BACKEND_STAMP="ctidh=${BACKEND}"
if [[ "$BACKEND" == asm ]]; then
  # Go's build cache keys on the flags, not on the contents of a header
  # -include'd from outside the package: name the copy after its hash so that
  # an edited header is a new flag and rebuilds highctidh.
  hsum="$(sha256sum "$ASM_HEADER_SRC" | cut -c1-16)"
  ASM_HEADER="$CACHE/cflags/highctidh-asm-${hsum}.h"
  # -fno-toplevel-reorder: the field assembly, pulled in by a toplevel asm
  # statement, leaves gas in intel syntax, so nothing gcc emits may be moved
  # after it.
  CGO_CFLAGS_BUILD="${CGO_CFLAGS_BUILD} -include ${ASM_HEADER} -fno-toplevel-reorder"
  BACKEND_STAMP="ctidh=asm header=${hsum}"
fi
if [[ "${KP_EXACT_PINS:-0}" == 1 ]]; then REPL="none"; else REPL="hpqc=>v0.0.85 sqisign=>stub falcon=>stub"; fi
STAMP_WANT="version=${KP_VERSION}
ldflags=${LDFLAGS}
cmds=${CMDS[*]}
replace=${REPL} stubs=r1
trimpath=1 cgo=1
${BACKEND_STAMP}
go=${GOVER}"
STAMP="$BIN/.stamp"

have_all=1
for c in "${CMDS[@]}"; do [[ -x "$BIN/$c" ]] || have_all=0; done
if [[ "${KP_FORCE_BUILD:-0}" != 1 && $have_all == 1 && -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_WANT" ]]; then
  echo "install.sh: katzenpost ${KP_VERSION} binaries (CTIDH backend: ${BACKEND}) up to date in $BIN"
  exit 0
fi

mkdir -p "$BIN" "$WRAP"
rm -f "$STAMP"
if [[ "$BACKEND" == asm ]]; then
  mkdir -p "$(dirname "$ASM_HEADER")"
  cp "$ASM_HEADER_SRC" "$ASM_HEADER"
fi

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

echo "install.sh: building ${CMDS[*]} (katzenpost ${KP_VERSION}, ${GOVER}, replace: ${REPL}, CTIDH backend: ${BACKEND}) into $BIN"
echo "install.sh: a cold build takes several minutes on 2 cores"
start=$(date +%s)
(
  cd "$WRAP"
  # -mod=mod fills go.sum (verified against the checksum database via the proxy).
  env -u GOFLAGS CGO_ENABLED=1 CGO_CFLAGS="$CGO_CFLAGS_BUILD" GOBIN="$BIN" GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" \
    go install -mod=mod -trimpath -ldflags="$LDFLAGS" "${pkgs[@]}"
)
end=$(date +%s)
for c in "${CMDS[@]}"; do [[ -x "$BIN/$c" ]] || { echo "install.sh: $BIN/$c missing after build" >&2; exit 1; }; done
# The portable backend links fiat-crypto's field multiplication; the assembly
# backend replaces it. Check the binaries that do CTIDH work really have the
# backend the stamp is about to claim.
for c in replica courier kpclientd; do
  fiat=$(go tool nm "$BIN/$c" | grep -c ' T fiat_p1024_mul$' || true)
  if [[ "$BACKEND" == asm && $fiat != 0 ]] || [[ "$BACKEND" == portable && $fiat == 0 ]]; then
    echo "install.sh: $BIN/$c was not built with the ${BACKEND} CTIDH backend" \
      "(fiat_p1024_mul symbols: $fiat); rebuild with KP_FORCE_BUILD=1" >&2
    exit 1
  fi
done
printf '%s\n' "$STAMP_WANT" > "$STAMP"
echo "install.sh: built in $((end - start))s (CTIDH backend: ${BACKEND})"
