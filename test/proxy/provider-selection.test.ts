/**
 * SPEC §3.3 for JWT-shaped tokens, with providers that answer them (a real oidc-provider refuses
 * to introspect structured tokens, see test/e2e/multi-provider.test.ts): three tenants of one
 * fake provider, each with its own issuer and introspection endpoint, each counting its calls.
 */
import t from 'tap';
import { startFakeProvider } from '../helpers/fake-provider.js';
import { bearer } from '../helpers/http.js';
import { assertInvalidToken, jwtClaiming } from '../helpers/tenants.js';
import { startTollgate, providerEntry } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';

t.test('JWT-shaped tokens go to the provider their iss names, among the allowed ones', async (t) => {
  const fake = await startFakeProvider();
  t.teardown(() => fake.close());
  const issuers = { a: fake.tenantIssuer('a'), b: fake.tenantIssuer('b'), c: fake.tenantIssuer('c') };
  // Each tenant vouches only for tokens it issued: the answer names the tenant that was asked.
  fake.script((token, req, res) => {
    const tenant = /^\/t\/([^/]+)\//.exec(req.url ?? '')?.[1] ?? '';
    const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as { iss?: string };
    const active = claims.iss === fake.tenantIssuer(tenant);
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify(active ? { active, iss: claims.iss, sub: `user-of-${tenant}` } : { active }));
  });
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const gate = await startTollgate(t, {
    upstream: { url: upstream.url },
    providers: [providerEntry('a', issuers.a), providerEntry('b', issuers.b), providerEntry('c', issuers.c)],
    provider_header: 'X-Tenant',
    routes: [{ match: { path_prefix: '/ab/' }, providers: ['a', 'b'] }],
  });
  const calls = () => ({ a: fake.tenantCalls('a').length, b: fake.tenantCalls('b').length, c: fake.tenantCalls('c').length });

  t.test('by iss, with no header, among several providers', async (t) => {
    const res = await gate.request('/ab/orders', { headers: bearer(jwtClaiming(issuers.b)) });
    t.equal(res.status, 200);
    t.same(upstream.requests.at(-1)?.headers['x-auth-provider'], ['b']);
    t.same(upstream.requests.at(-1)?.headers['x-auth-subject'], ['user-of-b']);
    t.same(calls(), { a: 0, b: 1, c: 0 });
  });

  t.test('by iss on the fallback route (every provider allowed)', async (t) => {
    const res = await gate.request('/orders', { headers: bearer(jwtClaiming(issuers.c)) });
    t.equal(res.status, 200);
    t.same(upstream.requests.at(-1)?.headers['x-auth-provider'], ['c']);
    t.same(calls(), { a: 0, b: 1, c: 1 });
  });

  t.test('a header that agrees with iss is fine', async (t) => {
    const res = await gate.request('/ab/x', { headers: { ...bearer(jwtClaiming(issuers.a)), 'x-tenant': 'a' } });
    t.equal(res.status, 200);
    t.same(calls(), { a: 1, b: 1, c: 1 });
  });

  t.test('refusals: iss not allowed here, header contradicting iss — no call anywhere', async (t) => {
    const before = upstream.requests.length;
    assertInvalidToken(t, await gate.request('/ab/x', { headers: bearer(jwtClaiming(issuers.c)) }), /no provider allowed/);
    assertInvalidToken(
      t,
      await gate.request('/ab/x', { headers: { ...bearer(jwtClaiming(issuers.a)), 'x-tenant': 'b' } }),
      /contradicts/,
    );
    assertInvalidToken(
      t,
      // One trailing `/` is the same issuer (test/proxy/issuer-trailing-slash.test.ts); two are not.
      await gate.request('/x', { headers: { ...bearer(jwtClaiming(`${issuers.a}//`)), 'x-tenant': 'a' } }),
      /no provider allowed/,
    );
    t.same(calls(), { a: 1, b: 1, c: 1 });
    t.equal(upstream.requests.length, before);
  });
});
