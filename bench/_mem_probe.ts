// deno-lint-ignore-file no-console
/**
 * Runs `pigeonhole-cp` in-process and logs memory every second to stderr as
 * JSON lines: RSS, V8 heap used (after a full GC when run with
 * `--v8-flags=--expose-gc`), and ArrayBuffer memory outside the heap. Used by
 * bench/memory_bench.sh to tell retained memory from garbage not yet collected.
 *
 *   deno run -A --v8-flags=--expose-gc bench/_mem_probe.ts <pigeonhole-cp args>
 *
 * @module
 */
import { main } from "../cli/pigeonhole_cp.ts";

const gc = (globalThis as { gc?: () => void }).gc;
const t0 = performance.now();
const sample = (): void => {
  gc?.();
  const m = Deno.memoryUsage();
  console.error(JSON.stringify({
    t: Math.round((performance.now() - t0) / 100) / 10,
    rss_mib: +(m.rss / 2 ** 20).toFixed(1),
    heap_used_mib: +(m.heapUsed / 2 ** 20).toFixed(1),
    heap_total_mib: +(m.heapTotal / 2 ** 20).toFixed(1),
    external_mib: +(m.external / 2 ** 20).toFixed(1),
  }));
};
const timer = setInterval(sample, Number(Deno.env.get("MEM_PROBE_MS") ?? 1000));
const code = await main(Deno.args);
clearInterval(timer);
sample();
Deno.exit(code);
