/**
 * RFC 8707 audience binding: with `resource` set, a provider that names no `audience` accepts only
 * tokens whose `aud` contains the resource identifier (the MCP authorization specification: a
 * server accepts only tokens issued for it). A provider's own `audience` still decides for it.
 * Shown on the pure check, with a scripted provider for every shape of `aud`, and with a real one
 * (oidc-provider with resource indicators) issuing tokens for this resource and for another.
 */
import t from 'tap';
import { errors } from 'oidc-provider';
import { startOidcProvider, APP_CLIENT } from '../../dev/oidc-provider.js';
import type { Answer } from '../../src/provider/answer.js';
import { checkPolicy, resourceAudience, type PolicyProvider } from '../../src/proxy/policy.js';
import { startFakeProvider } from '../helpers/fake-provider.js';
import { assertRefusal, bearer } from '../helpers/http.js';
import { providerEntry, startTollgate } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';

t.test('the spellings of one resource', async (t) => {
  t.same(resourceAudience('https://api.example.com'), ['https://api.example.com', 'https://api.example.com/']);
  t.same(resourceAudience('https://api.example.com/'), ['https://api.example.com/', 'https://api.example.com']);
  t.same(resourceAudience('https://API.example.com:443/mcp'), ['https://API.example.com:443/mcp', 'https://api.example.com/mcp']);
  t.same(resourceAudience('https://api.example.com/mcp'), ['https://api.example.com/mcp'], 'a path is compared exactly');
});

t.test('the pure check', async (t) => {
  const route = { scopes: [], scopeText: '' };
  const answer = (claims: Record<string, unknown>): Answer => ({ claims, scopes: new Set<string>(), provider: 'idp' });
  const resource = resourceAudience('https://api.example.com/mcp');
  const noAudience: PolicyProvider = { issuer: 'https://idp.example', audience: undefined };
  const check = (claims: Record<string, unknown>, { provider = noAudience, aud = resource as readonly string[] | null } = {}) =>
    checkPolicy(answer({ active: true, ...claims }), provider, route, 1000, 30, aud ?? undefined);
  t.doesNotThrow(() => check({ aud: 'https://api.example.com/mcp' }));
  t.doesNotThrow(() => check({ aud: ['https://other.example', 'https://api.example.com/mcp'] }));
  t.throws(() => check({ aud: 'https://other.example/mcp' }), { code: 'invalid_token' });
  t.throws(() => check({}), { code: 'invalid_token' }, 'no aud at all');
  t.throws(() => check({ aud: 'https://api.example.com/mcp/' }), { code: 'invalid_token' }, 'another path');
  t.doesNotThrow(() => check({}, { aud: null }), 'no resource: no aud required');
  const ownAudience: PolicyProvider = { issuer: 'https://idp.example', audience: ['orders-api'] };
  t.doesNotThrow(() => check({ aud: 'orders-api' }, { provider: ownAudience }), "the provider's own audience decides for it");
  t.throws(() => check({ aud: 'https://api.example.com/mcp' }, { provider: ownAudience }), { code: 'invalid_token' });
});

t.test('over HTTP, with a scripted provider', async (t) => {
  const op = await startFakeProvider();
  t.teardown(() => op.close());
  const claims: Record<string, Record<string, unknown>> = {
    mine: { aud: 'https://api.example.com' },
    'mine-slash': { aud: 'https://api.example.com/' },
    'mine-among-others': { aud: ['https://other.example.com', 'https://api.example.com'] },
    other: { aud: 'https://other.example.com' },
    none: {},
    'not-a-string': { aud: 42 },
    'orders-api': { aud: 'orders-api' },
  };
  op.answer((token) => ({ active: true, sub: 'agent', ...claims[token] }));
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const gate = await startTollgate(t, {
    upstream: { url: upstream.url },
    providers: [
      providerEntry('open', op.tenantIssuer('open')),
      providerEntry('own', op.tenantIssuer('own'), { audience: 'orders-api' }),
    ],
    provider_header: 'X-Tenant',
    resource: { identifier: 'https://api.example.com' },
  });
  const call = (token: string, tenant: string) => gate.request('/orders', { headers: { ...bearer(token), 'x-tenant': tenant } });

  for (const token of ['mine', 'mine-slash', 'mine-among-others']) {
    t.equal((await call(token, 'open')).status, 200, `${token}: issued for this resource`);
  }
  const before = upstream.requests.length;
  for (const token of ['other', 'none', 'not-a-string', 'orders-api']) {
    const res = await call(token, 'open');
    assertRefusal(t, res, 401, 'invalid_token');
    t.match(res.json().error_description, /audience/, `${token}: refused for its audience`);
  }
  t.equal(upstream.requests.length, before, 'nothing of a refused request reached the upstream');
  t.equal((await call('orders-api', 'own')).status, 200, "a provider's own audience still decides for it");
  assertRefusal(t, await call('mine', 'own'), 401, 'invalid_token');
});

t.test('with a real provider: a token for another resource is refused, one for this resource passes', async (t) => {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const resource = 'https://api.example.com/mcp';
  const other = 'https://other.example.com/mcp';
  const op = await startOidcProvider({
    configuration: {
      features: {
        resourceIndicators: {
          enabled: true,
          defaultResource: () => undefined as unknown as string,
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx, indicator) => {
            if (indicator !== resource && indicator !== other) throw new errors.InvalidTarget();
            return { scope: 'orders:read', accessTokenFormat: 'opaque' };
          },
        },
      },
    },
  });
  t.teardown(() => op.close());
  const mint = async (target: string) => {
    const res = await fetch(`${op.issuer}/token`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${APP_CLIENT.client_id}:${APP_CLIENT.client_secret}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'orders:read', resource: target }),
    });
    const body = (await res.json()) as { access_token?: string };
    if (body.access_token === undefined) throw new Error(`no token for ${target}: ${JSON.stringify(body)}`);
    return body.access_token;
  };
  const gate = await startTollgate(t, {
    upstream: { url: upstream.url },
    providers: [providerEntry('idp', op.issuer)],
    resource: { identifier: resource },
  });
  assertRefusal(t, await gate.request('/mcp', { headers: bearer(await mint(other)) }), 401, 'invalid_token');
  t.equal(upstream.requests.length, 0);
  t.equal((await gate.request('/mcp', { headers: bearer(await mint(resource)) })).status, 200);
  t.equal(upstream.requests.length, 1);
});
