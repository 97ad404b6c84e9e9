#!/usr/bin/env bash
# The integration suite against the running local mixnet, in two phases:
#
# 1. core_test.ts and restart_test.ts, one after the other, while every daemon
#    is idle. Their echo round trips are plain SURB replies, and kpclientd
#    silently drops a SURB reply that reaches it more than the expected round
#    trip + 4.5 s after sending (its SURB-ID garbage collector); its single
#    ingress worker decrypts Pigeonhole replies inline (CTIDH, 2-6 s here), so
#    an echo that shares a busy daemon can lose its reply.
# 2. cli_examples_test.ts, persistent_test.ts and pigeonhole_test.ts in
#    parallel, each on a daemon of its own (unix, tcp, ws): one daemon's
#    Pigeonhole work is serial, and 2 cores have room for three.
#
# Prints deno's output of both runs; exits non-zero when either fails.
set -uo pipefail
cd "$(dirname "$0")/.."
DENO="${DENO:-$PWD/tools/node_modules/.bin/deno}"
[[ -x "$DENO" ]] || DENO=deno
I=tests/integration
"$DENO" test -P --trace-leaks "$I/core_test.ts" "$I/restart_test.ts"
first=$?
DENO_JOBS=3 "$DENO" test -P --trace-leaks --parallel \
  "$I/cli_examples_test.ts" "$I/persistent_test.ts" "$I/pigeonhole_test.ts"
second=$?
[[ $first == 0 && $second == 0 ]]
