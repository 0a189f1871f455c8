/**
 * Stops asking a Redis that keeps failing (timeouts, dropped connections), so a slow or stopped
 * Redis costs requests nothing: after `failures` consecutive failures no operation is attempted
 * for a pause of `firstPauseMs`, doubling up to `maxPauseMs`; when a pause ends one operation
 * probes, and its success closes the breaker. Time is injected (a monotonic clock in production).
 */
export interface SharedBreaker {
  /** May an operation be attempted now? In a half-open state only the one probe may. */
  allow(): boolean;
  success(): void;
  failure(): void;
  /** True while operations are being skipped (open, or half-open with its probe out). */
  isOpen(): boolean;
}

export interface SharedBreakerOptions {
  /** Consecutive failures that open the breaker (default 3). */
  failures?: number;
  /** First pause (milliseconds; default 1,000). */
  firstPauseMs?: number;
  /** Longest pause (milliseconds; default 10,000): a restarted Redis is used again within it. */
  maxPauseMs?: number;
  /** Milliseconds on a monotonic scale. */
  now: () => number;
  /** Told when the breaker opens (with the pause) and when it closes again. */
  onChange?: (open: boolean, pauseMs: number) => void;
}

export function createSharedBreaker(options: SharedBreakerOptions): SharedBreaker {
  const threshold = options.failures ?? 3;
  const firstPauseMs = options.firstPauseMs ?? 1000;
  const maxPauseMs = options.maxPauseMs ?? 10_000;
  const { now, onChange } = options;
  let consecutive = 0;
  let pauseMs = 0;
  let openUntil = 0;
  let open = false;
  let probing = false;

  const trip = () => {
    pauseMs = pauseMs === 0 ? firstPauseMs : Math.min(pauseMs * 2, maxPauseMs);
    openUntil = now() + pauseMs;
    probing = false;
    if (!open) {
      open = true;
      onChange?.(true, pauseMs);
    }
  };

  return {
    allow() {
      if (!open) return true;
      if (probing || now() < openUntil) return false;
      probing = true;
      return true;
    },
    success() {
      consecutive = 0;
      if (!open) return;
      open = false;
      probing = false;
      pauseMs = 0;
      onChange?.(false, 0);
    },
    failure() {
      consecutive += 1;
      // A failed probe pauses again at once, longer; a closed breaker waits for the threshold.
      if (open ? probing : consecutive >= threshold) trip();
    },
    isOpen: () => open,
  };
}
