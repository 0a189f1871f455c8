/**
 * SPEC §3.6 over HTTP: tollgate on 127.0.0.1 with a manual clock, a recording upstream, and the
 * fake provider counting introspection calls (it gives the answers a real provider won't: 500s,
 * a call that hangs, an answer held until every request is in). The last tests use the real
 * oidc-provider: a token revoked there (RFC 7009) is refused once its cache entry ends.
 */
import t, { type Test } from 'tap';
import { inspect } from 'node:util';
import { randomBytes } from 'node:crypto';
import { startOidcProvider } from '../../dev/oidc-provider.js';
import { captureLruCacheChannels } from '../helpers/lru-channels.js';
import { manualClock, type ManualClock } from '../helpers/clock.js';
import { json, startFakeProvider, type FakeProvider } from '../helpers/fake-provider.js';
import { bearer, type Answer } from '../helpers/http.js';
import { providerEntry, requestsArrived, startTollgate, waitFor, type TestTollgate } from '../helpers/tollgate.js';
import { startUpstream, type RecordingUpstream } from '../helpers/upstream.js';

type Claims = Record<string, unknown>;

const newToken = () => `tok-${randomBytes(12).toString('hex')}`;

interface Setup {
  provider: FakeProvider;
  upstream: RecordingUpstream;
  clock: ManualClock;
  gate: TestTollgate;
  lookups(): Promise<Record<'hit' | 'miss' | 'coalesced' | 'stale', number>>;
  entries(): Promise<number>;
}

/** One provider `acme` whose calls may take long (a held or hanging answer is the test's doing). */
async function setup(t: Test, raw: Record<string, unknown> = {}): Promise<Setup> {
  const provider = await startFakeProvider();
  t.teardown(() => provider.close());
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const clock = manualClock();
  const gate = await startTollgate(
    t,
    { upstream: { url: upstream.url }, providers: [providerEntry('acme', provider.issuer, { timeout_ms: 60_000 })], ...raw },
    { clock },
  );
  const lookup = (result: string) => gate.metric('tollgate_cache_lookups_total', { result });
  return {
    provider,
    upstream,
    clock,
    gate,
    lookups: async () => ({
      hit: await lookup('hit'),
      miss: await lookup('miss'),
      coalesced: await lookup('coalesced'),
      stale: await lookup('stale'),
    }),
    entries: () => gate.metric('tollgate_cache_entries'),
  };
}

/** What a provider says of an active token, valid for an hour by `clock`. */
const active = (clock: ManualClock, extra: Claims = {}): Claims => ({
  active: true,
  sub: 'alice',
  scope: 'orders:read',
  exp: clock.nowS() + 3600,
  ...extra,
});

const get = (s: Setup, token: string, timeoutMs?: number) =>
  s.gate.request('/orders', { headers: bearer(token), ...(timeoutMs ? { timeoutMs } : {}) });

t.test('20 sequential requests with one token make one introspection call', async (t) => {
  const s = await setup(t);
  s.provider.answer(() => active(s.clock));
  const token = newToken();
  for (let i = 0; i < 20; i++) t.equal((await get(s, token)).status, 200);
  t.equal(s.provider.calls.length, 1);
  t.equal(s.upstream.requests.length, 20);
  t.same(await s.lookups(), { hit: 19, miss: 1, coalesced: 0, stale: 0 });
  t.same(
    s.gate.accessLines().map((l) => l.cache),
    ['miss', ...Array<string>(19).fill('hit')],
  );
});

/**
 * The provider holds its answer until all 500 requests have reached tollgate. Tollgate's handler
 * runs synchronously from the request event to the cache lookup, so once the 500th request has
 * arrived every one of them is waiting on the cache, and the answer (which must cross the network)
 * comes after.
 */
t.test('500 concurrent requests with a fresh token: one call, 500 identical outcomes', async (t) => {
  const s = await setup(t);
  const token = newToken();
  const arrived = requestsArrived(s.gate.url, 500);
  s.provider.script(async (_token, _req, res) => {
    await arrived;
    json(res, 200, active(s.clock));
  });
  const responses = await Promise.all(Array.from({ length: 500 }, () => get(s, token, 60_000)));
  await arrived;
  t.equal(s.provider.calls.length, 1, 'one introspection call');
  t.same(new Set(responses.map((r) => `${r.status} ${r.text}`)), new Set(['200 {"ok":true}']), '500 × 200');
  t.equal(s.upstream.requests.length, 500);
  t.same(new Set(s.upstream.requests.map((r) => r.headers['x-auth-subject']?.join())), new Set(['alice']));
  t.same(await s.lookups(), { hit: 0, miss: 1, coalesced: 499, stale: 0 });
  t.equal(await s.entries(), 1);

  t.test('then 100 concurrent requests are 100 hits', async (t) => {
    const again = await Promise.all(Array.from({ length: 100 }, () => get(s, token, 60_000)));
    t.ok(again.every((r) => r.status === 200));
    t.equal(s.provider.calls.length, 1);
    t.same(await s.lookups(), { hit: 100, miss: 1, coalesced: 499, stale: 0 });
  });
});

