/**
 * SPEC §3.4: the introspection call itself. A POST to the discovered (OIDC or RFC 8414) or
 * configured endpoint with `token` and `token_type_hint=access_token`, authenticated as the
 * provider's auth_method says. The fake provider records what it received.
 */
import t from 'tap';
import { startFakeProvider } from '../helpers/fake-provider.js';
import { bearer, request } from '../helpers/http.js';
import { providerEntry, startTollgate } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';

const upstream = await startUpstream();
t.teardown(() => upstream.close());

/** RFC 6749 §2.3.1: id and secret form-encoded (space as `+`), then joined and base64-encoded. */
const formEncode = (v: string) => new URLSearchParams({ v }).toString().slice(2);
const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${formEncode(id)}:${formEncode(secret)}`).toString('base64')}`;

t.test('client_secret_basic (the default), discovered through OIDC metadata', async (t) => {
  const fake = await startFakeProvider({ discovery: 'oidc' });
  t.teardown(() => fake.close());
  fake.answer(() => ({ active: true, sub: 'alice' }));
  const gate = await startTollgate(t, {
    upstream: { url: upstream.url },
    providers: [providerEntry('p', fake.issuer, { client_id: 'tollgate:1', client_secret: 'se cret/&' })],
  });
  t.equal((await gate.request('/x', { headers: bearer('tok-basic') })).status, 200);
  t.equal(fake.requests.length, 1);
  const call = fake.requests[0]!;
  t.match(call.contentType, /^application\/x-www-form-urlencoded\b/);
  t.same(Object.fromEntries(call.body), { token: 'tok-basic', token_type_hint: 'access_token' }, 'no credentials in the body');
  t.equal(fake.authorizations[0], basic('tollgate:1', 'se cret/&'), 'RFC 6749 §2.3.1: form-encoded id and secret');
});

// Issue 18, failure 3: Glewlwyd and LemonLDAP::NG do not decode the form-encoded id and secret,
// so a secret with anything but letters and digits failed every call there.
t.test('basic_auth_encoding: raw sends id and secret as they are', async (t) => {
  const fake = await startFakeProvider();
  t.teardown(() => fake.close());
  fake.answer(() => ({ active: true, sub: 'alice' }));
  const secret = 'se-cret/&+é';
  const gate = await startTollgate(t, {
    upstream: { url: upstream.url },
    providers: [
      providerEntry('raw', fake.tenantIssuer('raw'), {
        client_id: 'toll gate',
        client_secret: secret,
        basic_auth_encoding: 'raw',
      }),
      providerEntry('rfc', fake.tenantIssuer('rfc'), { client_secret: secret, basic_auth_encoding: 'rfc6749' }),
    ],
    provider_header: 'X-Tenant',
  });
  t.equal((await gate.request('/x', { headers: { ...bearer('tok-raw'), 'x-tenant': 'raw' } })).status, 200);
  t.equal((await gate.request('/x', { headers: { ...bearer('tok-rfc'), 'x-tenant': 'rfc' } })).status, 200);
  t.equal(fake.authorizations[0], `Basic ${Buffer.from(`toll gate:${secret}`).toString('base64')}`, 'raw: RFC 7617 as is');
  // openid-client encodes more than URLSearchParams does (`-` as `%2D`, the case that broke).
  const rfc = Buffer.from(fake.authorizations[1]!.slice('Basic '.length), 'base64').toString();
  t.equal(rfc, `tollgate:${encodeURIComponent(secret).replace(/-/g, '%2D')}`, 'rfc6749: form-encoded, as without the key');
  t.same(
    Object.fromEntries(fake.requests[0]!.body),
    { token: 'tok-raw', token_type_hint: 'access_token' },
    'no credentials in the body',
  );
});

t.test('client_secret_post, discovered through RFC 8414 metadata', async (t) => {
  const fake = await startFakeProvider({ discovery: 'oauth2' });
  t.teardown(() => fake.close());
  fake.answer(() => ({ active: true, sub: 'alice' }));
  const gate = await startTollgate(t, {
    upstream: { url: upstream.url },
    providers: [providerEntry('p', fake.issuer, { auth_method: 'client_secret_post' })],
  });
  t.equal((await gate.request('/x', { headers: bearer('tok-post') })).status, 200);
  t.equal(fake.requests.length, 1);
  t.same(Object.fromEntries(fake.requests[0]!.body), {
    token: 'tok-post',
    token_type_hint: 'access_token',
    client_id: 'tollgate',
    client_secret: 'tollgate-secret',
  });
  t.equal(fake.authorizations[0], undefined, 'no Authorization header');
});

t.test('auth_method none, at an explicit endpoint (no discovery)', async (t) => {
  const fake = await startFakeProvider({ discovery: false });
  t.teardown(() => fake.close());
  fake.answer(() => ({ active: true, sub: 'alice' }));
  const gate = await startTollgate(t, {
    upstream: { url: upstream.url },
    providers: [
      {
        name: 'p',
        issuer: fake.issuer,
        introspection_endpoint: fake.introspectionEndpoint,
        client_id: 'public-client',
        auth_method: 'none',
      },
    ],
  });
  t.equal((await gate.request('/x', { headers: bearer('tok-none') })).status, 200);
  t.same(Object.fromEntries(fake.requests[0]!.body), {
    token: 'tok-none',
    token_type_hint: 'access_token',
    client_id: 'public-client',
  });
  t.equal(fake.authorizations[0], undefined);
});

t.test('a provider without discovery metadata and no endpoint is not ready: 503, /readyz 503', async (t) => {
  const fake = await startFakeProvider({ discovery: false });
  t.teardown(() => fake.close());
  const gate = await startTollgate(
    t,
    { upstream: { url: upstream.url }, providers: [providerEntry('p', fake.issuer)] },
    { waitReady: false, discoveryRetryMs: { first: 60_000, max: 60_000 } },
  );
  const before = upstream.requests.length;
  const res = await gate.request('/x', { headers: bearer('tok-unready') });
  t.equal(res.status, 503);
  t.equal(res.json().error, 'temporarily_unavailable');
  t.equal(fake.calls.length, 0, 'no introspection without an endpoint');
  t.equal(upstream.requests.length, before, 'nothing forwarded');
  t.equal((await request(`${gate.adminUrl}/readyz`)).status, 503);
});
