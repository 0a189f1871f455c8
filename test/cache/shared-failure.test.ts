/**
 * Redis is never a point of failure: a real redis-server killed, restarted, paused (SIGSTOP) past
 * `timeout_ms`, full, flushed, answering a wrong type or garbage. No request fails for it, none
 * waits much longer than `timeout_ms` for it, the failures are counted, the breaker stops asking,
 * and sharing resumes once Redis is back.
 */
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { startFakeProvider, type FakeProvider } from '../helpers/fake-provider.js';
import { bearer } from '../helpers/http.js';
import { freePort, startRedis, type TestRedis } from '../helpers/redis.js';
import { providerEntry, startTollgate, waitFor, type TestTollgate } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';
import { slotOf } from '../../src/cache/shared.js';

const newToken = () => `tok-${randomBytes(12).toString('hex')}`;
const TIMEOUT_MS = 100;

interface Pair {
  provider: FakeProvider;
  a: TestTollgate;
  b: TestTollgate;
}

/** Two replicas on `url`; Redis timeouts long (1 s) unless the test is about them. */
async function pair(t: Test, url: string, timeoutMs = 1000): Promise<Pair> {
  const provider = await startFakeProvider();
  t.teardown(() => provider.close());
  provider.answer(() => ({ active: true, sub: 'alice', exp: Math.floor(Date.now() / 1000) + 3600 }));
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const raw = {
    upstream: { url: upstream.url },
    providers: [providerEntry('acme', provider.issuer)],
    cache: { shared: { url, timeout_ms: timeoutMs } },
  };
  const [a, b] = await Promise.all([startTollgate(t, raw), startTollgate(t, raw)]);
  return { provider, a: a!, b: b! };
}

const counter = (r: TestTollgate, name: string, operation: string) =>
  r.metric(`tollgate_shared_cache_${name}_total`, { operation });

/** A token asked on `a`, its write landed, then asked on `b`: was it a shared hit there? */
async function sharesAgain(p: Pair, redis: TestRedis): Promise<boolean> {
  const token = newToken();
  const client = redis.client();
  await p.a.request('/', { headers: bearer(token) });
  const key = slotOf(
    'tollgate:',
    { name: 'acme', issuer: p.a.app.runtime().providers.get('acme')!.issuer, audience: undefined },
    token,
  ).key;
  await waitFor(async () => (await client.exists(key)) === 1, 5000, 'the answer was not written to Redis');
  await p.b.request('/', { headers: bearer(token) });
  return p.b.accessLines().at(-1)?.cache === 'shared_hit';
}

t.test('no Redis at all: tollgate starts, is ready, and serves every request', async (t) => {
  const port = await freePort(); // nothing listens there
  const p = await pair(t, `redis://127.0.0.1:${port}/0`);
  t.ok(p.a.app.isReady(), 'ready without Redis');
  for (let i = 0; i < 3; i++) t.equal((await p.a.request('/', { headers: bearer(newToken()) })).status, 200);
  t.equal(await p.a.metric('tollgate_shared_cache_up'), 0);
  t.ok((await counter(p.a, 'skipped', 'read')) >= 3, 'every skipped read is counted');
  t.equal(p.provider.callCount, 3);
});

t.test('Redis killed mid-traffic and restarted: no request fails, sharing resumes', async (t) => {
  const redis = await startRedis(t);
  const p = await pair(t, redis.url);
  t.ok(await sharesAgain(p, redis), 'sharing before');
  const statuses: number[] = [];
  let stop = false;
  const traffic = (async () => {
    for (let i = 0; !stop; i++) statuses.push((await (i % 2 ? p.a : p.b).request('/', { headers: bearer(newToken()) })).status);
  })();
  await waitFor(() => statuses.length >= 20, 10_000, 'traffic did not start');
  await redis.kill();
  const atKill = statuses.length;
  await waitFor(() => statuses.length >= atKill + 20, 10_000, 'traffic stalled while Redis was down');
  t.equal(await p.a.metric('tollgate_shared_cache_up'), 0, 'down while Redis is gone');
  await redis.restart();
  await waitFor(
    async () => (await p.a.metric('tollgate_shared_cache_up')) === 1 && (await p.b.metric('tollgate_shared_cache_up')) === 1,
    15_000,
    'did not reconnect within 15 s',
  );
  stop = true;
  await traffic;
  t.same(
    statuses.filter((s) => s !== 200),
    [],
    `${statuses.length} requests, every one served`,
  );
  t.ok(await sharesAgain(p, redis), 'sharing after the restart');
});

