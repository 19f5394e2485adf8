/**
 * Expiry of an authenticated identity on a live connection. TLS checks a certificate's dates once,
 * at the handshake; a link or session can outlive its certificate by hours. Each connection
 * therefore arms a timer for the moment its peer's certificate path stops being valid, and closes
 * with 4402 then (docs/errors.md), unless it was renewed in place first.
 */

// setTimeout fires at once for delays above 2^31-1 ms (~24.8 days); longer waits are chained.
const MAX_TIMER_MS = 2 ** 31 - 1;

/** ExpiryWatch is an armed expiry timer. */
export interface ExpiryWatch {
  /** cancel disarms it (the connection ended, or was renewed and re-armed). */
  cancel(): void;
}

/**
 * watchExpiry calls `onExpired` once `expiresAt` has passed by the `now` clock; at once (on the
 * next tick) when it already has. The timer does not keep the process alive.
 */
export function watchExpiry(expiresAt: Date, onExpired: () => void, now: () => number = Date.now): ExpiryWatch {
  let timer: NodeJS.Timeout | undefined;
  let cancelled = false;
  const arm = (): void => {
    if (cancelled) return;
    const left = expiresAt.getTime() - now();
    if (left <= 0) {
      timer = setTimeout(() => {
        if (!cancelled) onExpired();
      }, 0);
    } else {
      timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
    }
    timer.unref();
  };
  arm();
  return {
    cancel(): void {
      cancelled = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
}
