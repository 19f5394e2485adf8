import { GuardError } from '../errors.js';
import { parseDuration } from './duration.js';

/** RateLimitSpec is a rule's `rate` as written in a policy: `{ calls, per, concurrent }`. */
export interface RateLimitSpec {
  /** calls is how many calls may start per `per`; give both or neither. */
  calls?: number;
  /** per is the period: `1s`, `1m`, `1h`, `<n>ms|s|m|h`, or milliseconds. */
  per?: string | number;
  /** concurrent is how many calls may be in flight at once. */
  concurrent?: number;
}

/** RateRule is a compiled {@link RateLimitSpec}, keyed by the policy rule's id. */
export interface RateRule {
  readonly id: string;
  /** calls per `perMs`; both absent when the rule limits only concurrency. */
  readonly calls: number | undefined;
  readonly perMs: number | undefined;
  readonly concurrent: number | undefined;
}

/** Release ends one in-flight call; calling it again does nothing. */
export type Release = () => void;

/**
 * RateDecision is the answer of {@link RateLimiter.acquire}. When refused, `retryAfterMs` says
 * when a call could pass: exact for `rate`; for `concurrent` it is a hint (calls end when they end).
 */
export type RateDecision =
  | { readonly ok: true; readonly release: Release }
  | { readonly ok: false; readonly retryAfterMs: number; readonly limit: 'rate' | 'concurrent' };

const MAX_CALLS = 1_000_000;
const MAX_CONCURRENT = 100_000;

/**
 * compileRateRule validates a rule's `rate` spec. Throws `GUARD_ERR_RATE_SPEC` with `path` for
 * unknown keys, `calls` without `per` (or the reverse), a period that does not parse or exceeds a
 * day, counts that are not positive integers, or a spec that limits nothing.
 */
export function compileRateRule(id: string, spec: RateLimitSpec, where?: string): RateRule {
  const at = where ? `${where}.` : '';
  const bad = (key: string, rule: string): never => {
    throw new GuardError('GUARD_ERR_RATE_SPEC', `rate: ${at}${key}: ${rule}`, { path: `${at}${key}` });
  };
  if (typeof id !== 'string' || id.length === 0) throw new TypeError('rate: a rule id is required');
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) return bad('rate', 'must be a map with calls, per, concurrent');
  for (const k of Object.keys(spec)) if (k !== 'calls' && k !== 'per' && k !== 'concurrent') bad(k, 'unknown key (use calls, per, concurrent)');
  const int = (v: unknown, key: string, max: number): number =>
    typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= max ? v : bad(key, `must be a whole number from 1 to ${max}`);
  let calls: number | undefined;
  let perMs: number | undefined;
  if (spec.calls !== undefined || spec.per !== undefined) {
    if (spec.calls === undefined) bad('calls', 'is required with per');
    if (spec.per === undefined) bad('per', 'is required with calls');
    calls = int(spec.calls, 'calls', MAX_CALLS);
    perMs = parseDuration(spec.per) ?? bad('per', 'must be a period such as 1s, 1m, 1h, 500ms (at most 24h) or a number of milliseconds');
  }
  const concurrent = spec.concurrent === undefined ? undefined : int(spec.concurrent, 'concurrent', MAX_CONCURRENT);
  if (calls === undefined && concurrent === undefined) bad('rate', 'limits nothing: give calls and per, or concurrent');
  return Object.freeze({ id, calls, perMs, concurrent });
}

/** RateLimiterOptions tune a {@link RateLimiter}. */
export interface RateLimiterOptions {
  /** now returns a monotonic time in ms (default `performance.now`). */
  now?: () => number;
  /** maxKeys bounds the (agent, rule) pairs tracked at once (default 100 000). */
  maxKeys?: number;
  /** sweepIntervalMs is how often idle pairs are evicted (default 60 s). */
  sweepIntervalMs?: number;
  /** concurrentRetryAfterMs is the hint given when the concurrency limit refuses (default 1000). */
  concurrentRetryAfterMs?: number;
}

interface KeyState {
  /** level of the bucket in units where one call costs `perMs` (integers when the clock is). */
  level: number;
  updated: number;
  inflight: number;
  /** the rule's calls and period at the last acquire (0 when it limits only concurrency), for eviction. */
  calls: number;
  perMs: number;
}

const NOOP_RELEASE: Release = () => {};

