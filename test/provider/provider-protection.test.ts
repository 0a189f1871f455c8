/**
 * Provider protection through tollgate over HTTP (SPEC §3.4, §5): the limiter bounds the calls in
 * flight and refuses waiters after queue_timeout_ms; the breaker opens after consecutive
 * failures, refuses without calling (Retry-After = the pause left), probes once when the pause
 * ends, and lets stale-if-error answers through while it is open. The breaker's time is a manual
 * clock.
 */
import t, { type Test } from 'tap';
import type { ServerResponse } from 'node:http';
import { json, startFakeProvider, type FakeProvider } from '../helpers/fake-provider.js';
import { manualClock } from '../helpers/clock.js';
import { assertRefusal, bearer } from '../helpers/http.js';
import { providerEntry, requestsArrived, startTollgate, withTimeout } from '../helpers/tollgate.js';
import { startUpstream, type RecordingUpstream } from '../helpers/upstream.js';

async function setUp(t: Test) {
  const provider = await startFakeProvider();
  t.teardown(() => provider.close());
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  return { provider, upstream };
}

const entry = (provider: FakeProvider, extra: Record<string, unknown> = {}) =>
  providerEntry('acme', provider.issuer, { introspection_endpoint: provider.introspectionEndpoint, ...extra });

/** The provider answers active for tokens starting with `good`, 500 for the rest while `failing`. */
function scripted(provider: FakeProvider) {
  const state = { failing: false, held: [] as ServerResponse[] };
  provider.script((token, _req, res) => {
    if (state.failing) return json(res, 500, { error: 'server_error' });
    json(res, 200, token.startsWith('good') ? { active: true, sub: `user-${token}` } : { active: false });
  });
  return state;
}

t.test('max_concurrency: the provider never sees more calls at once; waiters are served in turn', async (t) => {
  const { provider, upstream } = await setUp(t);
  const held: ServerResponse[] = [];
  let arrived: () => void = () => {};
  provider.script((_token, _req, res) => {
    held.push(res);
    arrived();
  });
  // The provider's connection pool is sized max_concurrency too, so a cap alone does not show the
  // limiter. Its queue deadline does: measured on this manual clock, it refuses a waiter that the
  // pool would simply have sent. queue_timeout_ms is far beyond the test, so no real timer fires.
  const clock = manualClock();
  const gate = await startTollgate(
    t,
    { upstream: { url: upstream.url }, providers: [entry(provider, { max_concurrency: 2, queue_timeout_ms: 600_000 })] },
    { clock },
  );
  const heldAtOnce = (expected: number) =>
    withTimeout(
      (async () => {
        while (held.length < expected) await new Promise<void>((resolve) => (arrived = resolve));
      })(),
      5000,
      `${expected} calls never were at the provider at once`,
    );
  const answers = [1, 2, 3, 4, 5, 6].map((i) => gate.request('/', { headers: bearer(`good-${i}`) }));
  for (let released = 0; released < 6; released++) {
    // Wait until both slots are taken (fewer at the end), answer one; the next waiter takes its slot.
    await heldAtOnce(Math.min(2, 6 - released));
    t.ok(provider.calls.length - released <= 2, 'never more than 2 calls at the provider');
    json(held.shift()!, 200, { active: true });
  }
  const statuses = (await Promise.all(answers)).map((r) => r.status);
  t.same(statuses, [200, 200, 200, 200, 200, 200]);
  t.equal(provider.maxInFlight, 2);
  t.equal(await gate.metric('tollgate_introspection_requests_total', { provider: 'acme', result: 'active' }), 6);

  // Two calls held, a third request waiting: past its deadline, the freed slot refuses it instead
  // of calling (the pool alone would have sent it to the provider).
  const busy = [7, 8].map((i) => gate.request('/', { headers: bearer(`good-${i}`) }));
  await heldAtOnce(2);
  const late = gate.request('/', { headers: bearer('good-9') });
  await requestsArrived(gate.url, 1);
  // From its arrival to the limiter's queue is promise hops, no I/O: one turn of the loop.
  await new Promise((resolve) => setImmediate(resolve));
  clock.advance(600_001);
  json(held.shift()!, 200, { active: true });
  assertRefusal(t, await late, 503, 'temporarily_unavailable');
  t.notOk(provider.calls.includes('good-9'), 'the waiter past its deadline made no call');
  json(held.shift()!, 200, { active: true });
  t.same(
    (await Promise.all(busy)).map((r) => r.status),
    [200, 200],
  );
});

t.test('queue_timeout_ms: a request that gets no slot in time is refused 503, with no call made', async (t) => {
  const { provider, upstream } = await setUp(t);
  const held: ServerResponse[] = [];
  provider.script((_token, _req, res) => void held.push(res));
  const gate = await startTollgate(t, {
    upstream: { url: upstream.url },
    providers: [entry(provider, { max_concurrency: 1, queue_timeout_ms: 50, timeout_ms: 10_000 })],
  });
  const first = gate.request('/', { headers: bearer('good-1') });
  await withTimeout(
    (async () => {
      while (held.length === 0) await new Promise((r) => setTimeout(r, 5));
    })(),
    5000,
    'the first call never reached the provider',
  );
  const refused = await gate.request('/', { headers: bearer('good-2') });
  assertRefusal(t, refused, 503, 'temporarily_unavailable');
  t.equal(provider.calls.length, 1, 'the refused request made no call');
  json(held[0]!, 200, { active: true });
  t.equal((await first).status, 200);
  t.equal(upstream.requests.length, 1, 'nothing of the refused request reached the upstream');
  t.equal(await gate.metric('tollgate_introspection_requests_total', { provider: 'acme', result: 'error' }), 0);
  t.equal(await gate.metric('tollgate_requests_total', { outcome: 'provider_unavailable', provider: 'acme' }), 1);
});

