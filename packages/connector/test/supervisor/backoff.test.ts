import { describe, expect, it } from 'vitest';
import { Backoff } from '../../src/index.js';

function clock(start = 1_000_000): { now: () => number; advance(ms: number): void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

describe('Backoff (full jitter)', () => {
  it.each([
    [0, 1000],
    [1, 2000],
    [2, 4000],
    [3, 8000],
    [4, 16_000],
    [5, 30_000],
    [6, 30_000],
    [40, 30_000],
  ])('attempt %i draws from [0, %i]', (attempt, ceiling) => {
    for (const r of [0, 0.5, 0.999_999]) {
      const b = new Backoff({ random: () => r });
      for (let i = 0; i < attempt; i++) b.nextDelay();
      expect(b.ceiling).toBe(ceiling);
      const d = b.nextDelay();
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(ceiling);
      expect(d).toBe(Math.floor(r * (ceiling + 1)));
    }
  });

  it('spreads delays over the whole range (jitter, not a fixed step)', () => {
    let seed = 42;
    const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const draws: number[] = [];
    for (let i = 0; i < 200; i++) {
      const b = new Backoff({ random });
      for (let k = 0; k < 5; k++) b.nextDelay();
      draws.push(b.nextDelay());
    }
    expect(Math.min(...draws)).toBeLessThan(3000);
    expect(Math.max(...draws)).toBeGreaterThan(27_000);
  });

  it('resets after the link was up for 60 s, not before', () => {
    const c = clock();
    const b = new Backoff({ random: () => 0.999_999, now: c.now });
    for (let i = 0; i < 5; i++) b.nextDelay();
    b.linkUp();
    c.advance(59_999);
    b.linkDown();
    expect(b.attempts).toBe(5);
    expect(b.ceiling).toBe(30_000);
    b.linkUp();
    c.advance(60_000);
    b.linkDown();
    expect(b.attempts).toBe(0);
    expect(b.nextDelay()).toBe(1000);
  });

  it('wait() sleeps for the drawn delay through the injected sleep, and passes the abort signal', async () => {
    const slept: number[] = [];
    const signals: (AbortSignal | undefined)[] = [];
    const b = new Backoff({ random: () => 0.5, sleep: async (ms, signal) => void (slept.push(ms), signals.push(signal)) });
    const ac = new AbortController();
    expect(await b.wait(ac.signal)).toBe(500);
    expect(await b.wait(ac.signal)).toBe(1000);
    expect(slept).toEqual([500, 1000]);
    expect(signals).toEqual([ac.signal, ac.signal]);
  });

  it('takes custom bounds and refuses nonsense', () => {
    const b = new Backoff({ baseMs: 10, capMs: 50, random: () => 0.999_999 });
    expect([b.nextDelay(), b.nextDelay(), b.nextDelay(), b.nextDelay()]).toEqual([10, 20, 40, 50]);
    expect(() => new Backoff({ baseMs: 0 })).toThrow(TypeError);
    expect(() => new Backoff({ baseMs: 100, capMs: 10 })).toThrow(TypeError);
  });
});
