/**
 * Oathkeeper: a cached answer was reused without re-checking the route's requirements. tollgate
 * caches only the provider's answer and runs every check on every request (SPEC §3.5), so an
 * answer fetched on a route without scopes never satisfies a route that requires one; and the
 * cache key is a hash of (provider, token) (SPEC §3.6), so the same token string on two
 * providers' routes is introspected at each, and one tenant's answer never stands for another's.
 */
import t from 'tap';
import { bearer } from '../helpers/http.js';
import { startFakeProvider } from '../helpers/fake-provider.js';
import { providerEntry, startTollgate } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';
import { startGate } from '../helpers/gate.js';

t.test('an answer cached on a route without scopes never satisfies a scoped route', async (t) => {
  const g = await startGate(t);
  t.equal((await g.gate.request('/orders', { headers: bearer('good') })).status, 200);
  t.equal(g.provider.calls.length, 1);

  for (let i = 0; i < 3; i++) {
    const res = await g.gate.request('/admin/orders', { headers: bearer('good') });
    t.equal(res.status, 403);
    t.equal(res.json().error, 'insufficient_scope');
    t.match(res.headers['www-authenticate'], /error="insufficient_scope", error_description="[^"]+", scope="orders:admin"/);
  }
  t.equal(g.provider.calls.length, 1, 'the refusals came from the cached answer, re-checked each time');
  t.equal(await g.gate.metric('tollgate_cache_lookups_total', { result: 'hit' }), 3);
  t.equal(g.upstream.requests.length, 1, 'only the unscoped request was forwarded');

  // An answer that has the scope, fetched on the scoped route, is re-checked on the plain one too.
  t.equal((await g.gate.request('/admin/orders', { headers: bearer('admin') })).status, 200);
  t.equal((await g.gate.request('/orders', { headers: bearer('admin') })).status, 200);
  t.equal(g.provider.calls.length, 2);
});

t.test('the same token on two providers’ routes is introspected at each', async (t) => {
  const acme = await startFakeProvider();
  const beta = await startFakeProvider();
  t.teardown(() => Promise.all([acme.close(), beta.close()]));
  acme.answer(() => ({ active: true, sub: 'alice', scope: 'orders:read', iss: acme.issuer }));
  beta.answer(() => ({ active: true, sub: 'bob', scope: 'orders:read orders:admin', iss: beta.issuer }));
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const gate = await startTollgate(t, {
    upstream: { url: upstream.url },
    providers: [providerEntry('acme', acme.issuer), providerEntry('beta', beta.issuer)],
    routes: [
      { match: { path_prefix: '/acme' }, providers: ['acme'] },
      { match: { path_prefix: '/beta/admin' }, providers: ['beta'], scopes: ['orders:admin'] },
      { match: { path_prefix: '/beta' }, providers: ['beta'] },
    ],
  });

  for (let round = 0; round < 2; round++) {
    t.equal((await gate.request('/acme/x', { headers: bearer('shared-token') })).status, 200);
    t.equal((await gate.request('/beta/x', { headers: bearer('shared-token') })).status, 200);
    t.equal((await gate.request('/beta/admin/x', { headers: bearer('shared-token') })).status, 200);
  }
  t.same(acme.calls, ['shared-token'], 'acme was asked once, for its own route');
  t.same(beta.calls, ['shared-token'], 'beta was asked once too: acme’s answer never stood for it');
  const seen = upstream.requests.map((r) => [r.url, r.headers['x-auth-provider']?.[0], r.headers['x-auth-subject']?.[0]]);
  t.same(seen, [
    ['/acme/x', 'acme', 'alice'],
    ['/beta/x', 'beta', 'bob'],
    ['/beta/admin/x', 'beta', 'bob'],
    ['/acme/x', 'acme', 'alice'],
    ['/beta/x', 'beta', 'bob'],
    ['/beta/admin/x', 'beta', 'bob'],
  ]);

  // beta now says the token is inactive: acme's cached answer keeps serving acme's route only.
  const fresh = 'other-shared-token';
  beta.answer(() => ({ active: false }));
  t.equal((await gate.request('/acme/y', { headers: bearer(fresh) })).status, 200);
  t.equal((await gate.request('/beta/y', { headers: bearer(fresh) })).status, 401);
  t.equal((await gate.request('/beta/y', { headers: bearer(fresh) })).status, 401);
  t.same(beta.calls, ['shared-token', fresh]);
});