t.test('500 concurrent requests whose one call fails: 500 × 503, still one call', async (t) => {
  const s = await setup(t);
  const token = newToken();
  const arrived = requestsArrived(s.gate.url, 500);
  s.provider.script(async (_token, _req, res) => {
    await arrived;
    json(res, 500, { error: 'server_error' });
  });
  const responses = await Promise.all(Array.from({ length: 500 }, () => get(s, token, 60_000)));
  await arrived;
  t.equal(s.provider.calls.length, 1, 'the waiting requests added no call');
  const outcomes = new Set(responses.map((r: Answer) => `${r.status} ${r.headers['retry-after']} ${r.text}`));
  t.equal(outcomes.size, 1, '500 identical refusals');
  t.equal(responses[0]!.status, 503);
  t.equal(responses[0]!.json().error, 'temporarily_unavailable');
  t.equal(s.upstream.requests.length, 0, 'nothing reached the upstream');
  t.same(await s.lookups(), { hit: 0, miss: 1, coalesced: 499, stale: 0 });
  t.equal(await s.entries(), 0, 'the failure is not kept');

  s.provider.answer(() => active(s.clock));
  t.equal((await get(s, token)).status, 200);
  t.equal(s.provider.calls.length, 2, 'the next request asks again');
});

t.test('an inactive token: one call within negative_ttl_s, a second after', async (t) => {
  const s = await setup(t, { cache: { negative_ttl_s: 5 } });
  s.provider.answer(() => ({ active: false }));
  const token = newToken();
  for (let ms = 0; ms < 5_000; ms += 500) {
    const res = await get(s, token);
    t.equal(res.status, 401);
    t.match(res.headers['www-authenticate'], /error="invalid_token"/);
    s.clock.advance(500);
  }
  t.equal(s.provider.calls.length, 1, 'ten refusals within negative_ttl_s, one call');
  t.equal((await get(s, token)).status, 401);
  t.equal(s.provider.calls.length, 2, 'a second call once negative_ttl_s has passed');
  t.equal(s.upstream.requests.length, 0);
});

t.test('exp 2 s ahead with ttl_s 60: refused once exp passes', async (t) => {
  const s = await setup(t, { cache: { ttl_s: 60 } });
  const token = newToken();
  const exp = s.clock.nowS() + 2;
  // An honest provider: active until exp, by the same clock.
  s.provider.answer(() => (s.clock.nowS() < exp ? active(s.clock, { exp }) : { active: false }));
  t.equal((await get(s, token)).status, 200);
  s.clock.advance(2_000 - 1);
  t.equal((await get(s, token)).status, 200);
  t.equal(s.provider.calls.length, 1, 'cached until exp');
  s.clock.advance(1);
  const refused = await get(s, token);
  t.equal(refused.status, 401);
  t.equal(s.provider.calls.length, 2, 'the answer ended at exp, not at ttl_s: the provider was asked again');
  t.equal(s.upstream.requests.length, 2);
});

t.test('a failure is not cached: the next request calls again', async (t) => {
  const s = await setup(t);
  const token = newToken();
  s.provider.script((_token, _req, res) => json(res, 500, { error: 'server_error' }));
  t.equal((await get(s, token)).status, 503);
  s.provider.answer(() => active(s.clock));
  t.equal((await get(s, token)).status, 200);
  t.equal(s.provider.calls.length, 2);
});

t.test('stale_if_error_s on: an expired answer serves while the provider fails, never past exp', async (t) => {
  const s = await setup(t, { cache: { ttl_s: 10, stale_if_error_s: 30, refresh_ahead_s: 0 } });
  const withExp = newToken();
  const withoutExp = newToken();
  const exp = s.clock.nowS() + 25;
  s.provider.answer((token) => (token === withExp ? active(s.clock, { exp }) : { active: true, sub: 'bob' }));
  t.equal((await get(s, withExp)).status, 200);
  t.equal((await get(s, withoutExp)).status, 200);
  s.provider.script((_token, _req, res) => json(res, 503, { error: 'temporarily_unavailable' }));

  s.clock.advance(10_000); // both answers have ended; the provider fails
  t.equal((await get(s, withExp)).status, 200);
  t.equal((await get(s, withoutExp)).status, 200);
  t.same(
    s.gate
      .accessLines()
      .slice(-2)
      .map((l) => [l.status, l.cache]),
    [
      [200, 'stale'],
      [200, 'stale'],
    ],
  );
  t.equal(s.provider.calls.length, 4, 'the provider was asked each time first');
  t.same(s.upstream.requests.slice(-1)[0]!.headers['x-auth-subject'], ['bob']);

  s.clock.advance(15_000 - 1); // 24.999 s
  t.equal((await get(s, withExp)).status, 200);
  s.clock.advance(1); // 25 s: the token's exp
  t.equal((await get(s, withExp)).status, 503, 'never past exp');
  t.equal((await get(s, withoutExp)).status, 200);
  s.clock.advance(15_000 - 1); // 39.999 s
  t.equal((await get(s, withoutExp)).status, 200);
  s.clock.advance(1); // 40 s: ttl_s + stale_if_error_s
  t.equal((await get(s, withoutExp)).status, 503);
  t.same(await s.lookups(), { hit: 0, miss: 4, coalesced: 0, stale: 5 });
});

