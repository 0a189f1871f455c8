/**
 * The shared cache's breaker, on an injected clock: it opens after consecutive failures only,
 * lets one probe through when a pause ends, pauses longer after a failed probe (up to the
 * longest pause), and closes on a success.
 */
import t from 'tap';
import { createSharedBreaker } from '../../src/cache/shared-breaker.js';

t.test('opens after three consecutive failures, probes once per pause, doubles, closes on success', async (t) => {
  let now = 0;
  const changes: [boolean, number][] = [];
  const b = createSharedBreaker({ now: () => now, onChange: (open, pause) => changes.push([open, pause]) });
  b.failure();
  b.failure();
  b.success(); // a success in between resets the count
  b.failure();
  b.failure();
  t.ok(b.allow(), 'two consecutive failures: still asking');
  b.failure();
  t.notOk(b.allow(), 'three: paused');
  t.ok(b.isOpen());
  now += 999;
  t.notOk(b.allow(), 'still within the first 1 s pause');
  now += 1;
  t.ok(b.allow(), 'the pause is over: one probe');
  t.notOk(b.allow(), 'and only one');
  b.failure();
  now += 1999;
  t.notOk(b.allow(), 'a failed probe pauses 2 s');
  now += 1;
  t.ok(b.allow());
  b.failure();
  for (let i = 0; i < 5; i++) {
    now += 10_000;
    t.ok(b.allow(), 'never more than 10 s between probes');
    b.failure();
  }
  now += 10_000;
  t.ok(b.allow());
  b.success();
  t.notOk(b.isOpen(), 'a successful probe closes it');
  t.ok(b.allow() && b.allow(), 'everyone may ask again');
  t.same(changes, [
    [true, 1000],
    [false, 0],
  ]);
  b.failure();
  b.failure();
  b.failure();
  t.same(changes.at(-1), [true, 1000], 'after closing, the pause starts at 1 s again');
});

t.test('failures of operations started before the breaker opened do not extend its pause', async (t) => {
  let now = 0;
  const b = createSharedBreaker({ now: () => now });
  for (let i = 0; i < 3; i++) b.failure();
  b.failure(); // a late timeout of an earlier operation
  b.failure();
  now += 1000;
  t.ok(b.allow(), 'the first pause still ends after 1 s');
});
