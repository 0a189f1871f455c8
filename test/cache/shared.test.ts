/**
 * The cache shared by every replica, against a real redis-server: several tollgate instances
 * (each its own app, own cache, own Redis client) on one Redis and one fake provider that counts
 * its calls. One provider call per token across the fleet; nothing readable in Redis; entries
 * bound to their provider; lifetimes that never outlive `ttl_s` or `exp` on any replica.
 * Failures of Redis itself are in shared-failure.test.ts; real processes in e2e/shared-cache.test.ts.
 */
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { manualClock, type ManualClock } from '../helpers/clock.js';
import { startFakeProvider, type FakeProvider } from '../helpers/fake-provider.js';
import { bearer } from '../helpers/http.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { providerEntry, requestsArrived, startTollgate, testTree, type TestTollgate } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';
import { slotOf } from '../../src/cache/shared.js';
import { validateConfig } from '../../src/config/load.js';

const newToken = () => `tok-${randomBytes(12).toString('hex')}`;

interface Fleet {
  redis: TestRedis;
  provider: FakeProvider;
  clock: ManualClock;
  replicas: TestTollgate[];
}

/** `n` replicas sharing one Redis, one provider `acme` (and `beta`, a tenant of the same server). */
async function fleet(t: Test, n: number, cache: Record<string, unknown> = {}): Promise<Fleet> {
  const redis = await startRedis(t);
  const provider = await startFakeProvider();
  t.teardown(() => provider.close());
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const clock = manualClock();
  provider.answer((token) => ({ active: true, sub: `subject-of-${token}`, scope: 'orders:read', exp: clock.nowS() + 3600 }));
  const raw = {
    upstream: { url: upstream.url },
    providers: [providerEntry('acme', provider.issuer), providerEntry('beta', provider.tenantIssuer('beta'))],
    provider_header: 'X-Tenant',
    cache: { refresh_ahead_s: 0, ...cache, shared: { url: redis.url, timeout_ms: 1000 } },
  };
  const replicas = await Promise.all(Array.from({ length: n }, () => startTollgate(t, raw, { clock })));
  return { redis, provider, clock, replicas };
}

const acme = (token: string) => ({ ...bearer(token), 'x-tenant': 'acme' });
const metric = (r: TestTollgate, result: string) => r.metric('tollgate_cache_lookups_total', { result });

t.test('a token used on every replica costs its provider one call', async (t) => {
  const f = await fleet(t, 2);
  const token = newToken();
  const first = await f.replicas[0]!.request('/orders', { headers: acme(token) });
  t.equal(first.status, 200);
  // The write is not awaited by the first request: wait for it to land in Redis.
  await waitForKeys(f.redis, 1);
  const second = await f.replicas[1]!.request('/orders', { headers: acme(token) });
  t.equal(second.status, 200);
  t.equal(f.provider.callCount, 1, 'one provider call for two replicas');
  t.equal(f.replicas[1]!.accessLines().at(-1)?.cache, 'shared_hit', 'the access line says where the answer came from');
  t.equal(await metric(f.replicas[1]!, 'shared_hit'), 1);
  t.equal(await metric(f.replicas[0]!, 'miss'), 1);
  // From then on each replica answers from its own cache.
  await f.replicas[1]!.request('/orders', { headers: acme(token) });
  t.equal(await metric(f.replicas[1]!, 'hit'), 1);
  t.equal(await f.replicas[0]!.metric('tollgate_shared_cache_up'), 1);
});

t.test('200 concurrent first requests over five replicas: one provider call', async (t) => {
  const f = await fleet(t, 5);
  const token = newToken();
  // The provider holds its answer until every request has reached a replica.
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  f.provider.answer(async (tok) => {
    await held;
    return { active: true, sub: `subject-of-${tok}`, exp: f.clock.nowS() + 3600 };
  });
  const arrived = Promise.all(f.replicas.map((r) => requestsArrived(r.url, 40)));
  const all = Promise.all(
    Array.from({ length: 200 }, (_, i) => f.replicas[i % 5]!.request('/orders', { headers: acme(token), timeoutMs: 20_000 })),
  );
  await arrived;
  release();
  const answers = await all;
  t.same(
    answers.map((a) => a.status),
    Array(200).fill(200),
    'every request served',
  );
  t.equal(f.provider.callCount, 1, 'one provider call for 200 requests on 5 replicas');
  let shared = 0;
  for (const r of f.replicas) shared += await metric(r, 'shared_hit');
  t.equal(shared, 4, 'four replicas waited for the fifth one and read its answer');
});