t.test('stale_if_error_s off (default): fail closed once the answer ends', async (t) => {
  const s = await setup(t, { cache: { ttl_s: 10, refresh_ahead_s: 0 } });
  s.provider.answer(() => active(s.clock));
  const token = newToken();
  t.equal((await get(s, token)).status, 200);
  s.provider.script((_token, _req, res) => json(res, 503, { error: 'temporarily_unavailable' }));
  s.clock.advance(10_000 - 1);
  t.equal((await get(s, token)).status, 200, 'still within ttl_s');
  s.clock.advance(1);
  const refused = await get(s, token);
  t.equal(refused.status, 503);
  t.equal(refused.headers['retry-after'], '1');
  t.equal(await s.gate.metric('tollgate_cache_lookups_total', { result: 'stale' }), 0);
});

t.test('refresh-ahead turns a revoked hot token away without the request waiting on the provider', async (t) => {
  const s = await setup(t, { cache: { ttl_s: 60, refresh_ahead_s: 5 } });
  const token = newToken();
  s.provider.answer(() => active(s.clock));
  t.equal((await get(s, token)).status, 200);
  s.clock.advance(55_000 - 1);
  t.equal((await get(s, token)).status, 200);
  t.equal(s.provider.calls.length, 1, 'no refresh before the last refresh_ahead_s');

  // From now on the provider hangs: it has not answered when the requests below are answered.
  let answer!: (claims: Claims) => void;
  const held = new Promise<Claims>((resolve) => (answer = resolve));
  s.provider.answer(() => held);
  s.clock.advance(1); // 55 s: the answer's last refresh_ahead_s
  t.equal((await get(s, token, 5_000)).status, 200, 'answered while the refresh hangs');
  await waitFor(() => s.provider.calls.length === 2, 10_000, 'the background refresh never reached the provider');
  for (let i = 0; i < 3; i++) {
    s.clock.advance(1_000);
    t.equal((await get(s, token, 5_000)).status, 200);
  }
  t.equal(s.provider.calls.length, 2, 'exactly one background call');

  answer({ active: false }); // the token was revoked meanwhile
  await waitFor(
    async () => (await s.gate.metric('tollgate_introspection_requests_total', { result: 'inactive' })) === 1,
    10_000,
    'the refresh was never answered',
  );
  const refused = await get(s, token);
  t.equal(refused.status, 401);
  t.match(refused.headers['www-authenticate'], /error="invalid_token"/);
  t.equal(s.gate.accessLines().at(-1)!.cache, 'hit', 'refused from the refreshed answer, before the old one ended');
  t.equal(s.provider.calls.length, 2);
  t.equal(s.upstream.requests.length, 6, 'the refused request never reached the upstream');
});

t.test('two providers answering for the same token string keep separate entries', async (t) => {
  const acme = await startFakeProvider();
  t.teardown(() => acme.close());
  const globex = await startFakeProvider();
  t.teardown(() => globex.close());
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const clock = manualClock();
  const gate = await startTollgate(
    t,
    {
      upstream: { url: upstream.url },
      providers: [providerEntry('acme', acme.issuer), providerEntry('globex', globex.issuer)],
      provider_header: 'X-Tenant',
    },
    { clock },
  );
  acme.answer(() => active(clock, { sub: 'acme-user' }));
  globex.answer(() => active(clock, { sub: 'globex-user' }));
  const token = newToken();
  for (let i = 0; i < 3; i++) {
    for (const tenant of ['acme', 'globex']) {
      const res = await gate.request('/orders', { headers: { ...bearer(token), 'x-tenant': tenant } });
      t.equal(res.status, 200);
      t.same(upstream.requests.at(-1)!.headers['x-auth-subject'], [`${tenant}-user`]);
      t.same(upstream.requests.at(-1)!.headers['x-auth-provider'], [tenant]);
    }
  }
  t.same(acme.calls, [token], 'one call at acme');
  t.same(globex.calls, [token], 'one call at globex');
  t.equal(await gate.metric('tollgate_cache_entries'), 2);
});

