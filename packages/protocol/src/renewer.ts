import type { Identity } from '@switchboard/pki';

/** RenewerLogger is the part of a logger the renewer uses. */
interface RenewerLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** RenewerOptions configure an {@link IdentityRenewer}. */
export interface RenewerOptions {
  /** current is the identity in use now. */
  current(): Identity;
  /** renew obtains a new identity for `current` (e.g. {@link renewOverRelay} at one of the relays). */
  renew(current: Identity): Promise<Identity>;
  /** install puts the new identity in use (write the files atomically, swap it in memory, re-authenticate live connections). */
  install(next: Identity): Promise<void>;
  logger?: RenewerLogger;
  now?: () => number;
  /** random returns [0, 1); tests pin it. */
  random?: () => number;
}

/** RenewerStatus is what a renewer reports for logs, metrics and readiness. */
export interface RenewerStatus {
  renewals: number;
  failures: number;
  /** consecutiveFailures counts failures since the last success. */
  consecutiveFailures: number;
  lastError: string | undefined;
  /** nextAttemptAt is when the next renewal is due (ms since the epoch), undefined when stopped. */
  nextAttemptAt: number | undefined;
  /** expiresAt is when the identity in use expires. */
  expiresAt: number;
}

const MIN_RETRY_MS = 1000;
const MAX_RETRY_MS = 60_000;

/**
 * IdentityRenewer renews an X509-SVID by itself: at half its lifetime (counted from when it was put
 * in use, or its notBefore if later) minus up to a tenth of it
 * (jitter, so a fleet issued at once does not renew at once), retrying a failure with full-jitter
 * exponential backoff (1 s doubling, at most a minute and at most a quarter of the time left) until
 * the certificate expires. `healthy()` turns false once renewal has been failing and less than a
 * quarter of the lifetime is left: readiness goes down before the identity does.
 */
export class IdentityRenewer {
  private readonly options: RenewerOptions;
  private readonly now: () => number;
  private readonly random: () => number;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private attempt: Promise<void> | undefined;
  private readonly state: RenewerStatus;
  // When the identity in use was put in use: a certificate is back-dated for clock skew, and that
  // margin is not lifetime to schedule by (with a 6-second SVID it would be most of it).
  private since: number;

  constructor(options: RenewerOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.since = this.now();
    this.state = { renewals: 0, failures: 0, consecutiveFailures: 0, lastError: undefined, nextAttemptAt: undefined, expiresAt: expiresAt(options.current()) };
  }

  /** start schedules the first renewal. */
  start(): this {
    if (this.running) return this;
    this.running = true;
    this.schedule(this.dueAt(this.options.current()));
    return this;
  }

  /** stop cancels the schedule and waits for a renewal in progress. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.state.nextAttemptAt = undefined;
    await this.attempt;
  }

  /** status is a copy of the renewer's counters and schedule. */
  status(): RenewerStatus {
    return { ...this.state };
  }

  /** healthy is false when renewal keeps failing and less than a quarter of the lifetime is left. */
  healthy(): boolean {
    if (this.state.consecutiveFailures === 0) return true;
    const identity = this.options.current();
    const to = expiresAt(identity);
    return to - this.now() > (to - this.startOf(identity)) / 4;
  }

  /** renewNow renews at once (outside the schedule); resolves when done, rejects on failure. */
  async renewNow(): Promise<void> {
    const current = this.options.current();
    const next = await this.options.renew(current);
    await this.options.install(next);
    this.since = this.now();
    this.state.renewals++;
    this.state.consecutiveFailures = 0;
    this.state.lastError = undefined;
    this.state.expiresAt = expiresAt(next);
  }

  private startOf(identity: Identity): number {
    return Math.max(Date.parse(identity.svid.leaf.validFrom), this.since);
  }

  private dueAt(identity: Identity): number {
    const from = this.startOf(identity);
    const life = expiresAt(identity) - from;
    return from + life / 2 - this.random() * (life / 10);
  }

  private schedule(at: number): void {
    if (!this.running) return;
    if (this.timer) clearTimeout(this.timer);
    this.state.nextAttemptAt = at;
    const delay = Math.max(0, at - this.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.attempt = this.run();
    }, Math.min(delay, 2 ** 31 - 1));
    this.timer.unref();
  }

  private async run(): Promise<void> {
    if (!this.running) return;
    const log = this.options.logger;
    try {
      await this.renewNow();
      const identity = this.options.current();
      log?.info({ id: identity.svid.id.toString(), expiresAt: new Date(this.state.expiresAt).toISOString() }, 'identity renewed');
      this.schedule(this.dueAt(identity));
    } catch (err) {
      this.state.failures++;
      this.state.consecutiveFailures++;
      this.state.lastError = (err as Error).message;
      const left = this.state.expiresAt - this.now();
      const cap = Math.max(MIN_RETRY_MS, Math.min(MAX_RETRY_MS, left / 4));
      const backoff = Math.min(cap, MIN_RETRY_MS * 2 ** (this.state.consecutiveFailures - 1));
      const delay = MIN_RETRY_MS / 2 + this.random() * backoff;
      log?.warn({ err: this.state.lastError, failures: this.state.consecutiveFailures, retryInMs: Math.round(delay), expiresInMs: left }, 'identity renewal failed; retrying');
      if (left > 0) this.schedule(this.now() + delay);
      else this.state.nextAttemptAt = undefined;
    }
  }
}

function expiresAt(identity: Identity): number {
  let at = Infinity;
  for (const c of identity.svid.certificates) at = Math.min(at, Date.parse(c.validTo));
  return at;
}
