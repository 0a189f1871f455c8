/** A clock that moves only when the test says so (SPEC: no sleeping to wait for time to pass). */
import type { Clock, Timers } from '../../src/clock.js';

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

export interface ManualTimers extends Timers {
  /** Moves time forward by `ms` milliseconds, firing each timer that falls due, in order. */
  advance(ms: number): void;
  /** The delays of the timers set so far, in order (milliseconds). */
  readonly delays: readonly number[];
  /** Timers set and neither fired nor cancelled. */
  pending(): number;
}

/** Timers that fire only when the test moves time (see src/clock.ts `Timers`). */
export function manualTimers(): ManualTimers {
  let now = 0;
  const delays: number[] = [];
  const due = new Set<{ at: number; fn: () => void }>();
  return {
    delays,
    after(ms, fn) {
      delays.push(ms);
      const timer = { at: now + ms, fn };
      due.add(timer);
      return () => void due.delete(timer);
    },
    advance(ms) {
      const until = now + ms;
      for (;;) {
        const next = [...due].filter((d) => d.at <= until).sort((a, b) => a.at - b.at)[0];
        if (next === undefined) break;
        due.delete(next);
        now = next.at;
        next.fn();
      }
      now = until;
    },
    pending: () => due.size,
  };
}