/**
 * RateLimiter enforces `calls` per `per` and `concurrent` in-flight calls per (agent, rule). Calls
 * are never queued: each `acquire` answers at once, yes (with a `release` for the concurrency
 * count) or no (with when to retry).
 *
 * The rate is a token bucket: it holds up to `calls` tokens, refills continuously at `calls` per
 * `per`, and each call takes one. A burst of `calls` passes at once, and over any window of length
 * `per` at most `2 × calls` pass (a full bucket, then a full refill); over a long run the average
 * is exactly `calls / per`. Memory is constant per pair (a sliding log would keep every call).
 * Pairs whose bucket is full again and that have nothing in flight are indistinguishable from new
 * ones and are evicted; if `maxKeys` pairs are still busy a new pair is refused (`limit: 'rate'`).
 *
 * @example
 * const limiter = new RateLimiter();
 * const rule = compileRateRule('support-reads-crm', { calls: 10, per: '1s', concurrent: 2 });
 * const d = limiter.acquire(agentId, rule);
 * if (!d.ok) return refuse(d.limit, d.retryAfterMs);
 * try { await forward(); } finally { d.release(); }
 */
export class RateLimiter {
  private readonly now: () => number;
  private readonly maxKeys: number;
  private readonly sweepIntervalMs: number;
  private readonly concurrentRetryAfterMs: number;
  private readonly rules = new Map<string, Map<string, KeyState>>();
  private count = 0;
  private lastSweep: number;

  constructor(options: RateLimiterOptions = {}) {
    this.now = options.now ?? (() => performance.now());
    this.maxKeys = options.maxKeys ?? 100_000;
    this.sweepIntervalMs = options.sweepIntervalMs ?? 60_000;
    this.concurrentRetryAfterMs = options.concurrentRetryAfterMs ?? 1000;
    if (!Number.isInteger(this.maxKeys) || this.maxKeys < 1) throw new TypeError('rate: maxKeys must be a positive integer');
    if (!(this.sweepIntervalMs > 0)) throw new TypeError('rate: sweepIntervalMs must be positive');
    if (!(this.concurrentRetryAfterMs >= 0)) throw new TypeError('rate: concurrentRetryAfterMs must be ≥ 0');
    this.lastSweep = this.now();
  }

  /** size is the number of (agent, rule) pairs tracked. */
  get size(): number {
    return this.count;
  }

  /**
   * acquire asks to start one call by `agent` under `rule`. The concurrency limit is checked
   * first (a refused call takes no token), then the rate. On `ok`, call `release` when the call
   * ends (response, error or session close) — exactly once matters only for concurrency.
   */
  acquire(agent: string, rule: RateRule): RateDecision {
    const now = this.now();
    if (now - this.lastSweep >= this.sweepIntervalMs) this.sweep(now);
    let st = this.rules.get(rule.id)?.get(agent);
    if (st === undefined) {
      if (this.count >= this.maxKeys) {
        // Full: sweep at most once a second, so a flood of new pairs cannot make every call O(n).
        if (now - this.lastSweep >= 1000) this.sweep(now);
        if (this.count >= this.maxKeys) return { ok: false, retryAfterMs: this.concurrentRetryAfterMs, limit: 'rate' };
      }
      const calls = rule.calls ?? 0;
      const perMs = rule.perMs ?? 0;
      st = { level: calls * perMs, updated: now, inflight: 0, calls, perMs };
      let byAgent = this.rules.get(rule.id);
      if (byAgent === undefined) {
        byAgent = new Map();
        this.rules.set(rule.id, byAgent);
      }
      byAgent.set(agent, st);
      this.count++;
    }
    if (rule.concurrent !== undefined && st.inflight >= rule.concurrent) {
      return { ok: false, retryAfterMs: this.concurrentRetryAfterMs, limit: 'concurrent' };
    }
    if (rule.calls !== undefined) {
      const per = rule.perMs as number;
      const cap = rule.calls * per;
      // A reload may have lowered the limit: never hold more than the current capacity.
      const level = Math.min(cap, st.level + Math.max(0, now - st.updated) * rule.calls);
      st.updated = now;
      st.calls = rule.calls;
      st.perMs = per;
      if (level < per) {
        st.level = level;
        return { ok: false, retryAfterMs: Math.max(1, Math.ceil((per - level) / rule.calls)), limit: 'rate' };
      }
      st.level = level - per;
    }
    if (rule.concurrent === undefined) return { ok: true, release: NOOP_RELEASE };
    st.inflight++;
    const state = st;
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        state.inflight--;
      },
    };
  }

  /**
   * sweep evicts every idle pair — nothing in flight and a bucket that has refilled — and returns
   * how many it evicted. Runs by itself every `sweepIntervalMs` and when `maxKeys` is reached.
   */
  sweep(now: number = this.now()): number {
    this.lastSweep = now;
    let evicted = 0;
    for (const [id, byAgent] of this.rules) {
      for (const [agent, st] of byAgent) {
        if (st.inflight > 0) continue;
        // Full again (as of the rule it was last used with)? Then it equals a fresh state.
        if (st.calls > 0 && st.level + Math.max(0, now - st.updated) * st.calls < st.calls * st.perMs) continue;
        byAgent.delete(agent);
        evicted++;
      }
      if (byAgent.size === 0) this.rules.delete(id);
    }
    this.count -= evicted;
    return evicted;
  }
}
