import { setTimeout as delay } from 'node:timers/promises';

/** Sleep waits `ms` milliseconds; it resolves early (never rejects) when `signal` aborts. */
export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

/** BackoffOptions configure {@link Backoff}; the defaults are the protocol's (1 s base, 30 s cap, reset after 60 s). */
export interface BackoffOptions {
  baseMs?: number;
  capMs?: number;
  /** resetAfterMs is how long a link must have been up for the next failure to start from the base again. */
  resetAfterMs?: number;
  /** random returns a number in [0, 1); injected so tests are deterministic. */
  random?: () => number;
  /** now returns the time in milliseconds; injected so tests never wait on the wall clock. */
  now?: () => number;
  sleep?: Sleep;
}

/** realSleep is the default {@link Sleep}: a timer that an abort signal cuts short. */
export const realSleep: Sleep = async (ms, signal) => {
  if (signal?.aborted) return;
  try {
    await delay(ms, undefined, signal ? { signal } : undefined);
  } catch {
    // aborted: resolve early
  }
};

/**
 * Backoff is full-jitter exponential backoff: the n-th consecutive failure waits a uniformly random
 * time in [0, min(cap, base · 2^n)]. A link that stayed up for `resetAfterMs` resets the count, so
 * a relay restart after a long stable period is retried within a second.
 *
 * @example
 * const backoff = new Backoff();
 * for (;;) {
 *   const link = dial();
 *   backoff.linkUp();            // when WELCOME arrives
 *   await link.done;
 *   backoff.linkDown();
 *   await backoff.wait(signal);
 * }
 */
export class Backoff {
  readonly baseMs: number;
  readonly capMs: number;
  readonly resetAfterMs: number;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly sleep: Sleep;
  private failures = 0;
  private upSince: number | undefined;

  constructor(options: BackoffOptions = {}) {
    this.baseMs = options.baseMs ?? 1000;
    this.capMs = options.capMs ?? 30_000;
    this.resetAfterMs = options.resetAfterMs ?? 60_000;
    if (!(this.baseMs > 0) || !(this.capMs >= this.baseMs) || !(this.resetAfterMs >= 0)) {
      throw new TypeError('backoff: need 0 < baseMs <= capMs and resetAfterMs >= 0');
    }
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? realSleep;
  }

  /** attempts is the number of consecutive failures counted so far. */
  get attempts(): number {
    return this.failures;
  }

  /** ceiling is the upper bound of the next delay: min(cap, base · 2^attempts). */
  get ceiling(): number {
    // 2^n grows past the cap quickly; stop before the float overflows.
    return this.failures >= 30 ? this.capMs : Math.min(this.capMs, this.baseMs * 2 ** this.failures);
  }

  /** nextDelay draws the next delay and counts a failure. */
  nextDelay(): number {
    const ceiling = this.ceiling;
    this.failures++;
    return Math.min(ceiling, Math.floor(this.random() * (ceiling + 1)));
  }

  /** wait sleeps for {@link Backoff.nextDelay}; resolves early when `signal` aborts. Returns the delay drawn. */
  async wait(signal?: AbortSignal): Promise<number> {
    const d = this.nextDelay();
    await this.sleep(d, signal);
    return d;
  }

  /** linkUp records that a link became stable (WELCOME accepted). */
  linkUp(): void {
    this.upSince = this.now();
  }

  /** linkDown records that the link ended; one that was up for `resetAfterMs` resets the failure count. */
  linkDown(): void {
    if (this.upSince !== undefined && this.now() - this.upSince >= this.resetAfterMs) this.failures = 0;
    this.upSince = undefined;
  }

  /** reset forgets all failures. */
  reset(): void {
    this.failures = 0;
    this.upSince = undefined;
  }
}
