/**
 * Issue 18, failure 1: an issuer configured with or without one trailing `/` is the same issuer —
 * in the discovered metadata, in the choice of provider by a JWT's `iss`, and in the answer's
 * `iss` check. Found against LemonLDAP::NG (issuer with `/`) and Glewlwyd (without): ready, then
 * every request refused; or never ready. Any other difference keeps the provider unready, and
 * the log says both values.
 */
import t from 'tap';
import { startFakeProvider } from '../helpers/fake-provider.js';
import { bearer } from '../helpers/http.js';
import { assertInvalidToken, jwtClaiming } from '../helpers/tenants.js';
import { eventually, providerEntry, startTollgate } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';

const upstream = await startUpstream();
t.teardown(() => upstream.close());

t.test('metadata, JWT routing and the iss check forgive one trailing / on either side', async (t) => {
  const fake = await startFakeProvider();
  t.teardown(() => fake.close());
  // Tenant `slash` is configured with a `/` its metadata and tokens lack; tenant `bare` without
  // the `/` its tokens carry.
  const slash = fake.tenantIssuer('slash');
  const bare = fake.tenantIssuer('bare');
  fake.script((token, req, res) => {
    const tenant = /^\/t\/([^/]+)\//.exec(req.url ?? '')?.[1];
    const iss = tenant === 'slash' ? slash : `${bare}/`;
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ active: true, iss, sub: `user-${token.length}` }));
  });
  const gate = await startTollgate(t, {
    upstream: { url: upstream.url },
    providers: [providerEntry('slash', `${slash}/`), providerEntry('bare', bare)],
    provider_header: 'X-Tenant',
  });
  t.ok(gate.app.isReady(), 'discovery accepted metadata naming the issuer without its `/`');

  t.equal((await gate.request('/a', { headers: bearer(jwtClaiming(slash)) })).status, 200, 'JWT iss without `/`');
  t.same(upstream.requests.at(-1)?.headers['x-auth-provider'], ['slash']);
  t.equal((await gate.request('/b', { headers: bearer(jwtClaiming(`${bare}/`)) })).status, 200, 'JWT iss with `/`');
  t.same(upstream.requests.at(-1)?.headers['x-auth-provider'], ['bare']);
  const opaque = await gate.request('/c', { headers: { ...bearer('opaque-token-1'), 'x-tenant': 'bare' } });
  t.equal(opaque.status, 200, 'an opaque token whose answer has iss with `/`');

  // One `/`, not any number: `…//` is another issuer.
  assertInvalidToken(t, await gate.request('/d', { headers: bearer(jwtClaiming(`${bare}//`)) }), /no provider allowed/);
});

t.test("an answer's iss that differs by more than one / is refused", async (t) => {
  const fake = await startFakeProvider();
  t.teardown(() => fake.close());
  fake.answer(() => ({ active: true, iss: `${fake.issuer}//`, sub: 'x' }));
  const gate = await startTollgate(t, { upstream: { url: upstream.url }, providers: [providerEntry('one', fake.issuer)] });
  assertInvalidToken(t, await gate.request('/x', { headers: bearer('opaque-token-2') }), /another issuer/);
});

t.test('metadata naming another issuer: never ready, and the log says both values', async (t) => {
  const fake = await startFakeProvider({ metadataIssuer: (base) => `${base}/other` });
  t.teardown(() => fake.close());
  const gate = await startTollgate(
    t,
    { upstream: { url: upstream.url }, providers: [providerEntry('one', fake.issuer)] },
    { waitReady: false, discoveryRetryMs: { first: 10, max: 10 } },
  );
  await eventually(() => gate.logs.filter((l) => l.msg === 'provider discovery failed').length >= 2, 'discovery was not retried');
  t.notOk(gate.app.isReady());
  const line = gate.logs.find((l) => l.msg === 'provider discovery failed')!;
  t.match(line.cause, `names issuer ${fake.issuer}/other, not the configured ${fake.issuer}`);
  t.equal(fake.callCount, 0, 'no introspection call to a provider that is not ready');
});
