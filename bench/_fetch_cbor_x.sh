#!/bin/sh
# Unpacks npm:cbor-x@1.6.9 into .cache/bench/cbor-x-1.6.9/ for bench/cbor_bench.ts.
#
# Needed only when `npm:cbor-x@1.6.9` cannot be resolved by Deno: cbor-x lists
# the native accelerator `cbor-extract@^2.2.3` as an optional dependency and
# Deno resolves every optional platform package; a registry mirror lacking
# `@cbor-extract/cbor-extract-<platform>@2.2.3` makes the whole import fail.
# The bench uses the pure-JS code path either way (Deno cannot load the native
# addon without a node_modules dir), so the unpacked copy runs the same code.
set -eu
cd "$(dirname "$0")/.."
DEST=.cache/bench
VERSION=1.6.9
EXPECTED=$(npm view "cbor-x@$VERSION" dist.integrity)
mkdir -p "$DEST"
rm -rf "$DEST/cbor-x-$VERSION" "$DEST/package"
TGZ=$(npm pack "cbor-x@$VERSION" --pack-destination "$DEST" --json | sed -n 's/.*"filename": "\(.*\)".*/\1/p')
GOT="sha512-$(openssl dgst -sha512 -binary "$DEST/$TGZ" | base64 -w0)"
if [ "$GOT" != "$EXPECTED" ]; then
  echo "Cannot unpack cbor-x: integrity \"$GOT\" does not match \"$EXPECTED\"" >&2
  exit 1
fi
tar -xzf "$DEST/$TGZ" -C "$DEST"
mv "$DEST/package" "$DEST/cbor-x-$VERSION"
echo "$DEST/cbor-x-$VERSION"