t.test('max_entries bounds the cache; the least recently used token goes first', async (t) => {
  const s = await setup(t, { cache: { max_entries: 3 } });
  s.provider.answer(() => active(s.clock));
  const [a, b, c, d] = [newToken(), newToken(), newToken(), newToken()];
  for (const token of [a, b, c, a, d]) t.equal((await get(s, token!)).status, 200);
  t.same(s.provider.calls, [a, b, c, d], 'a was used again, so b went when d came');
  t.equal(await s.entries(), 3);
  for (const token of [a, c, d]) await get(s, token!);
  t.equal(s.provider.calls.length, 4, 'a, c and d are still cached');
  await get(s, b!);
  t.same(s.provider.calls.at(-1), b, 'b was evicted');
  t.equal(await s.entries(), 3);
});

t.test('the raw token is never a cache key, nor anywhere lru-cache publishes, logs or metrics', async (t) => {
  // lru-cache publishes every operation's status (key, value, a fetch's context) to subscribers.
  const seen = captureLruCacheChannels(t);

  const s = await setup(t, { cache: { ttl_s: 60, refresh_ahead_s: 5 } });
  const token = newToken();
  s.provider.answer(() => active(s.clock));
  await Promise.all([get(s, token), get(s, token)]);
  await get(s, token);
  s.clock.advance(56_000);
  await get(s, token); // refresh-ahead
  await waitFor(() => s.provider.calls.length >= 2, 10_000, 'the background refresh never reached the provider');
  s.clock.advance(60_000);
  s.provider.script((_token, _req, res) => json(res, 500, {}));
  t.equal((await get(s, token)).status, 503);

  const keys = seen.map((m) => (m as { key?: unknown }).key).filter((k) => typeof k === 'string') as string[];
  t.ok(keys.length > 0, 'lru-cache published the keys it used');
  t.notOk(
    keys.some((k) => k.includes(token)),
    'no key equals or contains the token',
  );
  const published = seen.map((m) => {
    const { cache: _cache, ...rest } = m as Record<string, unknown>;
    return inspect(rest, { depth: 8, showHidden: true, maxStringLength: Infinity, maxArrayLength: Infinity });
  });
  t.notOk(
    published.some((text) => text.includes(token)),
    'nothing lru-cache publishes contains the token',
  );
  t.notOk(s.gate.rawLogs().includes(token), 'no log line contains the token');
  t.notOk((await s.gate.app.metrics.registry.metrics()).includes(token), 'no metric contains the token');
});

t.test('a real provider: a revoked token is refused once its cache entry ends', async (t) => {
  const op = await startOidcProvider();
  t.teardown(() => op.close());
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  // The provider keeps real time (tokens live an hour); tollgate's clock starts there.
  const clock = manualClock(Date.now());
  const gate = await startTollgate(
    t,
    { upstream: { url: upstream.url }, providers: [providerEntry('acme', op.issuer)], cache: { ttl_s: 30, refresh_ahead_s: 5 } },
    { clock },
  );
  const token = await op.mintToken();
  t.equal((await gate.request('/orders', { headers: bearer(token) })).status, 200);
  await op.revokeToken(token);
  clock.advance(1_000);
  t.equal(
    (await gate.request('/orders', { headers: bearer(token) })).status,
    200,
    'within ttl_s the cached answer still serves (the price of a cache)',
  );
  clock.advance(29_000); // 30 s: the entry's end
  const refused = await gate.request('/orders', { headers: bearer(token) });
  t.equal(refused.status, 401);
  t.match(refused.headers['www-authenticate'], /error="invalid_token"/);
  t.equal(upstream.requests.length, 2, 'nothing of the refused request reached the API');
  t.equal(await gate.metric('tollgate_introspection_requests_total', { provider: 'acme', result: 'inactive' }), 1);

  t.test('with refresh-ahead, a hot revoked token is turned away before its entry ends', async (t) => {
    const hot = await op.mintToken();
    t.equal((await gate.request('/orders', { headers: bearer(hot) })).status, 200);
    await op.revokeToken(hot);
    clock.advance(26_000); // within the entry's last refresh_ahead_s
    t.equal((await gate.request('/orders', { headers: bearer(hot) })).status, 200, 'served while it is re-asked');
    await waitFor(
      async () => (await gate.metric('tollgate_introspection_requests_total', { provider: 'acme', result: 'inactive' })) === 2,
      10_000,
      'the background refresh never got its answer',
    );
    t.equal((await gate.request('/orders', { headers: bearer(hot) })).status, 401, 'refused 4 s before the entry would end');
  });
});
