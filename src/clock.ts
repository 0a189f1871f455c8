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
