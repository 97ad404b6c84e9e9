"""Client-overhead bench for the upstream Python thin client (PyPI
katzenpost_thinclient). Not part of the package: bench/overhead_bench.sh runs
it from a venv in .cache/bench/py.

    python overhead_py.py <thinclient.toml> [seconds] [C...]

Connects once, then for each operation (new_keypair, next_message_box_index,
and encrypt_write when the daemon is connected to a mixnet) and each
concurrency C runs C asyncio tasks that loop for the given time. Prints one
JSON line per case (same fields as bench/overhead_ts.ts).
"""

import asyncio
import json
import os
import sys
import time

from katzenpost_thinclient import Config, ThinClient


async def main() -> None:
    toml = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    concs = [int(c) for c in sys.argv[3:]] or [1, 16]

    t0 = time.perf_counter()
    client = ThinClient(Config(toml))
    await client.start(asyncio.get_running_loop())
    first = await client.new_keypair(b"\x07" * 32)
    print(f"python: connected and first reply after {time.perf_counter() - t0:.1f}s",
          file=sys.stderr)
    index = first.first_message_index
    wcap = first.write_cap
    payload = b"\x01" * client.pigeonhole_geometry.max_plaintext_payload_length

    ops = {
        "new_keypair": lambda: client.new_keypair(os.urandom(32)),
        "next_message_box_index": lambda: client.next_message_box_index(index),
    }
    if client.is_connected():
        ops["encrypt_write"] = lambda: client.encrypt_write(payload, wcap, index)

    for op, fn in ops.items():
        for conc in concs:
            # warm-up: 50 calls, or 1 s for slow operations (encrypt_write)
            warm = time.perf_counter() + 1.0
            for i in range(50):
                if i > 0 and time.perf_counter() >= warm:
                    break
                await fn()
            n = 0
            start = time.perf_counter()
            deadline = start + seconds

            async def loop() -> None:
                nonlocal n
                while time.perf_counter() < deadline:
                    await fn()
                    n += 1

            await asyncio.gather(*(loop() for _ in range(conc)))
            el = time.perf_counter() - start
            print(json.dumps({
                "client": "python",
                "op": op,
                "concurrency": conc,
                "n": n,
                "seconds": round(el, 3),
                "ops_per_s": round(n / el, 1),
                "mean_latency_us": round(el * 1e6 * conc / n, 1),
            }), flush=True)
    client.stop()


asyncio.run(main())
