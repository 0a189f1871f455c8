/** A clock that moves only when the test says so (SPEC: no sleeping to wait for time to pass). */
import type { Clock } from '../../src/clock.js';

export interface ManualClock extends Clock {
  /** Moves time forward by `ms` milliseconds. */
  advance(ms: number): void;
  /** Seconds since the epoch, as claims write time. */
  nowS(): number;
}

export function manualClock(startMs = Date.UTC(2026, 0, 1)): ManualClock {
  let now = startMs;
  return {
    now: () => now,
    nowS: () => Math.floor(now / 1000),
    advance(ms) {
      now += ms;
    },
  };
}
