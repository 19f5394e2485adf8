/** MAX_PERIOD_MS is the longest `per` accepted: one day. */
export const MAX_PERIOD_MS = 86_400_000;

const UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * parseDuration reads a rate-limit period: a number of milliseconds, or a string `<n><unit>` with
 * unit `ms`, `s`, `m` or `h` (`1s`, `1m`, `1h`, `250ms`, `10s`). Returns `undefined` for anything
 * else, for zero and for periods over a day.
 */
export function parseDuration(value: unknown): number | undefined {
  let ms: number;
  if (typeof value === 'number') ms = value;
  else if (typeof value === 'string') {
    const m = /^([1-9][0-9]{0,8})(ms|s|m|h)$/.exec(value);
    if (m === null) return undefined;
    ms = Number(m[1]) * (UNITS[m[2] as string] as number);
  } else return undefined;
  return Number.isInteger(ms) && ms > 0 && ms <= MAX_PERIOD_MS ? ms : undefined;
}
