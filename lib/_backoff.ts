/**
 * Redial delays: exponential backoff with equal jitter.
 *
 * @module
 */
import type { ReconnectOptions } from "./_options.ts";

/** A reconnection policy with every field set. */
export type BackoffPolicy = Required<ReconnectOptions>;

/** The policy of the `reconnect` option: `null` when reconnecting is off. */
export function backoffPolicy(
  option: boolean | ReconnectOptions | undefined,
): BackoffPolicy | null {
  const r = option ?? true;
  if (r === false) return null;
  return {
    initialDelay: (r === true ? undefined : r.initialDelay) ?? 1000,
    maxDelay: (r === true ? undefined : r.maxDelay) ?? 60_000,
    maxAttempts: (r === true ? undefined : r.maxAttempts) ?? Infinity,
  };
}

/**
 * The waits between redials of one outage. The delay starts at
 * `initialDelay` and doubles after every wait up to `maxDelay`; each wait is
 * drawn uniformly between half the delay and the whole delay, so it never
 * exceeds the delay and clients that lost the same daemon spread out.
 */
export class Backoff {
  #delay: number;
  readonly #maxDelay: number;
  readonly #random: () => number;

  /**
   * @param policy The delays.
   * @param random Uniform numbers in [0, 1); `Math.random` unless a test
   *   supplies its own.
   */
  constructor(policy: BackoffPolicy, random: () => number = Math.random) {
    this.#delay = policy.initialDelay;
    this.#maxDelay = policy.maxDelay;
    this.#random = random;
  }

  /** The next wait in milliseconds; doubles the delay for the one after. */
  next(): number {
    const delay = this.#delay;
    this.#delay = Math.min(delay * 2, this.#maxDelay);
    const half = delay / 2;
    return half + this.#random() * half;
  }
}
