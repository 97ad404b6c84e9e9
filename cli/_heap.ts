/**
 * Keeps the memory of a long transfer flat in the file size.
 *
 * Every box of a transfer allocates a few KB that die young (the file block,
 * the request, the reply), and some of it lives across a few minor
 * collections while its box is in flight. V8 sizes its heap to that
 * allocation rate: left alone, the heap of a 100 MiB stream grows to about
 * 25 MiB and its peak RSS by about 20 MiB over a 1 MiB one, although nothing
 * is retained per box (BENCHMARKS.md, "Memory of pigeonhole-cp"). So while a
 * transfer runs, the heap's size is looked at once a second, and a full
 * collection runs when it has grown past {@linkcode HEAP_TRIM_BYTES}: V8 then
 * sizes the heap from the live data (about 8 MiB) again.
 *
 * The collector is reached without asking the user for V8 flags: the
 * `--expose-gc` flag is set at run time, which gives a fresh `node:vm` context
 * a `gc` function. Where that does not work, trimming is a no-op.
 *
 * @module
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** How often a running transfer looks at the heap, in milliseconds. */
export const HEAP_TRIM_INTERVAL_MS = 1000;
/** Heap size (V8's `heapTotal`) above which a full collection runs. */
export const HEAP_TRIM_BYTES: number = 12 * 1024 * 1024;

let collector: (() => void) | null | undefined;

/** The full-collection function of this runtime, or null where there is none. */
export function fullCollector(): (() => void) | null {
  if (collector !== undefined) return collector;
  try {
    setFlagsFromString("--expose-gc");
    const gc: unknown = runInNewContext("gc");
    collector = typeof gc === "function" ? gc as () => void : null;
  } catch {
    collector = null;
  }
  return collector;
}

/** What {@linkcode startHeapTrim} needs; each has a default. */
export interface HeapTrimOptions {
  /** The collector; null turns trimming off. */
  collect?: (() => void) | null;
  /** The heap's current size in bytes. */
  heapSize?: () => number;
  /** Size above which `collect` runs. */
  limit?: number;
  /** Milliseconds between looks at the heap. */
  intervalMs?: number;
}

/**
 * Looks at the heap every `intervalMs` and runs the collector when it is
 * larger than `limit`, until the result is disposed. The timer does not keep
 * the process alive.
 *
 * @returns A disposable that stops the timer (idempotent).
 */
export function startHeapTrim(options: HeapTrimOptions = {}): Disposable {
  const collect = options.collect === undefined
    ? fullCollector()
    : options.collect;
  if (collect === null) return { [Symbol.dispose]: () => {} };
  const heapSize = options.heapSize ?? (() => Deno.memoryUsage().heapTotal);
  const limit = options.limit ?? HEAP_TRIM_BYTES;
  const timer = setInterval(() => {
    if (heapSize() > limit) collect();
  }, options.intervalMs ?? HEAP_TRIM_INTERVAL_MS);
  Deno.unrefTimer(timer);
  return { [Symbol.dispose]: () => clearInterval(timer) };
}
