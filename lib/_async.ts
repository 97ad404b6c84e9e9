/**
 * Promise and abort helpers shared by every folder: deferreds, abortable
 * waits, a lock, a notifier and a bounded worker pool. Runtime-neutral.
 *
 * @module
 */

/** A promise with its settle functions exposed (Node 20 lacks Promise.withResolvers). */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (reason: unknown) => void;
}

/**
 * Creates a {@linkcode Deferred}. Its promise counts as handled from the
 * start: a waiter may be rejected (an abort, a lost connection) before its
 * owner awaits it, and that must not surface as an unhandled rejection,
 * which Deno and Node treat as fatal. Whoever awaits it still gets the
 * rejection.
 */
export function deferred<T>(): Deferred<T> {
  const d = deferredUnmarked<T>();
  d.promise.catch(() => {});
  return d;
}

/**
 * A {@linkcode Deferred} whose promise is not marked handled, for one that
 * is handed to its owner at once (who awaits it or passes it on): a
 * rejection shows up there, and no extra promise is made per call.
 */
export function deferredUnmarked<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Waits `ms` milliseconds. Rejects with `signal.reason` when aborted, and
 * clears its timer. `ms <= 0` settles on a macrotask.
 */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Wakes every waiter when `notify()` is called. Waiters re-check their own
 * condition in a loop.
 */
export class Notifier {
  #waiters = new Set<() => void>();

  /** Wakes all current waiters. */
  notify(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w();
  }

  /** Resolves on the next `notify()`; rejects with `signal.reason` on abort. */
  wait(signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = () => {
        this.#waiters.delete(wake);
        reject(signal?.reason);
      };
      const wake = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      this.#waiters.add(wake);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}

/** Waits for `p`, or rejects with the signal's reason. */
export function abortable<T>(
  p: Promise<T>,
  signal: AbortSignal | undefined,
): Promise<T> {
  if (signal === undefined) return p;
  if (signal.aborted) return Promise.reject(signal.reason);
  const d = deferred<T>();
  const onAbort = (): void => d.reject(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  p.then(d.resolve, d.reject).finally(() =>
    signal.removeEventListener("abort", onAbort)
  );
  return d.promise;
}

/**
 * Runs `fn` over `items` with at most `limit` at a time. The first failure
 * aborts the others (through the signal passed to `fn`) and is rethrown.
 */
export async function pool<T>(
  items: readonly T[],
  limit: number,
  signal: AbortSignal | undefined,
  fn: (item: T, signal: AbortSignal) => Promise<void>,
): Promise<void> {
  const ctl = new AbortController();
  const sig = signal === undefined
    ? ctl.signal
    : AbortSignal.any([signal, ctl.signal]);
  let next = 0;
  let failed = false;
  let firstError: unknown;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item, sig);
      } catch (err) {
        if (!failed) {
          failed = true;
          firstError = err;
          ctl.abort(err);
        }
      }
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, worker),
  );
  if (failed) throw firstError;
}

/** An async lock whose waiters can be aborted. */
export class Lock {
  #locked = false;
  readonly #waiters: Array<() => void> = [];

  /** Waits for the lock; resolves to its release function. */
  async acquire(signal: AbortSignal | undefined): Promise<() => void> {
    signal?.throwIfAborted();
    if (!this.#locked) {
      this.#locked = true;
      return this.#releaser();
    }
    const d = deferred<void>();
    const wake = (): void => d.resolve();
    this.#waiters.push(wake);
    const onAbort = (): void => {
      const i = this.#waiters.indexOf(wake);
      if (i >= 0) {
        this.#waiters.splice(i, 1);
        d.reject(signal!.reason);
      }
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await d.promise;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
    return this.#releaser();
  }

  #releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.#waiters.shift();
      if (next !== undefined) next();
      else this.#locked = false;
    };
  }
}

/** Waits for `work` to settle, or `ms` milliseconds at most. Never rejects. */
export async function within(
  work: Promise<unknown>,
  ms: number,
): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    work.catch(() => {}),
    new Promise<void>((resolve) => timer = setTimeout(resolve, ms)),
  ]);
  clearTimeout(timer);
}

/** The signal's reason, or an AbortError when it has none. */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ??
    new DOMException("The operation was aborted", "AbortError");
}
