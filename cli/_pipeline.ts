/**
 * Pipelined box reads: several boxes in flight at once (a bounded window),
 * so the daemon's send queue never idles while the program waits on one
 * round trip. A box not written yet is read again until it is
 * (`readWhenWritten`). Aborting cancels every read still in flight in the daemon (the
 * thin client sends the cancels). Pipelined writes are `writeBoxes`
 * in lib/boxes.ts.
 *
 * @module
 */
import { readWhenWritten } from "../lib/boxes.ts";
import type { MessageBoxIndex, ReadCap } from "../lib/caps.ts";
import type { ThinClient } from "../lib/client.ts";
import { ReplicaError, ReplicaErrorCode } from "../lib/errors.ts";

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

function isNotFound(err: unknown): boolean {
  return err instanceof ReplicaError &&
    err.code === ReplicaErrorCode.BoxIdNotFound;
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
    const next = env.nextMessageBoxIndex;
    index = next;
    // A box not written yet is read again with fresh envelopes (the daemon's
    // own retries go blind: see readBox's pollMs).
    const p = client.startResendingEncryptedMessage(
      { readCap, messageBoxIndex: at, ...env },
      { signal, noRetryOnBoxIdNotFound: true },
    ).then(
      (r) => r.plaintext ?? new Uint8Array(0),
      async (err) => {
        if (!isNotFound(err)) throw err;
        const box = await readWhenWritten(client, readCap, at, { signal });
        if (box.kind === "tombstone") {
          throw new ReplicaError(ReplicaErrorCode.Tombstone);
        }
        return box.kind === "data" ? box.plaintext : new Uint8Array(0);
      },
    ).then((data) => ({ data, next }));
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
