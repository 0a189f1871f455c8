/**
 * SPEC §3.4: at most `max_concurrency` introspection calls in flight to one provider. A call that
 * finds every slot taken waits its turn (first come, first served) for at most `queue_timeout_ms`,
 * then fails with 503: a flood of random tokens becomes a bounded trickle at the tenant's
 * provider, and a waiting client hears "no" quickly instead of hanging.
 */
import { TollgateError } from '../errors.js';
import type { Clock } from '../clock.js';

export interface LimiterOptions {
  /** Calls in flight at once (`max_concurrency`); a positive integer. */
  maxConcurrency: number;
  /** Longest wait for a slot (`queue_timeout_ms`, milliseconds); 0 = never wait. */
  queueTimeoutMs: number;
}

/** Real timers by default; the waiting deadline is also checked against the clock when a slot frees. */
export interface LimiterDeps {
  clock: Clock;
  setTimer?: (fn: () => void, ms: number) => () => void;
}

export interface Limiter {
  /** Runs `call` once a slot is free; rejects with `temporarily_unavailable` if none frees in time. */
  run<T>(call: () => Promise<T>): Promise<T>;
  /** Calls running now. */
  inFlight(): number;
  /** Calls waiting for a slot now. */
  waiting(): number;
}

interface Waiter {
  readonly deadlineMs: number;
  readonly grant: () => void;
  readonly refuse: () => void;
  cancelTimer: () => void;
}

const realTimer = (fn: () => void, ms: number) => {
  const timer = setTimeout(fn, ms);
  timer.unref();
  return () => clearTimeout(timer);
};

export function createLimiter(options: LimiterOptions, deps: LimiterDeps): Limiter {
  const { maxConcurrency, queueTimeoutMs } = options;
  if (!Number.isInteger(maxConcurrency) || maxConcurrency < 1) {
    throw new TypeError(`expected maxConcurrency to be a positive integer, got ${maxConcurrency}`);
  }
  if (!Number.isFinite(queueTimeoutMs) || queueTimeoutMs < 0) {
    throw new TypeError(`expected queueTimeoutMs to be a non-negative finite number, got ${queueTimeoutMs}`);
  }
  const { clock } = deps;
  const setTimer = deps.setTimer ?? realTimer;
  let running = 0;
  // A Set keeps insertion order (FIFO) and removes a timed-out waiter in O(1).
  const queue = new Set<Waiter>();

  const busy = () => new TollgateError('temporarily_unavailable', 'the provider is busy; try again shortly', { retryAfterS: 1 });

  /** A finished call hands its slot straight to the oldest waiter still in time. */
  const release = () => {
    const now = clock.now();
    for (const waiter of queue) {
      queue.delete(waiter);
      waiter.cancelTimer();
      if (now > waiter.deadlineMs) {
        waiter.refuse();
        continue;
      }
      waiter.grant(); // the slot passes on: `running` stays the same
      return;
    }
    running--;
  };

  const acquire = (): Promise<void> => {
    if (running < maxConcurrency) {
      running++;
      return Promise.resolve();
    }
    if (queueTimeoutMs === 0) return Promise.reject(busy());
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        deadlineMs: clock.now() + queueTimeoutMs,
        grant: resolve,
        refuse: () => reject(busy()),
        cancelTimer: () => {},
      };
      queue.add(waiter);
      waiter.cancelTimer = setTimer(() => {
        if (queue.delete(waiter)) waiter.refuse();
      }, queueTimeoutMs);
    });
  };

  return {
    async run(call) {
      await acquire();
      try {
        return await call();
      } finally {
        release();
      }
    },
    inFlight: () => running,
    waiting: () => queue.size,
  };
}
