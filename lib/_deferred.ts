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