t.test('Redis holds neither tokens, nor claims, nor subjects; entries live as long as their answer', async (t) => {
  const f = await fleet(t, 2, { ttl_s: 60 });
  const tokens = Array.from({ length: 10 }, newToken);
  // One token whose exp comes before ttl_s: its entry must end with it.
  const short = tokens[0]!;
  f.provider.answer((token) => ({
    active: true,
    sub: `subject-of-${token}`,
    username: 'alice-the-user',
    scope: 'orders:read secret-scope',
    exp: f.clock.nowS() + (token === short ? 20 : 3600),
  }));
  for (const [i, token] of tokens.entries()) {
    t.equal((await f.replicas[i % 2]!.request('/orders', { headers: acme(token) })).status, 200);
  }
  const dump = await waitForKeys(f.redis, tokens.length);
  t.equal(dump.size, tokens.length, 'one entry per token');
  const needles = ['alice-the-user', 'secret-scope', 'subject-of', 'tok-', ...tokens, ...tokens.map((tk) => `subject-of-${tk}`)];
  for (const [key, value] of dump) {
    const bytes = Buffer.concat([Buffer.from(key), value]);
    for (const needle of needles) {
      t.notOk(bytes.includes(needle), `${needle.slice(0, 16)}… is nowhere in Redis`);
      t.notOk(bytes.includes(Buffer.from(needle).toString('base64')), 'not even base64-encoded');
    }
  }
  for (const token of tokens) {
    const pttl = Number((await f.redis.cli('PTTL', slotOf('tollgate:', sourceOf(f, 'acme'), token).key)).trim());
    const limit = token === short ? 20_000 : 60_000;
    t.ok(pttl > 0 && pttl <= limit, `PTTL ${pttl} ≤ ${limit} ms (min of ttl_s and exp)`);
  }
});

t.test("an entry copied onto another provider's key is refused, counted, and the provider asked", async (t) => {
  const f = await fleet(t, 1);
  const token = newToken();
  t.equal((await f.replicas[0]!.request('/orders', { headers: acme(token) })).status, 200);
  await waitForKeys(f.redis, 1);
  const client = f.redis.client();
  const acmeKey = slotOf('tollgate:', sourceOf(f, 'acme'), token).key;
  const betaKey = slotOf('tollgate:', sourceOf(f, 'beta'), token).key;
  t.not(acmeKey, betaKey);
  const value = await client.getBuffer(acmeKey);
  t.ok(value, 'acme has an entry');
  await client.set(betaKey, value!, 'PX', 60_000);
  const betaCalls = f.provider.tenantCalls('beta').length;
  const res = await f.replicas[0]!.request('/orders', { headers: { ...bearer(token), 'x-tenant': 'beta' } });
  t.equal(res.status, 200, 'beta answers for itself');
  t.equal(f.provider.tenantCalls('beta').length, betaCalls + 1, "beta's own provider was asked");
  t.equal(
    await f.replicas[0]!.metric('tollgate_shared_cache_errors_total', { operation: 'read' }),
    1,
    'the refused entry is counted',
  );
  t.equal(f.replicas[0]!.accessLines().at(-1)?.cache, 'miss');
});

t.test('a provider whose issuer changes reads none of the entries written under the old one', async (t) => {
  const before = slotOf('tollgate:', { name: 'acme', issuer: 'https://one.example', audience: undefined }, 'tok');
  const moved = slotOf('tollgate:', { name: 'acme', issuer: 'https://two.example', audience: undefined }, 'tok');
  const narrowed = slotOf('tollgate:', { name: 'acme', issuer: 'https://one.example', audience: ['orders'] }, 'tok');
  const slash = slotOf('tollgate:', { name: 'acme', issuer: 'https://one.example/', audience: undefined }, 'tok');
  t.not(before.key, moved.key, 'a new issuer: another key');
  t.not(before.key, narrowed.key, 'a new audience: another key');
  t.equal(before.key, slash.key, 'one trailing slash makes no other issuer');
  t.not(before.key.slice(-43), slotOf('tollgate:', { name: 'beta', issuer: 'https://one.example' }, 'tok').key.slice(-43));
});

t.test('no replica keeps a shared answer past ttl_s', async (t) => {
  const f = await fleet(t, 2, { ttl_s: 10 });
  const token = newToken();
  const [a, b] = f.replicas as [TestTollgate, TestTollgate];
  t.equal((await a.request('/orders', { headers: acme(token) })).status, 200);
  await waitForKeys(f.redis, 1);
  f.clock.advance(6_000);
  t.equal((await b.request('/orders', { headers: acme(token) })).status, 200);
  t.equal(await metric(b, 'shared_hit'), 1, 'b read what a wrote, 6 s into its 10 s');
  t.equal(f.provider.callCount, 1);
  f.clock.advance(4_001); // 10.001 s after a's call: the answer's life is over everywhere
  t.equal((await b.request('/orders', { headers: acme(token) })).status, 200);
  t.equal(f.provider.callCount, 2, "b asked again instead of keeping the shared answer past a's ttl_s");
  t.equal(await metric(b, 'shared_hit'), 1, 'and did not take the expired shared entry either');
});

t.test("no replica keeps a shared answer past the token's exp", async (t) => {
  const f = await fleet(t, 2, { ttl_s: 300 });
  const token = newToken();
  const exp = f.clock.nowS() + 30;
  f.provider.answer(() => ({ active: true, sub: 'x', exp }));
  const [a, b] = f.replicas as [TestTollgate, TestTollgate];
  t.equal((await a.request('/orders', { headers: acme(token) })).status, 200);
  await waitForKeys(f.redis, 1);
  t.equal((await b.request('/orders', { headers: acme(token) })).status, 200);
  t.equal(await metric(b, 'shared_hit'), 1);
  f.provider.answer(() => ({ active: false }));
  f.clock.advance(31_000);
  const res = await b.request('/orders', { headers: acme(token) });
  t.equal(res.status, 401, 'past exp: refused');
  t.equal(f.provider.callCount, 2, 'b asked the provider: its shared copy ended with exp');
});

