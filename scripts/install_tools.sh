#!/usr/bin/env bash
# Installs the pinned tools of tools/package.json (Deno, Node 22) unless the
# installed set already matches tools/package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/../tools"
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -x node_modules/.bin/deno ] && [ "$(cat node_modules/.tools-stamp 2>/dev/null)" = "$want" ]; then
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
echo "$want" >node_modules/.tools-stamp