t.test('circuit breaker: opens, refuses without calling, probes after the pause, closes on success', async (t) => {
  const { provider, upstream } = await setUp(t);
  const state = scripted(provider);
  const clock = manualClock();
  const gate = await startTollgate(
    t,
    { upstream: { url: upstream.url }, providers: [entry(provider, { circuit_breaker: { failures: 3, max_pause_s: 3 } })] },
    { clock },
  );
  const open = () => gate.metric('tollgate_provider_circuit_open', { provider: 'acme' });
  const errors = () => gate.metric('tollgate_introspection_requests_total', { provider: 'acme', result: 'error' });

  t.test('inactive answers are no failures', async (t) => {
    for (let i = 0; i < 5; i++) t.equal((await gate.request('/', { headers: bearer(`bad-${i}`) })).status, 401);
    t.equal(await open(), 0);
  });

  t.test('three failures open it', async (t) => {
    state.failing = true;
    for (let i = 0; i < 3; i++)
      assertRefusal(t, await gate.request('/', { headers: bearer(`good-f${i}`) }), 503, 'temporarily_unavailable');
    t.equal(await open(), 1);
    t.equal(await errors(), 3);
    const calls = provider.calls.length;
    const refused = await gate.request('/', { headers: bearer('good-x') });
    t.equal(assertRefusal(t, refused, 503, 'temporarily_unavailable'), 1, 'Retry-After: the 1 s pause');
    t.equal(provider.calls.length, calls, 'no call while open');
    t.equal(await errors(), 3, 'a refusal while open is not an introspection request');
    t.match(
      gate.logs.find((l) => l.msg?.toString().startsWith('circuit breaker open')),
      { provider: 'acme', pause_ms: 1000 },
    );
  });

  t.test('a failed probe doubles the pause; max_pause_s caps it', async (t) => {
    clock.advance(1000);
    const calls = provider.calls.length;
    assertRefusal(t, await gate.request('/', { headers: bearer('good-p1') }), 503, 'temporarily_unavailable');
    t.equal(provider.calls.length, calls + 1, 'one probe went through');
    t.equal(assertRefusal(t, await gate.request('/', { headers: bearer('good-y') }), 503, 'temporarily_unavailable'), 2);
    clock.advance(2000);
    await gate.request('/', { headers: bearer('good-p2') });
    t.equal(
      assertRefusal(t, await gate.request('/', { headers: bearer('good-y') }), 503, 'temporarily_unavailable'),
      3,
      'capped at 3 s',
    );
    t.equal(provider.calls.length, calls + 2);
  });

  t.test('a successful probe closes it and resets the pause', async (t) => {
    state.failing = false;
    clock.advance(3000);
    t.equal((await gate.request('/', { headers: bearer('good-ok') })).status, 200);
    t.equal(await open(), 0);
    t.equal((await gate.request('/', { headers: bearer('good-ok2') })).status, 200);
    state.failing = true;
    for (let i = 0; i < 3; i++) await gate.request('/', { headers: bearer(`good-g${i}`) });
    t.equal(assertRefusal(t, await gate.request('/', { headers: bearer('good-z') }), 503, 'temporarily_unavailable'), 1);
    t.equal(upstream.requests.length, 2, 'only the two allowed requests reached the upstream');
  });
});

t.test('stale-if-error still serves while the breaker is open', async (t) => {
  const { provider, upstream } = await setUp(t);
  const state = scripted(provider);
  const clock = manualClock();
  const gate = await startTollgate(
    t,
    {
      upstream: { url: upstream.url },
      providers: [entry(provider, { circuit_breaker: { failures: 1, max_pause_s: 30 } })],
      cache: { ttl_s: 10, stale_if_error_s: 60, refresh_ahead_s: 0 },
    },
    { clock },
  );
  t.equal((await gate.request('/', { headers: bearer('good-a') })).status, 200);
  state.failing = true;
  clock.advance(11_000);
  const stale = await gate.request('/', { headers: bearer('good-a') });
  t.equal(stale.status, 200, 'the failed refresh falls back to the stale answer');
  t.equal(await gate.metric('tollgate_provider_circuit_open', { provider: 'acme' }), 1, 'that failure opened the breaker');
  const calls = provider.calls.length;
  const whileOpen = await gate.request('/', { headers: bearer('good-a') });
  t.equal(whileOpen.status, 200, 'stale answer while open');
  t.equal(provider.calls.length, calls, 'and no call');
  t.same(
    gate.accessLines().map((l) => l.cache),
    ['miss', 'stale', 'stale'],
  );
  assertRefusal(t, await gate.request('/', { headers: bearer('good-b') }), 503, 'temporarily_unavailable');
  t.equal(upstream.requests.length, 3);
});
