/**
 * The per-provider limiter on its own (SPEC §3.4): never more than max_concurrency calls at once,
 * waiters served first come first served, and a waiter that gets no slot within queue_timeout_ms
 * refused with 503. Timers and the clock are injected: nothing here waits for real time.
 */
import t from 'tap';
import { createLimiter } from '../../src/provider/limiter.js';
import { TollgateError } from '../../src/errors.js';
import { manualClock } from '../helpers/clock.js';

/** A promise the test settles by hand, and an injected timer the test fires by hand. */
function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
function manualTimers() {
  const pending = new Set<() => void>();
  return {
    setTimer: (fn: () => void) => {
      pending.add(fn);
      return () => pending.delete(fn);
    },
    fireAll() {
      for (const fn of [...pending]) {
        pending.delete(fn);
        fn();
      }
    },
    get size() {
      return pending.size;
    },
  };
}
const tick = () => new Promise((r) => setImmediate(r));

t.test('at most maxConcurrency run; the rest wait and run in arrival order', async (t) => {
  const timers = manualTimers();
  const limiter = createLimiter({ maxConcurrency: 2, queueTimeoutMs: 1000 }, { clock: manualClock(), setTimer: timers.setTimer });
  const gates = [0, 1, 2, 3].map(() => deferred());
  const started: number[] = [];
  let running = 0;
  let most = 0;
  const results = gates.map((gate, i) =>
    limiter.run(async () => {
      started.push(i);
      most = Math.max(most, ++running);
      await gate.promise;
      running--;
      return i;
    }),
  );
  await tick();
  t.same(started, [0, 1]);
  t.equal(limiter.inFlight(), 2);
  t.equal(limiter.waiting(), 2);
  gates[1]!.resolve();
  await tick();
  t.same(started, [0, 1, 2], 'a freed slot goes to the oldest waiter');
  gates[0]!.resolve();
  gates[2]!.resolve();
  gates[3]!.resolve();
  t.same(await Promise.all(results), [0, 1, 2, 3]);
  t.equal(most, 2);
  t.equal(limiter.inFlight(), 0);
  t.equal(timers.size, 0, 'no timer is left behind');
});

t.test('a waiter past queueTimeoutMs is refused with 503, and never runs', async (t) => {
  const timers = manualTimers();
  const limiter = createLimiter({ maxConcurrency: 1, queueTimeoutMs: 50 }, { clock: manualClock(), setTimer: timers.setTimer });
  const gate = deferred();
  const first = limiter.run(() => gate.promise);
  let ran = false;
  const waiting = limiter.run(async () => {
    ran = true;
  });
  timers.fireAll();
  const err = await waiting.catch((e: unknown) => e);
  t.type(err, TollgateError);
  t.equal((err as TollgateError).code, 'temporarily_unavailable');
  t.equal((err as TollgateError).kind.status, 503);
  t.equal(limiter.waiting(), 0);
  gate.resolve();
  await first;
  t.notOk(ran);
  t.equal(limiter.inFlight(), 0, 'the slot is free again');
});

t.test('a slot that frees after a waiter’s deadline (by the clock) is not given to it', async (t) => {
  const clock = manualClock();
  const timers = manualTimers();
  const limiter = createLimiter({ maxConcurrency: 1, queueTimeoutMs: 50 }, { clock, setTimer: timers.setTimer });
  const gate = deferred();
  const first = limiter.run(() => gate.promise);
  const late = limiter.run(async () => 'late');
  clock.advance(51); // the timer has not fired yet (event loop busy), but the deadline has passed
  const third = limiter.run(async () => 'third'); // queued after the advance: still in time
  gate.resolve();
  await first;
  t.match(await late.catch((e: unknown) => e), { code: 'temporarily_unavailable' });
  t.equal(await third, 'third');
});

t.test('queueTimeoutMs 0: a full limiter refuses at once', async (t) => {
  const limiter = createLimiter({ maxConcurrency: 1, queueTimeoutMs: 0 }, { clock: manualClock() });
  const gate = deferred();
  const first = limiter.run(() => gate.promise);
  await t.rejects(
    limiter.run(async () => 1),
    { code: 'temporarily_unavailable' },
  );
  gate.resolve();
  await first;
});

t.test('a failing call frees its slot', async (t) => {
  const limiter = createLimiter({ maxConcurrency: 1, queueTimeoutMs: 0 }, { clock: manualClock() });
  await t.rejects(
    limiter.run(() => Promise.reject(new Error('boom'))),
    /boom/,
  );
  t.equal(await limiter.run(async () => 2), 2);
});

t.test('options are checked once', async (t) => {
  t.throws(() => createLimiter({ maxConcurrency: 0, queueTimeoutMs: 1 }, { clock: manualClock() }), /expected maxConcurrency/);
  t.throws(() => createLimiter({ maxConcurrency: 1, queueTimeoutMs: -1 }, { clock: manualClock() }), /expected queueTimeoutMs/);
});
