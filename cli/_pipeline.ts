/**
 * Pipelined box writes and reads: several boxes in flight at once (a
 * bounded window), so the daemon's send queue never idles while the
 * program waits on one round trip. Aborting cancels every box still in
 * flight in the daemon (the thin client sends the cancels).
 *
 * @module
 */
import type { MessageBoxIndex, ReadCap, WriteCap } from "../lib/caps.ts";
import type { ThinClient } from "../lib/client.ts";

/** Where a pipelined write starts and what it has already done. */
export interface WriteCursor {
  /** First box not yet acknowledged. */
  low: number;
  /** Index of box `low`. */
  lowIndex: MessageBoxIndex;
  /** Boxes above `low` already acknowledged. */
  ahead: Set<number>;
}

/** Options of {@linkcode pipelinedWrite}. */
export interface PipelinedWriteOptions {
  /** The connected client. */
  client: ThinClient;
  /** The stream written. */
  writeCap: WriteCap;
  /** Boxes in all (box numbers 0 … count − 1). */
  count: number;
  /** Where to start (mutated as boxes are acknowledged). */
  cursor: WriteCursor;
  /** Boxes in flight at most. */
  window: number;
  /**
   * Which writes wait for the replica's verdict, so that a box already
   * holding other content fails instead of passing as success: `"all"`,
   * `"first"` (the first box written by this run: enough to catch a reused
   * channel at the cost of one confirmation) or `"none"`. A confirmed write
   * costs the daemon extra round trips to the courier until the replica
   * answers.
   */
  confirm: "all" | "first" | "none";
  /** Aborts everything. */
  signal: AbortSignal;
  /** The plaintext of box `k`. */
  payload(k: number): Promise<Uint8Array>;
  /** Called after each acknowledgement of box `k` (at `index`), with the cursor already moved. */
  onAck(k: number, index: MessageBoxIndex, cursor: WriteCursor): void;
}

/**
 * Writes boxes `cursor.low … count − 1` (skipping those in `cursor.ahead`)
 * with at most `window` in flight.
 *
 * @returns The index after the last box, and the last box's index (`null`
 *   when the run started past it).
 * @throws The first failure (every other box in flight is cancelled first).
 */
export async function pipelinedWrite(
  o: PipelinedWriteOptions,
): Promise<{ next: MessageBoxIndex; last: MessageBoxIndex | null }> {
  const { client, writeCap, cursor } = o;
  const ctl = new AbortController();
  const signal = AbortSignal.any([o.signal, ctl.signal]);
  // Boxes in flight, and who waits for one to finish (one promise per wait,
  // not a race over every box in flight).
  let active = 0;
  let wake: (() => void) | null = null;
  const finished = (): void => {
    active--;
    const w = wake;
    wake = null;
    w?.();
  };
  const someFinished = (): Promise<void> =>
    new Promise<void>((resolve) => wake = resolve);
  const indices = new Map<number, MessageBoxIndex>();
  let failure: { error: unknown } | null = null;
  const fail = (error: unknown): void => {
    failure ??= { error };
    if (!ctl.signal.aborted) ctl.abort(error);
  };
  let k = cursor.low;
  let index = cursor.lowIndex;
  let last: MessageBoxIndex | null = null;
  let first = true;
  indices.set(k, index);
  const acked = (box: number, at: MessageBoxIndex): void => {
    cursor.ahead.add(box);
    while (cursor.ahead.has(cursor.low)) {
      cursor.ahead.delete(cursor.low);
      indices.delete(cursor.low);
      cursor.low++;
    }
    cursor.lowIndex = indices.get(cursor.low) ?? cursor.lowIndex;
    o.onAck(box, at, cursor);
  };
  try {
    while (k < o.count && failure === null) {
      if (cursor.ahead.has(k)) {
        if (k === o.count - 1) last = index;
        index = await client.nextMessageBoxIndex(index, { signal });
        k++;
        indices.set(k, index);
        continue;
      }
      while (active >= o.window) await someFinished();
      if (failure !== null) break;
      const data = await o.payload(k);
      const env = await client.encryptWrite(data, writeCap, index, { signal });
      const box = k;
      const at = index;
      if (box === o.count - 1) last = index;
      const confirm = o.confirm === "all" || (o.confirm === "first" && first);
      first = false;
      active++;
      client.startResendingEncryptedMessage({ writeCap, ...env }, {
        signal,
        noIdempotentBoxAlreadyExists: confirm,
      }).then(() => {
        try {
          acked(box, at);
        } catch (err) {
          fail(err);
        }
        finished();
      }, (err) => {
        fail(err);
        finished();
      });
      index = env.nextMessageBoxIndex;
      k++;
      indices.set(k, index);
    }
  } catch (err) {
    fail(err);
  }
  while (active > 0) await someFinished();
  if (failure !== null) throw (failure as { error: unknown }).error;
  return { next: index, last };
}

