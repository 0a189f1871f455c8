/**
 * The circuit breaker on its own, with a manual clock (SPEC §3.4): opens after N consecutive
 * failures, refuses while paused with the time left as Retry-After, lets exactly one probe through
 * when the pause ends, doubles the pause on a failed probe up to max_pause_s, and resets on success.
 */
import t, { type Test } from 'tap';
import { createBreaker } from '../../src/provider/breaker.js';
import { TollgateError } from '../../src/errors.js';
import { manualClock } from '../helpers/clock.js';

/** The refusal admit() throws, or a failed test if it let the call through. */
function refusal(t: Test, admit: () => unknown): TollgateError {
  try {
    admit();
  } catch (err) {
    t.type(err, TollgateError);
    t.equal((err as TollgateError).code, 'temporarily_unavailable');
    return err as TollgateError;
  }
  t.fail('expected the breaker to refuse');
  throw new Error('not refused');
}

t.test('opens after `failures` consecutive failures; a success in between resets the count', async (t) => {
  const clock = manualClock();
  const opened: number[] = [];
  const breaker = createBreaker({ failures: 3, maxPauseS: 30 }, clock, { onOpen: (ms) => opened.push(ms) });
  breaker.admit().failure();
  breaker.admit().failure();
  breaker.admit().success(); // an answer, active or not, is no failure
  breaker.admit().failure();
  breaker.admit().failure();
  t.equal(breaker.state(), 'closed', 'two failures after a success do not open it');
  breaker.admit().failure();
  t.equal(breaker.state(), 'open');
  t.same(opened, [1000], 'the first pause is 1 s');
  const err = refusal(t, () => breaker.admit());
  t.equal(err.retryAfterS, 1);
});

t.test('while open: refused with the remaining pause; then one probe, the others still refused', async (t) => {
  const clock = manualClock();
  const breaker = createBreaker({ failures: 1, maxPauseS: 30 }, clock);
  breaker.admit().failure();
  clock.advance(999);
  refusal(t, () => breaker.admit());
  clock.advance(1);
  const probe = breaker.admit();
  t.equal(breaker.state(), 'probing');
  const second = refusal(t, () => breaker.admit());
  t.equal(second.retryAfterS, 1, 'others are refused while the probe runs');
  probe.success();
  t.equal(breaker.state(), 'closed');
  breaker.admit().success();
});

t.test('a failed probe doubles the pause up to max_pause_s; success resets it to 1 s', async (t) => {
  const clock = manualClock();
  const opened: number[] = [];
  let closes = 0;
  const breaker = createBreaker({ failures: 2, maxPauseS: 5 }, clock, {
    onOpen: (ms) => opened.push(ms),
    onClose: () => closes++,
  });
  breaker.admit().failure();
  breaker.admit().failure();
  for (let i = 0; i < 4; i++) {
    const pauseMs = opened.at(-1)!;
    const err = refusal(t, () => breaker.admit());
    t.equal(err.retryAfterS, pauseMs / 1000, `Retry-After is the whole pause (${pauseMs} ms) right after opening`);
    clock.advance(pauseMs);
    breaker.admit().failure(); // the probe fails: open again, longer
  }
  t.same(opened, [1000, 2000, 4000, 5000, 5000], 'doubling, capped at max_pause_s');
  clock.advance(5000);
  breaker.admit().success();
  t.equal(closes, 1);
  breaker.admit().failure();
  breaker.admit().failure();
  t.same(opened.at(-1), 1000, 'the pause starts over at 1 s after a success');
  clock.advance(400);
  t.equal(refusal(t, () => breaker.admit()).retryAfterS, 1, 'Retry-After rounds the remaining 600 ms up');
});

t.test('outcomes of calls admitted before it opened change nothing while it is open', async (t) => {
  const clock = manualClock();
  const breaker = createBreaker({ failures: 2, maxPauseS: 30 }, clock);
  const early = [breaker.admit(), breaker.admit(), breaker.admit(), breaker.admit()];
  early[0]!.failure();
  early[1]!.failure();
  t.equal(breaker.state(), 'open');
  early[2]!.success();
  early[3]!.failure();
  t.equal(breaker.state(), 'open', 'a late success does not close it; only a probe does');
  clock.advance(1000);
  breaker.admit().success();
  t.equal(breaker.state(), 'closed');
});

t.test('a probe that never got to call gives its turn back to the next request', async (t) => {
  const clock = manualClock();
  const breaker = createBreaker({ failures: 1, maxPauseS: 30 }, clock);
  breaker.admit().failure();
  clock.advance(1000);
  breaker.admit().cancel();
  t.equal(breaker.state(), 'open');
  const probe = breaker.admit();
  t.equal(breaker.state(), 'probing', 'the next request probes at once');
  probe.success();
  probe.failure(); // a ticket settles once
  t.equal(breaker.state(), 'closed');
});

t.test('options are checked once, with a message that says what was expected', async (t) => {
  t.throws(
    () => createBreaker({ failures: 0, maxPauseS: 30 }, manualClock()),
    /expected failures to be a positive integer, got 0/,
  );
  t.throws(() => createBreaker({ failures: 1, maxPauseS: NaN }, manualClock()), /expected maxPauseS/);
});
