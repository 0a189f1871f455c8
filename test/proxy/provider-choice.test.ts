/**
 * SPEC §3.3: which provider may see a token. A token is never sent to a provider that could not
 * have issued it; when no provider can be chosen the answer is 401 invalid_token and no provider
 * is called at all (both fakes count their calls).
 */
import t, { type Test } from 'tap';
import { startFakeProvider } from '../helpers/fake-provider.js';
import { bearer } from '../helpers/http.js';
import { providerEntry, startTollgate } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';

const acme = await startFakeProvider();
const beta = await startFakeProvider();
const upstream = await startUpstream();
t.teardown(async () => {
  await Promise.all([acme.close(), beta.close(), upstream.close()]);
});
acme.answer(() => ({ active: true, sub: 'from-acme' }));
beta.answer(() => ({ active: true, sub: 'from-beta' }));

const gate = await startTollgate(t, {
  upstream: { url: upstream.url },
  providers: [providerEntry('acme', acme.issuer), providerEntry('beta', beta.issuer)],
  provider_header: 'X-Tenant',
  routes: [{ match: { path_prefix: '/acme-only' }, providers: ['acme'] }],
});

/** A JWT-shaped token claiming `iss` (unsigned: only the provider's answer decides). */
const jwt = (claims: Record<string, unknown>) =>
  [{ alg: 'RS256', typ: 'at+jwt' }, claims, 'signature']
    .map((p) => Buffer.from(typeof p === 'string' ? p : JSON.stringify(p)).toString('base64url'))
    .join('.');

async function expectRefusedUnasked(t: Test, path: string, headers: Record<string, string>) {
  const calls = acme.calls.length + beta.calls.length;
  const before = upstream.requests.length;
  const res = await gate.request(path, { headers });
  t.equal(res.status, 401);
  t.equal(res.json().error, 'invalid_token');
  t.match(res.headers['www-authenticate'], /^Bearer realm="tollgate", error="invalid_token", error_description="[^"]+"$/);
  t.equal(acme.calls.length + beta.calls.length, calls, 'no provider was called');
  t.equal(upstream.requests.length, before, 'nothing forwarded');
}

async function expectAnsweredBy(t: Test, path: string, headers: Record<string, string>, subject: string) {
  const res = await gate.request(path, { headers });
  t.equal(res.status, 200);
  t.same(upstream.requests[upstream.requests.length - 1]?.headers['x-auth-subject'], [subject]);
}

t.test('a JWT goes to the provider whose issuer is its iss, and only there', async (t) => {
  const token = jwt({ iss: beta.issuer, sub: 'x' });
  const acmeCalls = acme.calls.length;
  await expectAnsweredBy(t, '/orders', bearer(token), 'from-beta');
  t.equal(beta.calls[beta.calls.length - 1], token);
  t.equal(acme.calls.length, acmeCalls, 'the other tenant never saw it');
});

t.test("a JWT whose iss is no allowed provider's: 401, nobody asked", async (t) => {
  await expectRefusedUnasked(t, '/orders', bearer(jwt({ iss: 'https://evil.example' })));
  await expectRefusedUnasked(t, '/acme-only/x', bearer(jwt({ iss: beta.issuer })));
});

t.test('an opaque token with several providers and no header: 401, nobody asked', async (t) => {
  await expectRefusedUnasked(t, '/orders', bearer('opaque-token-1'));
});

t.test('the provider header chooses among the allowed providers', async (t) => {
  await expectAnsweredBy(t, '/orders', { ...bearer('opaque-token-2'), 'x-tenant': 'beta' }, 'from-beta');
  await expectAnsweredBy(t, '/orders', { ...bearer('opaque-token-3'), 'x-tenant': 'acme' }, 'from-acme');
});

t.test('a header naming a provider outside the route, unknown, or contradicting the JWT: 401, nobody asked', async (t) => {
  await expectRefusedUnasked(t, '/acme-only/x', { ...bearer('opaque-token-4'), 'x-tenant': 'beta' });
  await expectRefusedUnasked(t, '/orders', { ...bearer('opaque-token-5'), 'x-tenant': 'gamma' });
  await expectRefusedUnasked(t, '/orders', { ...bearer(jwt({ iss: acme.issuer })), 'x-tenant': 'beta' });
});

t.test('one allowed provider takes an opaque token without a header', async (t) => {
  await expectAnsweredBy(t, '/acme-only/x', bearer('opaque-token-6'), 'from-acme');
});
