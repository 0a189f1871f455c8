/**
 * Wall-clock time, injected everywhere a decision depends on it (cache lifetimes, `exp`/`nbf`,
 * circuit-breaker pauses), so tests move time forward instead of sleeping. lru-cache's `perf`
 * option has the same shape.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

export const systemClock: Clock = Object.freeze({ now: () => Date.now() });

/**
 * Timers, injected where a decision waits for time to pass (the drain's first-request grace and
 * timeout), so a test moves time forward instead of sleeping and sees exactly when each fires.
 */
export interface Timers {
  /** Calls `fn` once after `ms` milliseconds; the returned function cancels it. */
  after(ms: number, fn: () => void): () => void;
}

export const systemTimers: Timers = Object.freeze({
  after(ms: number, fn: () => void) {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
});
