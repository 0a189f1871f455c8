/**
 * One tollgate, three tenants on real OpenID providers (oidc-provider): two issue JWT access tokens
 * (RFC 9068; one signs RS256, the other ES256) and have no introspection credentials in
 * tollgate's configuration, the third issues opaque tokens and is introspected. JWTs are verified
 * locally (no call to their provider), and a key rotation at a provider is followed: the new kid
 * is fetched once, concurrent requests share that fetch, and old tokens keep working while their
 * key is published.
 */
import t from 'tap';
import { startOidcProvider, type OidcProvider } from '../../dev/oidc-provider.js';
import { manualClock } from '../helpers/clock.js';
import { assertRefusal, bearer } from '../helpers/http.js';
import { privateJwk } from '../helpers/jwt.js';
import { providerEntry, startTollgate } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';

const AUDIENCE = 'https://orders.api.example';

t.test('JWT tenants and an introspection tenant served by one tollgate', async (t) => {
  const sub = (clientId: string) => ({ sub: `service:${clientId}` });
  const rsaKeys = [privateJwk('RSA', 'rsa-1')];
  const ecKeys = [privateJwk('EC', 'ec-1'), privateJwk('RSA', 'ec-tenant-rsa')];
  const rs = await startOidcProvider({
    jwtAccessTokens: { audience: AUDIENCE, alg: 'RS256' },
    keys: rsaKeys,
    extraTokenClaims: sub,
  });
  const es = await startOidcProvider({
    jwtAccessTokens: { audience: AUDIENCE, alg: 'ES256' },
    keys: ecKeys,
    extraTokenClaims: sub,
  });
  const opaque = await startOidcProvider({ extraTokenClaims: sub });
  const providers: OidcProvider[] = [rs, es, opaque];
  t.teardown(() => Promise.all(providers.map((p) => p.close())));
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const clock = manualClock(Date.now());
  const gate = await startTollgate(
    t,
    {
      upstream: { url: upstream.url },
      providers: [
        { name: 'rs', issuer: rs.issuer, audience: AUDIENCE, jwt: { typ: 'at+jwt' } },
        { name: 'es', issuer: es.issuer, audience: AUDIENCE, jwt: { typ: 'at+jwt', algorithms: ['ES256'] } },
        providerEntry('opaque', opaque.issuer),
      ],
      provider_header: 'x-tenant',
      routes: [{ match: { path_prefix: '/admin' }, scopes: ['orders:admin'] }],
    },
    { clock },
  );

  await t.test('each tenant passes, JWTs with no provider call', async (t) => {
    const rsToken = await rs.mintToken(undefined, undefined, 'orders:read orders:write');
    const esToken = await es.mintToken(undefined, undefined, 'orders:read');
    const opaqueToken = await opaque.mintToken(undefined, undefined, 'orders:read');
    t.equal(rsToken.split('.').length, 3, 'a JWT');
    t.equal(opaqueToken.split('.').length, 1, 'an opaque token');
    // The credential probe at discovery asked once already; count from here.
    const introspectedBefore = opaque.introspections;
    // oidc-provider's JWT access tokens name the client as sub (RFC 9068 §2.2 for client_credentials).
    for (const [token, provider, scope, subject, extra] of [
      [rsToken, 'rs', 'orders:read orders:write', 'demo-app', {}],
      [esToken, 'es', 'orders:read', 'demo-app', {}],
      [opaqueToken, 'opaque', 'orders:read', 'service:demo-app', { 'x-tenant': 'opaque' }],
    ] as const) {
      const res = await gate.request('/orders/1', { headers: { ...bearer(token), ...extra } });
      t.equal(res.status, 200, `${provider} allowed`);
      const seen = upstream.requests.at(-1)!.headers;
      t.same(seen['x-auth-provider'], [provider]);
      t.same(seen['x-auth-subject'], [subject]);
      t.same(seen['x-auth-client-id'], ['demo-app']);
      t.same(seen['x-auth-scope'], [scope]);
      t.match(seen['x-auth-expires-at']?.[0], /^\d{10}$/);
    }
    t.equal(rs.introspections + es.introspections, 0, 'the JWT tenants were never asked');
    t.equal(opaque.introspections - introspectedBefore, 1, 'the opaque token was introspected');
    t.same(
      gate.accessLines().map((l) => l.check),
      ['jwt', 'jwt', 'introspection'],
    );
    assertRefusal(t, await gate.request('/admin/x', { headers: bearer(rsToken) }), 403, 'insufficient_scope');
  });

  await t.test("refused without any call: a tenant's valid JWT sent as another tenant's", async (t) => {
    const before = upstream.requests.length;
    const esToken = await es.mintToken();
    // Right signature, claimed by a tenant whose provider did not issue it.
    assertRefusal(t, await gate.request('/', { headers: { ...bearer(esToken), 'x-tenant': 'rs' } }), 401, 'invalid_token');
    t.equal(upstream.requests.length, before);
    t.equal(rs.introspections + es.introspections, 0);
  });

  await t.test('key rotation: the new kid is fetched once, shared, and old tokens keep working', async (t) => {
    const oldToken = await es.mintToken(undefined, undefined, 'orders:read');
    const fetchesBefore = es.jwksFetches;
    const next = privateJwk('EC', 'ec-2');
    // The new key signs from now on; the old one stays published while its tokens live.
    es.rotateKeys([next, ...ecKeys]);
    clock.advance(30_000);
    const fresh = await Promise.all(Array.from({ length: 10 }, () => es.mintToken(undefined, undefined, 'orders:read')));
    t.ok(
      fresh.every((token) => JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()).kid === 'ec-2'),
      'signed with the new key',
    );
    const answers = await Promise.all(fresh.map((token) => gate.request('/orders', { headers: bearer(token) })));
    t.same(
      answers.map((r) => r.status),
      fresh.map(() => 200),
    );
    t.equal(es.jwksFetches - fetchesBefore, 1, 'one JWKS fetch, shared by the concurrent requests');
    t.equal((await gate.request('/orders', { headers: bearer(oldToken) })).status, 200, 'an old token still verifies');
    t.equal(await gate.metric('tollgate_jwks_fetches_total', { provider: 'es', result: 'success' }), 2);
  });
});

t.test('introspect: always with a real provider that will not introspect its own JWTs: fails closed', async (t) => {
  // oidc-provider keeps no record of its JWT access tokens and answers their introspection with
  // 400 unsupported_token_type: a provider failure, so the route that needs its answer gets 503.
  const op = await startOidcProvider({ jwtAccessTokens: { audience: AUDIENCE, alg: 'RS256' }, keys: [privateJwk('RSA', 'k')] });
  t.teardown(() => op.close());
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const gate = await startTollgate(t, {
    upstream: { url: upstream.url },
    providers: [providerEntry('hybrid', op.issuer, { audience: AUDIENCE, jwt: {} })],
    routes: [{ match: { path_prefix: '/payments' }, introspect: 'always' }],
  });
  const token = await op.mintToken();
  // The credential probe at discovery asked once already; count from here.
  const before = op.introspections;
  t.equal((await gate.request('/orders', { headers: bearer(token) })).status, 200, 'verified locally');
  t.equal(op.introspections - before, 0);
  assertRefusal(t, await gate.request('/payments', { headers: bearer(token) }), 503, 'temporarily_unavailable');
  t.equal(op.introspections - before, 1, 'introspected on the route that asks for it');
  t.equal(upstream.requests.length, 1, 'nothing forwarded without the answer');
  t.equal(gate.accessLines().at(-1)!.check, 'introspection');
});
