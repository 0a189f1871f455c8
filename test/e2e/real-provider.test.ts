/**
 * The product's promise, against a real OpenID provider (oidc-provider) and a recording upstream:
 * a client_credentials token lets a request through with the identity in headers; a random or
 * revoked token does not, and nothing of a refused request reaches the API.
 */
import t from 'tap';
import { startOidcProvider } from '../../dev/oidc-provider.js';
import { manualClock } from '../helpers/clock.js';
import { bearer } from '../helpers/http.js';
import { startTollgate, providerEntry } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';

t.test('a real provider vouches for a client_credentials token', async (t) => {
  const op = await startOidcProvider({ extraTokenClaims: (clientId) => ({ sub: `service:${clientId}` }) });
  t.teardown(() => op.close());
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  // Real time at the start (the provider stamps its tokens with it); then it moves only when told.
  const clock = manualClock(Date.now());
  const gate = await startTollgate(
    t,
    { upstream: { url: upstream.url }, providers: [providerEntry('acme', op.issuer)] },
    { clock },
  );
  const token = await op.mintToken(undefined, undefined, 'orders:read orders:write');

  const res = await gate.request('/orders/42?full=1', { headers: bearer(token) });
  t.equal(res.status, 200);
  const seen = upstream.single();
  t.equal(seen.url, '/orders/42?full=1');
  t.same(seen.headers['x-auth-subject'], ['service:demo-app']);
  t.same(seen.headers['x-auth-client-id'], ['demo-app']);
  t.same(seen.headers['x-auth-scope'], ['orders:read orders:write']);
  t.same(seen.headers['x-auth-issuer'], [op.issuer]);
  t.match(seen.headers['x-auth-expires-at']?.[0], /^\d{10}$/);
  t.same(seen.headers['x-auth-provider'], ['acme']);
  t.equal(seen.headers['x-auth-username'], undefined, 'a missing claim adds no header');
  t.equal(seen.headers.authorization, undefined, 'the token never reaches the API');

  t.test('a random token is refused and never forwarded', async (t) => {
    const before = upstream.requests.length;
    const refused = await gate.request('/orders', { headers: bearer('not-a-real-token') });
    t.equal(refused.status, 401);
    t.match(refused.headers['www-authenticate'], /error="invalid_token"/);
    t.equal(upstream.requests.length, before);
  });

  t.test('a revoked token is refused once its cache entry ends', async (t) => {
    const fresh = await op.mintToken();
    t.equal((await gate.request('/a', { headers: bearer(fresh) })).status, 200);
    await op.revokeToken(fresh);
    // The answer is cached for ttl_s (60 s, the default; 50 s is before its refresh-ahead window):
    // the revocation shows only after it.
    clock.advance(50_000);
    t.equal((await gate.request('/a', { headers: bearer(fresh) })).status, 200, 'still the cached answer at 50 s');
    clock.advance(10_001);
    t.equal((await gate.request('/a', { headers: bearer(fresh) })).status, 401, 'the provider is asked again after ttl_s');
  });
});