/** Options of {@linkcode pipelinedRead}. */
export interface PipelinedReadOptions {
  /** The connected client. */
  client: ThinClient;
  /** The stream read. */
  readCap: ReadCap;
  /** Index of the first box to read. */
  index: MessageBoxIndex;
  /** Boxes in flight at most. */
  window: number;
  /** Aborts everything. */
  signal: AbortSignal;
  /**
   * Milliseconds allowed between two boxes (0 = no limit); when it passes,
   * the read fails with a `TimeoutError` DOMException.
   */
  idleMs: number;
  /** How many more boxes are probably needed (at least 1 while any are). */
  wanted(): number;
  /**
   * Receives boxes in order with the index after each; returns `false` when
   * no more are needed.
   */
  onBox(data: Uint8Array, next: MessageBoxIndex): Promise<boolean>;
}

/**
 * Reads consecutive boxes with up to `window` reads in flight, in order,
 * until `onBox` returns `false`. Reads started beyond the end are cancelled.
 *
 * @throws The first failure (a tombstone is a `ReplicaError` code 11).
 */
export async function pipelinedRead(o: PipelinedReadOptions): Promise<void> {
  const { client, readCap } = o;
  const ctl = new AbortController();
  const signal = AbortSignal.any([o.signal, ctl.signal]);
  const pending: Array<Promise<{ data: Uint8Array; next: MessageBoxIndex }>> =
    [];
  let index = o.index;
  let idle: ReturnType<typeof setTimeout> | undefined;
  const armIdle = (): void => {
    clearTimeout(idle);
    if (o.idleMs > 0) {
      idle = setTimeout(
        () =>
          ctl.abort(
            new DOMException(
              `No box arrived for ${o.idleMs / 1000} s`,
              "TimeoutError",
            ),
          ),
        o.idleMs,
      );
    }
  };
  const start = async (): Promise<void> => {
    const at = index;
    const env = await client.encryptRead(readCap, at, { signal });
    index = env.nextMessageBoxIndex;
    const p = client.startResendingEncryptedMessage(
      { readCap, messageBoxIndex: at, ...env },
      { signal },
    ).then((r) => ({
      data: r.plaintext ?? new Uint8Array(0),
      next: env.nextMessageBoxIndex,
    }));
    p.catch(() => {}); // awaited later, in order
    pending.push(p);
  };
  armIdle();
  try {
    for (;;) {
      while (pending.length < Math.min(o.window, Math.max(1, o.wanted()))) {
        await start();
      }
      const box = await pending.shift()!;
      armIdle();
      if (!(await o.onBox(box.data, box.next))) break;
    }
  } catch (err) {
    if (signal.aborted && !o.signal.aborted) throw signal.reason;
    throw err;
  } finally {
    clearTimeout(idle);
    if (pending.length > 0) {
      ctl.abort(new DOMException("Transfer complete", "AbortError"));
      await Promise.allSettled(pending);
    }
  }
}