t.test('inactive answers are shared too, for negative_ttl_s', async (t) => {
  const f = await fleet(t, 3, { negative_ttl_s: 5 });
  f.provider.answer(() => ({ active: false }));
  const token = newToken();
  t.equal((await f.replicas[0]!.request('/orders', { headers: acme(token) })).status, 401);
  await waitForKeys(f.redis, 1);
  for (const r of f.replicas.slice(1)) t.equal((await r.request('/orders', { headers: acme(token) })).status, 401);
  t.equal(f.provider.callCount, 1, 'a refused token costs one call for the fleet');
  const pttl = Number((await f.redis.cli('PTTL', slotOf('tollgate:', sourceOf(f, 'acme'), token).key)).trim());
  t.ok(pttl > 0 && pttl <= 5000, `PTTL ${pttl} ≤ negative_ttl_s`);
});

t.test("every check still runs on a shared answer: one route's scope never satisfies another's", async (t) => {
  const redis = await startRedis(t);
  const provider = await startFakeProvider();
  t.teardown(() => provider.close());
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  provider.answer(() => ({ active: true, scope: 'orders:read', exp: Math.floor(Date.now() / 1000) + 3600 }));
  const raw = {
    upstream: { url: upstream.url },
    providers: [providerEntry('acme', provider.issuer)],
    routes: [{ match: { path_prefix: '/admin' }, scopes: ['orders:admin'] }],
    cache: { shared: { url: redis.url, timeout_ms: 1000 } },
  };
  const a = await startTollgate(t, raw);
  const b = await startTollgate(t, raw);
  const token = newToken();
  t.equal((await a.request('/orders', { headers: bearer(token) })).status, 200);
  await waitForKeys(redis, 1);
  t.equal((await b.request('/admin', { headers: bearer(token) })).status, 403, 'the shared answer lacks the scope');
  t.equal(await metric(b, 'shared_hit'), 1);
});

/** What the fleet's provider `name` binds a shared entry to (as src/provider/providers.ts gives it). */
function sourceOf(f: Fleet, name: 'acme' | 'beta') {
  const provider = f.replicas[0]!.app.runtime().providers.get(name)!;
  return { name, issuer: provider.issuer, audience: provider.audience };
}

/** Waits until Redis holds `n` answers (writes are not awaited by the request that caused them). */
async function waitForKeys(redis: TestRedis, n: number, ms = 5000) {
  const deadline = performance.now() + ms;
  for (;;) {
    const dump = await redis.dump();
    const answers = new Map([...dump].filter(([k]) => k.startsWith('tollgate:a:')));
    if (answers.size >= n) return answers;
    if (performance.now() > deadline) throw new Error(`Redis held ${answers.size} of ${n} answers after ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

t.test('a provider reloaded with another issuer reads none of the old entries; a removed one uses none', async (t) => {
  const redis = await startRedis(t);
  const provider = await startFakeProvider();
  t.teardown(() => provider.close());
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  provider.answer(() => ({ active: true, sub: 'alice', exp: Math.floor(Date.now() / 1000) + 3600 }));
  const tree = (issuer: string | null) =>
    testTree({
      upstream: { url: upstream.url },
      providers: [
        providerEntry('other', provider.tenantIssuer('other')),
        ...(issuer === null ? [] : [providerEntry('acme', issuer)]),
      ],
      provider_header: 'X-Tenant',
      cache: { shared: { url: redis.url, timeout_ms: 1000 } },
    });
  let current = tree(provider.tenantIssuer('one'));
  const source = { load: () => validateConfig(current), file: undefined, baseDir: process.cwd() };
  const a = await startTollgate(t, current);
  const b = await startTollgate(t, current, { source });
  const token = newToken();
  t.equal((await a.request('/', { headers: acme(token) })).status, 200);
  await waitForKeys(redis, 1);

  current = tree(provider.tenantIssuer('two'));
  t.match(await b.app.reload(), { ok: true });
  t.equal((await b.request('/', { headers: acme(token) })).status, 200);
  t.equal(provider.tenantCalls('two').length, 1, 'the new issuer was asked');
  t.equal(b.accessLines().at(-1)?.cache, 'miss', "not the old issuer's answer");
  t.equal(await b.metric('tollgate_shared_cache_errors_total', { operation: 'read' }), 0, 'a plain miss, not a refused entry');

  current = tree(null);
  t.match(await b.app.reload(), { ok: true, removed: ['acme'] });
  const calls = provider.callCount;
  const res = await b.request('/', { headers: acme(token) });
  t.equal(res.status, 401, 'a removed provider vouches for nothing, shared entries or not');
  t.equal(provider.callCount, calls);
  t.equal(await metric(b, 'shared_hit'), 0);
});
