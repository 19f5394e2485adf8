import { describe, expect, it } from 'vitest';
import { GuardError } from '../../src/errors.js';
import { parseDuration } from '../../src/rate/duration.js';
import { RateLimiter, compileRateRule, type RateDecision, type RateLimitSpec } from '../../src/rate/rate-limiter.js';

class FakeClock {
  t = 1_000_000;
  now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

const AGENT = 'spiffe://example.org/agent/support/1';
const OTHER = 'spiffe://example.org/agent/support/2';

function ok(d: RateDecision): boolean {
  return d.ok;
}

describe('parseDuration', () => {
  it.each([
    ['1s', 1000],
    ['1m', 60_000],
    ['1h', 3_600_000],
    ['250ms', 250],
    ['10s', 10_000],
    ['24h', 86_400_000],
    [1500, 1500],
  ])('%j → %d ms', (v, ms) => {
    expect(parseDuration(v)).toBe(ms);
  });
  it.each(['', '1', 's', '0s', '1.5s', '-1s', '1d', '1 s', '01s', '25h', 0, -5, 1.5, 86_400_001, null, {}])('%j is refused', (v) => {
    expect(parseDuration(v)).toBeUndefined();
  });
});

describe('compileRateRule', () => {
  it('compiles calls/per and concurrent', () => {
    expect(compileRateRule('r1', { calls: 10, per: '1m', concurrent: 2 })).toEqual({ id: 'r1', calls: 10, perMs: 60_000, concurrent: 2 });
    expect(compileRateRule('r2', { concurrent: 1 })).toEqual({ id: 'r2', calls: undefined, perMs: undefined, concurrent: 1 });
  });

  it.each([
    [{ calls: 10 }, 'per'],
    [{ per: '1s' }, 'calls'],
    [{ calls: 0, per: '1s' }, 'calls'],
    [{ calls: 1.5, per: '1s' }, 'calls'],
    [{ calls: 10, per: '1d' }, 'per'],
    [{ calls: 10, per: '1s', burst: 5 }, 'burst'],
    [{ concurrent: 0 }, 'concurrent'],
    [{}, 'rate'],
  ])('%j → GUARD_ERR_RATE_SPEC at %s', (spec, key) => {
    let err: unknown;
    try {
      compileRateRule('r', spec as RateLimitSpec, 'rules[3].rate');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GuardError);
    expect((err as GuardError).code).toBe('GUARD_ERR_RATE_SPEC');
    expect((err as GuardError).path).toBe(key === 'rate' ? 'rules[3].rate.rate' : `rules[3].rate.${key}`);
  });
});

describe('RateLimiter: calls per period (token bucket)', () => {
  it('lets a burst of `calls` through, then refuses with an exact retry-after', () => {
    const clock = new FakeClock();
    const rl = new RateLimiter({ now: clock.now });
    const rule = compileRateRule('r', { calls: 3, per: '1s' });
    expect([1, 2, 3].map(() => ok(rl.acquire(AGENT, rule)))).toEqual([true, true, true]);
    expect(rl.acquire(AGENT, rule)).toEqual({ ok: false, retryAfterMs: 334, limit: 'rate' });
    clock.advance(333);
    expect(rl.acquire(AGENT, rule)).toEqual({ ok: false, retryAfterMs: 1, limit: 'rate' });
    clock.advance(1);
    expect(ok(rl.acquire(AGENT, rule))).toBe(true);
    expect(ok(rl.acquire(AGENT, rule))).toBe(false);
  });

  it('averages exactly calls/per over a long run', () => {
    const clock = new FakeClock();
    const rl = new RateLimiter({ now: clock.now });
    const rule = compileRateRule('r', { calls: 10, per: '1m' });
    let passed = 0;
    for (let ms = 0; ms < 600_000; ms += 100) {
      if (rl.acquire(AGENT, rule).ok) passed++;
      clock.advance(100);
    }
    // 10 to start with, then 10 per minute for ten minutes.
    expect(passed).toBe(10 + 100 - 1);
  });

  it('keys by agent and by rule', () => {
    const clock = new FakeClock();
    const rl = new RateLimiter({ now: clock.now });
    const a = compileRateRule('a', { calls: 1, per: '1h' });
    const b = compileRateRule('b', { calls: 1, per: '1h' });
    expect(ok(rl.acquire(AGENT, a))).toBe(true);
    expect(ok(rl.acquire(AGENT, a))).toBe(false);
    expect(ok(rl.acquire(OTHER, a))).toBe(true);
    expect(ok(rl.acquire(AGENT, b))).toBe(true);
    expect(rl.size).toBe(3);
  });

  it('a reload that lowers the limit takes effect at once', () => {
    const clock = new FakeClock();
    const rl = new RateLimiter({ now: clock.now });
    expect(ok(rl.acquire(AGENT, compileRateRule('r', { calls: 100, per: '1s' })))).toBe(true);
    const lower = compileRateRule('r', { calls: 2, per: '1s' });
    expect([1, 2, 3].map(() => ok(rl.acquire(AGENT, lower)))).toEqual([true, true, false]);
  });

  it('a clock that steps back does not mint tokens', () => {
    const clock = new FakeClock();
    const rl = new RateLimiter({ now: clock.now });
    const rule = compileRateRule('r', { calls: 1, per: '1s' });
    expect(ok(rl.acquire(AGENT, rule))).toBe(true);
    clock.advance(-10_000);
    expect(ok(rl.acquire(AGENT, rule))).toBe(false);
  });
});

describe('RateLimiter: concurrency', () => {
  it('counts in-flight calls; release frees a slot once, however often it is called', () => {
    const clock = new FakeClock();
    const rl = new RateLimiter({ now: clock.now, concurrentRetryAfterMs: 250 });
    const rule = compileRateRule('r', { concurrent: 2 });
    const a = rl.acquire(AGENT, rule);
    const b = rl.acquire(AGENT, rule);
    expect(ok(a) && ok(b)).toBe(true);
    expect(rl.acquire(AGENT, rule)).toEqual({ ok: false, retryAfterMs: 250, limit: 'concurrent' });
    expect(ok(rl.acquire(OTHER, rule))).toBe(true);
    if (!a.ok) throw new Error('unreachable');
    a.release();
    a.release();
    const c = rl.acquire(AGENT, rule);
    expect(ok(c)).toBe(true);
    expect(ok(rl.acquire(AGENT, rule))).toBe(false);
  });

  it('a call refused for concurrency takes no token; one refused for rate takes no slot', () => {
    const clock = new FakeClock();
    const rl = new RateLimiter({ now: clock.now });
    const rule = compileRateRule('r', { calls: 2, per: '1s', concurrent: 1 });
    const first = rl.acquire(AGENT, rule);
    expect(rl.acquire(AGENT, rule)).toMatchObject({ ok: false, limit: 'concurrent' });
    if (first.ok) first.release();
    expect(ok(rl.acquire(AGENT, rule))).toBe(true); // the second token was still there
    const held = rl.acquire(AGENT, rule);
    expect(held).toMatchObject({ ok: false, limit: 'concurrent' });
  });

  it('rate refusal leaves the concurrency count alone', () => {
    const clock = new FakeClock();
    const rl = new RateLimiter({ now: clock.now });
    const rule = compileRateRule('r', { calls: 1, per: '1s', concurrent: 5 });
    const a = rl.acquire(AGENT, rule);
    if (a.ok) a.release();
    for (let i = 0; i < 10; i++) expect(rl.acquire(AGENT, rule)).toMatchObject({ ok: false, limit: 'rate' });
    clock.advance(1000);
    const held = [1, 2, 3, 4, 5].map(() => {
      clock.advance(1000);
      return rl.acquire(AGENT, rule);
    });
    expect(held.every(ok)).toBe(true);
    clock.advance(1000);
    expect(rl.acquire(AGENT, rule)).toMatchObject({ ok: false, limit: 'concurrent' });
  });
});

describe('RateLimiter: bounded memory', () => {
  it('evicts idle pairs (full bucket, nothing in flight) on its sweep interval', () => {
    const clock = new FakeClock();
    const rl = new RateLimiter({ now: clock.now, sweepIntervalMs: 10_000 });
    const rule = compileRateRule('r', { calls: 1, per: '1s', concurrent: 1 });
    const held = rl.acquire('busy', rule);
    for (let i = 0; i < 100; i++) {
      const d = rl.acquire(`agent-${i}`, rule);
      if (d.ok) d.release();
    }
    expect(rl.size).toBe(101);
    clock.advance(10_000);
    rl.acquire('trigger', rule);
    // Only the pair with a call in flight survives the sweep (plus the one that triggered it).
    expect(rl.size).toBe(2);
    expect(held.ok).toBe(true);
    if (held.ok) held.release();
    expect(rl.sweep()).toBe(1);
  });

  it('does not evict a pair whose bucket is still refilling, so eviction never resets a limit', () => {
    const clock = new FakeClock();
    const rl = new RateLimiter({ now: clock.now, sweepIntervalMs: 1000 });
    const rule = compileRateRule('r', { calls: 1, per: '1h' });
    expect(ok(rl.acquire(AGENT, rule))).toBe(true);
    clock.advance(60_000);
    expect(rl.sweep()).toBe(0);
    expect(ok(rl.acquire(AGENT, rule))).toBe(false);
    clock.advance(3_600_000);
    expect(rl.sweep()).toBe(1);
  });

  it('refuses new pairs when maxKeys busy pairs are tracked', () => {
    const clock = new FakeClock();
    const rl = new RateLimiter({ now: clock.now, maxKeys: 3 });
    const rule = compileRateRule('r', { calls: 1, per: '1h' });
    for (const a of ['a', 'b', 'c']) expect(ok(rl.acquire(a, rule))).toBe(true);
    expect(rl.acquire('d', rule)).toMatchObject({ ok: false, limit: 'rate' });
    expect(rl.acquire('a', rule)).toMatchObject({ ok: false, limit: 'rate' });
    clock.advance(3_600_000);
    expect(ok(rl.acquire('d', rule))).toBe(true);
    expect(rl.size).toBe(1);
  });

  it('validates its options', () => {
    expect(() => new RateLimiter({ maxKeys: 0 })).toThrow(TypeError);
    expect(() => new RateLimiter({ sweepIntervalMs: 0 })).toThrow(TypeError);
  });
});
