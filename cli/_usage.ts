/**
 * The help text of pigeonhole-cp and its `--version` line.
 *
 * @module
 */
import packageJson from "../deno.json" with { type: "json" };

/** What `help`, `--help` and a bare `pigeonhole-cp` print. */
export const USAGE: string =
  `pigeonhole-cp: send files over Katzenpost Pigeonhole channels

Usage:
  pigeonhole-cp genkey  --out FILE [--json] [--print-write-cap]
  pigeonhole-cp send    --write-cap SRC [--index SRC] [--stream] FILE|-
  pigeonhole-cp receive --read-cap SRC [--index SRC] [--timeout T] DIR|-
  pigeonhole-cp help
  pigeonhole-cp --version

A SRC is file:PATH (or @PATH), env:NAME, - (standard input) or the value
itself: a key file written by genkey, a kpch1… share text, or base64 (as the
upstream Rust tool prints it). Without --write-cap / --read-cap / --index the
variables PIGEONHOLE_WRITE_CAP / PIGEONHOLE_READ_CAP / PIGEONHOLE_INDEX are read.

Common options:
  -c, --config PATH     thinclient.toml (default: $KATZENPOST_THINCLIENT_CONFIG,
                        else ./thinclient.toml)
      --json            results as JSON on stdout, progress as JSON lines on stderr
  -q, --quiet           no progress output
      --timings         at the end, the time per daemon call (count, median,
                        max, re-sends) on stderr
  -h, --help            this help

genkey:
  -o, --out FILE        write the key file (write capability, read capability,
                        first index) there, created with mode 0600
      --print-write-cap also print the write capability (secret!)

send:
  -w, --write-cap SRC   the channel's write capability (genkey's key file)
  -i, --index SRC       start index (default: the key file's first index)
  -f, --file PATH       the file (or give it as the argument; - = stdin)
      --stream          write box by box (no size limit, not atomic) instead of
                        the courier copy command (atomic, up to 10 MiB);
                        --no-copy is the same
      --name NAME       file name announced to the receiver (default: base name;
                        "stdin" for -)
      --window N        boxes in flight (default 8, 1-64)
      --confirm-all     stream mode: wait for the replica's verdict on every
                        box (default: on the first box only, which catches a
                        reused channel; every box costs extra round trips)
      --timeout T       give up after T (e.g. 90s, 10m; default: no limit)
      --state PATH      resume state (default: $PIGEONHOLE_CP_STATE, else
                        ~/.local/state/pigeonhole-cp/state.db)
      --no-state        do not keep resume state
      --fresh           forget saved progress of this transfer and start over

receive:
  -r, --read-cap SRC    the read capability (kpch1… share text, key file, base64)
  -i, --index SRC       start index (default: from the share text / key file)
  -d, --dest-dir DIR    the directory (or give it as the argument; - = stdout)
      --timeout T       give up if the whole file has not arrived after T
      --idle-timeout T  give up if no box arrives for T once the header is in
                        (default 10m; 0 = never)
      --max-size SIZE   refuse files announced larger (e.g. 100MiB)
      --window N, --state PATH, --no-state, --fresh   as for send

Exit codes: 0 ok, 1 failure, 2 usage, 3 input missing/unreadable, 4 bad
capability, 5 bad config, 6 daemon unreachable, 7 integrity check failed,
8 too large for copy mode, 9 conflict (target exists, other data in the
channel), 124 timeout, 130 cancelled.
`;

/** What `--version` prints: the package name and version from deno.json. */
export const VERSION_LINE: string =
  `${packageJson.name} ${packageJson.version}`;
