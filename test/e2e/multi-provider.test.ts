/**
 * SPEC §3.3 with three real OpenID providers (oidc-provider, each on its own port): the provider
 * is chosen by the route's `providers`, by `host`, by `provider_header`; every refusal happens
 * before any provider is called; a token never reaches a provider outside the route's list, nor a
 * second provider when the first says inactive. The providers count their introspection calls.
 *
 * JWT-shaped tokens: oidc-provider issues JWT access tokens (with a resource indicator) but
 * refuses to introspect them (400 unsupported_token_type). So here a real JWT is shown routed by
 * its `iss` and refused where its issuer is not allowed, with the calls counted; the JWT that is
 * let through is in test/proxy/provider-selection.test.ts, with fake providers that answer.
 */
import t from 'tap';
import { startOidcProvider, type OidcProvider } from '../../dev/oidc-provider.js';
import { bearer } from '../helpers/http.js';
import { assertInvalidToken, jwtClaiming } from '../helpers/tenants.js';
import { startTollgate, providerEntry } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';

t.test('three real providers, tenant-safe selection', async (t) => {
  const ops: Record<'a' | 'b' | 'c', OidcProvider> = {
    a: await startOidcProvider({ extraTokenClaims: () => ({ sub: 'tenant-a-user' }) }),
    b: await startOidcProvider({ extraTokenClaims: () => ({ sub: 'tenant-b-user' }) }),
    c: await startOidcProvider({ extraTokenClaims: () => ({ sub: 'tenant-c-user' }) }),
  };
  t.teardown(() => Promise.all(Object.values(ops).map((op) => op.close())));
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const gate = await startTollgate(t, {
    upstream: { url: upstream.url },
    providers: [providerEntry('a', ops.a.issuer), providerEntry('b', ops.b.issuer), providerEntry('c', ops.c.issuer)],
    provider_header: 'X-Tenant',
    routes: [
      { match: { host: 'a.api.test' }, providers: ['a'] },
      { match: { host: 'b.api.test' }, providers: ['b'] },
      { match: { path_prefix: '/ab/' }, providers: ['a', 'b'] },
      { match: { path_prefix: '/c/' }, providers: ['c'] },
    ],
  });
  const counts = () => ({ a: ops.a.introspections, b: ops.b.introspections, c: ops.c.introspections });
  /** Runs `fn` and returns how many introspection calls each provider received meanwhile. */
  const callsDuring = async (fn: () => Promise<void>) => {
    const before = counts();
    await fn();
    const after = counts();
    return { a: after.a - before.a, b: after.b - before.b, c: after.c - before.c };
  };
  const tokens = { a: await ops.a.mintToken(), b: await ops.b.mintToken(), c: await ops.c.mintToken() };
  const lastProvider = () => upstream.requests.at(-1)?.headers['x-auth-provider'];

  t.test("by the route's providers: the only allowed one is asked", async (t) => {
    const calls = await callsDuring(async () => {
      const res = await gate.request('/c/orders', { headers: bearer(tokens.c) });
      t.equal(res.status, 200);
      t.same(lastProvider(), ['c']);
      t.same(upstream.requests.at(-1)?.headers['x-auth-subject'], ['tenant-c-user']);
    });
    t.same(calls, { a: 0, b: 0, c: 1 });
  });

  t.test('by host: each tenant host reaches its own provider only', async (t) => {
    const calls = await callsDuring(async () => {
      const a = await gate.request('/orders', { headers: { ...bearer(tokens.a), host: 'a.api.test' } });
      t.equal(a.status, 200);
      t.same(lastProvider(), ['a']);
      const b = await gate.request('/orders', { headers: { ...bearer(tokens.b), host: 'B.API.TEST:8443' } });
      t.equal(b.status, 200, 'host compared case-insensitively, without the port');
      t.same(lastProvider(), ['b']);
    });
    t.same(calls, { a: 1, b: 1, c: 0 });
  });

  t.test("another tenant's token on a tenant host is never sent to its issuer", async (t) => {
    const before = upstream.requests.length;
    const fresh = await ops.b.mintToken();
    const calls = await callsDuring(async () => {
      assertInvalidToken(t, await gate.request('/orders', { headers: { ...bearer(fresh), host: 'a.api.test' } }));
    });
    t.same(calls, { a: 1, b: 0, c: 0 }, 'a says inactive; b, which issued it, is not asked');
    t.equal(upstream.requests.length, before);
  });

  t.test('by provider_header among several allowed providers', async (t) => {
    const fresh = await ops.b.mintToken();
    const calls = await callsDuring(async () => {
      const res = await gate.request('/ab/orders', { headers: { ...bearer(fresh), 'x-tenant': 'b' } });
      t.equal(res.status, 200);
      t.same(lastProvider(), ['b']);
    });
    t.same(calls, { a: 0, b: 1, c: 0 });
  });

  t.test('no second provider when the first says inactive', async (t) => {
    const fresh = await ops.b.mintToken();
    const before = upstream.requests.length;
    const calls = await callsDuring(async () => {
      assertInvalidToken(t, await gate.request('/ab/orders', { headers: { ...bearer(fresh), 'x-tenant': 'a' } }));
    });
    t.same(calls, { a: 1, b: 0, c: 0 });
    t.equal(upstream.requests.length, before);
  });

  t.test('refusals of §3.3: no provider is called, nothing is forwarded', async (t) => {
    const before = upstream.requests.length;
    const cases: [string, string, Record<string, string>, RegExp][] = [
      ['several providers and no header', '/ab/orders', bearer(tokens.a), /cannot tell which provider/],
      [
        'a header naming a provider outside the list',
        '/ab/orders',
        { ...bearer(tokens.c), 'x-tenant': 'c' },
        /names no provider/,
      ],
      ['a header naming no provider at all', '/ab/orders', { ...bearer(tokens.a), 'x-tenant': 'zz' }, /names no provider/],
      [
        'a header naming another tenant on a host route',
        '/x',
        { ...bearer(tokens.c), host: 'a.api.test', 'x-tenant': 'c' },
        /names no provider/,
      ],
      [
        "a JWT whose iss is no allowed provider's",
        '/ab/orders',
        bearer(jwtClaiming(ops.c.issuer)),
        /no provider allowed here issued/,
      ],
      [
        'a JWT whose iss is no provider at all',
        '/orders',
        bearer(jwtClaiming('https://evil.example')),
        /no provider allowed here issued/,
      ],
      ['a JWT on a route that excludes its issuer', '/c/x', bearer(jwtClaiming(ops.a.issuer)), /no provider allowed here issued/],
      [
        "a header contradicting the JWT's iss",
        '/ab/orders',
        { ...bearer(jwtClaiming(ops.a.issuer)), 'x-tenant': 'b' },
        /contradicts/,
      ],
      ['no route matched, three providers, no header', '/orders', bearer(tokens.a), /cannot tell which provider/],
    ];
    for (const [name, path, headers, why] of cases) {
      const calls = await callsDuring(async () => {
        assertInvalidToken(t, await gate.request(path, { headers }), why);
      });
      t.same(calls, { a: 0, b: 0, c: 0 }, `${name}: zero calls at every provider`);
    }
    t.equal(upstream.requests.length, before, 'nothing of a refused request reached the API');
    t.notMatch(gate.rawLogs(), tokens.a, 'no token in the logs');
  });

  t.test('no route matched: any provider, chosen by the header', async (t) => {
    const fresh = await ops.c.mintToken();
    const calls = await callsDuring(async () => {
      t.equal((await gate.request('/orders', { headers: { ...bearer(fresh), 'x-tenant': 'c' } })).status, 200);
      t.same(lastProvider(), ['c']);
    });
    t.same(calls, { a: 0, b: 0, c: 1 });
  });

  t.test("a JWT-shaped token goes to its iss's provider only", async (t) => {
    // oidc-provider will not introspect a structured token (400): tollgate answers 503, and the
    // point here is who was asked.
    const calls = await callsDuring(async () => {
      const res = await gate.request('/ab/orders', { headers: bearer(jwtClaiming(ops.b.issuer)) });
      t.equal(res.status, 503);
    });
    t.same(calls, { a: 0, b: 1, c: 0 });
  });

  t.test('a real JWT access token (oidc-provider, resource indicator) is routed by its iss', async (t) => {
    const jwtIssuer = await startOidcProvider({
      configuration: {
        features: {
          clientCredentials: { enabled: true },
          introspection: { enabled: true },
          devInteractions: { enabled: false },
          resourceIndicators: {
            enabled: true,
            defaultResource: () => 'urn:orders-api',
            useGrantedResource: () => true,
            getResourceServerInfo: () => ({ scope: 'orders:read', accessTokenFormat: 'jwt', audience: 'urn:orders-api' }),
          },
        },
      },
    });
    t.teardown(() => jwtIssuer.close());
    const jwt = await jwtIssuer.mintToken();
    t.equal(jwt.split('.').length, 3, 'a JWT access token');
    const withJ = await startTollgate(t, {
      upstream: { url: upstream.url },
      providers: [providerEntry('a', ops.a.issuer), providerEntry('b', ops.b.issuer), providerEntry('j', jwtIssuer.issuer)],
      routes: [{ match: { path_prefix: '/ab/' }, providers: ['a', 'b'] }],
    });
    const before = { ...counts(), j: jwtIssuer.introspections };
    const requestsBefore = upstream.requests.length;
    assertInvalidToken(t, await withJ.request('/ab/orders', { headers: bearer(jwt) }), /no provider allowed here issued/);
    t.same({ ...counts(), j: jwtIssuer.introspections }, before, 'refused on a route that excludes its issuer: no call anywhere');
    // On the fallback route j is allowed and chosen by iss alone (no header needed among three).
    // oidc-provider will not introspect a structured token (400 unsupported_token_type), so the
    // answer is 503; the point is who was asked.
    t.equal((await withJ.request('/orders', { headers: bearer(jwt) })).status, 503);
    t.same({ ...counts(), j: jwtIssuer.introspections }, { ...before, j: before.j + 1 }, 'only j was asked');
    t.equal(upstream.requests.length, requestsBefore);
  });
});