t.test('Redis paused past timeout_ms: requests wait at most about timeout_ms more, the breaker stops asking', async (t) => {
  const redis = await startRedis(t);
  const p = await pair(t, redis.url, TIMEOUT_MS);
  const timed = async (r: TestTollgate) => {
    const start = performance.now();
    const res = await r.request('/', { headers: bearer(newToken()) });
    return { status: res.status, ms: performance.now() - start };
  };
  const normal: number[] = [];
  for (let i = 0; i < 10; i++) normal.push((await timed(p.a)).ms);
  const baseline = Math.max(...normal);

  redis.pause();
  t.teardown(() => redis.resume());
  const paused: { status: number; ms: number }[] = [];
  for (let i = 0; i < 10; i++) paused.push(await timed(p.a));
  t.same(
    paused.map((r) => r.status),
    Array(10).fill(200),
    'every request served while Redis is stopped',
  );
  const worst = Math.max(...paused.map((r) => r.ms));
  // One read waits out timeout_ms, then the provider is asked as without a shared cache. The slack
  // is for a machine shared with other work (several engineers' test runs at once).
  t.ok(
    worst < baseline + TIMEOUT_MS + 400,
    `worst ${worst.toFixed(0)} ms < normal ${baseline.toFixed(0)} + timeout ${TIMEOUT_MS} + 400`,
  );
  const timeouts = (await counter(p.a, 'errors', 'read')) + (await counter(p.a, 'errors', 'write'));
  t.ok(timeouts >= 3, `the timeouts are counted (${timeouts}: reads and the writes after them)`);
  t.ok((await counter(p.a, 'skipped', 'read')) >= 1, 'then the breaker stopped asking');
  t.equal(await p.a.metric('tollgate_shared_cache_up'), 0, 'and says so');
  const fast = await timed(p.a);
  t.ok(fast.ms < baseline + 200, `with the breaker open a request does not wait for Redis (${fast.ms.toFixed(0)} ms)`);

  redis.resume();
  // The breaker's first pause is 1 s, doubling while probes fail: within 15 s it probes again.
  await waitFor(
    async () => {
      await p.a.request('/', { headers: bearer(newToken()) });
      await p.b.request('/', { headers: bearer(newToken()) });
      return (await p.a.metric('tollgate_shared_cache_up')) === 1 && (await p.b.metric('tollgate_shared_cache_up')) === 1;
    },
    15_000,
    'the breaker did not close within 15 s of Redis resuming',
  );
  t.ok(await sharesAgain(p, redis), 'sharing resumes');
});

t.test('a key of the wrong type, garbage, a full Redis, a flush: counted, served, never failed', async (t) => {
  const redis = await startRedis(t);
  const p = await pair(t, redis.url);
  const client = redis.client();
  const issuer = p.a.app.runtime().providers.get('acme')!.issuer;
  const keyOf = (token: string) => slotOf('tollgate:', { name: 'acme', issuer, audience: undefined }, token).key;

  const wrongType = newToken();
  await client.hset(keyOf(wrongType), 'field', 'value');
  t.equal((await p.a.request('/', { headers: bearer(wrongType) })).status, 200, 'a hash where a string belongs');
  t.equal(await counter(p.a, 'errors', 'read'), 1, 'counted as a read error');
  await waitFor(async () => (await client.type(keyOf(wrongType))) === 'string', 5000, 'the wrong-type key was not replaced');
  t.equal(await p.a.metric('tollgate_shared_cache_up'), 1, 'a reply error is no outage: the breaker stays closed');

  const garbage = newToken();
  await client.set(keyOf(garbage), Buffer.from('\x01not an answer at all, just some bytes'));
  t.equal((await p.a.request('/', { headers: bearer(garbage) })).status, 200, 'garbage in the entry');
  t.equal(await counter(p.a, 'errors', 'read'), 2);

  const calls = p.provider.callCount;
  await redis.cli('CONFIG', 'SET', 'maxmemory', '1');
  const full = newToken();
  t.equal((await p.a.request('/', { headers: bearer(full) })).status, 200, 'Redis out of memory');
  await waitFor(async () => (await counter(p.a, 'errors', 'write')) >= 1, 5000, 'the refused write was not counted');
  await redis.cli('CONFIG', 'SET', 'maxmemory', '0');

  const flushed = newToken();
  await p.a.request('/', { headers: bearer(flushed) });
  await waitFor(async () => (await client.exists(keyOf(flushed))) === 1, 5000, 'not written');
  await redis.cli('FLUSHALL');
  t.equal((await p.b.request('/', { headers: bearer(flushed) })).status, 200, 'after a flush');
  t.equal(p.provider.callCount, calls + 3, 'the provider answered what Redis no longer had');
  t.equal(await p.a.metric('tollgate_shared_cache_up'), 1);
});
