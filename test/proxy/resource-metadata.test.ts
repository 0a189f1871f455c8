/**
 * RFC 9728 protected resource metadata on the proxy listener: the document's members for one and
 * several providers, an identifier with a path, a reload that adds a provider; answered by tollgate
 * and never forwarded (the recording upstream sees nothing, whatever the spelling of the path);
 * built from the configuration only, so a spoofed `Host` or `X-Forwarded-Host` changes nothing.
 */
import t from 'tap';
import { validateConfig } from '../../src/config/load.js';
import { compileResourceMetadata, metadataLocation } from '../../src/proxy/resource-metadata.js';
import type { ConfigSource } from '../../src/reload.js';
import { startFakeProvider } from '../helpers/fake-provider.js';
import { bearer } from '../helpers/http.js';
import { head, rawRequest } from '../helpers/raw.js';
import { providerEntry, startTollgate, testConfig, testTree } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';

const WELL_KNOWN = '/.well-known/oauth-protected-resource';

t.test('the location RFC 9728 §3.1 derives from the identifier', async (t) => {
  const at = (id: string) => metadataLocation(id).href;
  t.equal(at('https://api.example.com'), `https://api.example.com${WELL_KNOWN}`);
  t.equal(at('https://api.example.com/'), `https://api.example.com${WELL_KNOWN}`, 'a lone / after the host is dropped');
  t.equal(at('https://api.example.com/mcp'), `https://api.example.com${WELL_KNOWN}/mcp`);
  t.equal(at('https://api.example.com/v1/mcp/'), `https://api.example.com${WELL_KNOWN}/v1/mcp/`);
  t.equal(at('https://api.example.com:8443/a?x=1'), `https://api.example.com:8443${WELL_KNOWN}/a?x=1`, 'port and query kept');
  t.equal(at('http://[::1]:7080/mcp'), `http://[::1]:7080${WELL_KNOWN}/mcp`);
});

t.test('the document: one provider, defaults', async (t) => {
  const op = await startFakeProvider();
  t.teardown(() => op.close());
  op.answer(() => ({ active: true, sub: 'alice', aud: 'https://api.example.com', scope: 'orders:read' }));
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const gate = await startTollgate(t, {
    upstream: { url: upstream.url },
    providers: [providerEntry('acme', op.issuer)],
    resource: { identifier: 'https://api.example.com' },
    routes: [
      { match: { path_prefix: '/health' }, public: true },
      { match: { path_prefix: '/orders' }, scopes: ['orders:read'] },
      { match: { path_prefix: '/admin' }, scopes: ['orders:admin', 'orders:read'] },
    ],
  });

  const res = await gate.request(WELL_KNOWN);
  t.equal(res.status, 200);
  t.equal(res.headers['content-type'], 'application/json');
  t.equal(res.headers['cache-control'], 'public, max-age=60', 'a short public cache');
  t.strictSame(
    res.json(),
    {
      resource: 'https://api.example.com',
      authorization_servers: [op.issuer],
      scopes_supported: ['orders:read', 'orders:admin'],
      bearer_methods_supported: ['header'],
    },
    'every member RFC 9728 §2 defines that has a value; none is null',
  );
  t.equal(Object.keys(res.json()).join(), 'resource,authorization_servers,scopes_supported,bearer_methods_supported');

  t.test('HEAD: the same headers, no body', async (t) => {
    const head = await gate.request(WELL_KNOWN, { method: 'HEAD' });
    t.equal(head.status, 200);
    t.equal(head.text, '');
    t.equal(head.headers['content-length'], String(Buffer.byteLength(res.text)));
    t.equal(head.headers['content-type'], 'application/json');
  });

  t.test('other methods: 405 with Allow, and nothing forwarded', async (t) => {
    for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']) {
      const refused = await gate.request(WELL_KNOWN, {
        method,
        headers: bearer('good-token'),
        body: method === 'POST' ? '{}' : undefined,
      });
      t.equal(refused.status, 405, method);
      t.equal(refused.headers.allow, 'GET, HEAD');
      t.equal(refused.headers['cache-control'], 'no-store');
      t.match(refused.json(), { error: 'invalid_request' });
    }
  });

  t.test('never forwarded, however the path is spelt, with a valid token or none', async (t) => {
    const spellings = [
      WELL_KNOWN,
      `${WELL_KNOWN}?x=1`,
      '/%2Ewell-known/oauth-protected-resource',
      '/.well-known/oauth-%70rotected-resource',
      '/.well-known/./oauth-protected-resource',
      '/health/../.well-known/oauth-protected-resource',
    ];
    for (const path of spellings) {
      for (const headers of [{}, bearer('good-token')]) {
        const answer = await gate.request(path, { headers });
        t.equal(answer.status, 200, path);
        t.equal(answer.text, res.text, `${path}: the same document`);
      }
    }
    t.equal(upstream.requests.length, 0, 'the upstream saw nothing');
    t.equal(op.callCount, 0, 'no provider was asked');
  });

  t.test('a body of unknowable length: the same 400 and close as anywhere', async (t) => {
    const bytes = head(`GET ${WELL_KNOWN} HTTP/1.1`, [
      ['Host', 'api.example.com'],
      ['Transfer-Encoding', 'identity'],
    ]);
    const exchange = await rawRequest(gate.url, `${bytes}GET /orders HTTP/1.1\r\nHost: api.example.com\r\n\r\n`);
    t.equal(exchange.responses[0]?.status, 400);
    t.ok(exchange.closed, 'the connection is closed: what follows is never read as a request');
    t.equal(exchange.responses.length, 1);
  });

  t.test('a spoofed Host or X-Forwarded-Host changes neither the document nor the challenges', async (t) => {
    const spoofed = { host: 'evil.example', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'http' };
    const answer = await gate.request(WELL_KNOWN, { headers: spoofed });
    t.equal(answer.text, res.text);
    const refused = await gate.request('/orders', { headers: spoofed });
    t.equal(refused.status, 401);
    t.match(refused.headers['www-authenticate'], `resource_metadata="https://api.example.com${WELL_KNOWN}"`);
    t.notMatch(refused.headers['www-authenticate'], /evil/);
  });

  t.test('one access line each, as public requests', async (t) => {
    const line = gate.accessLines().find((l) => l.path === WELL_KNOWN && l.method === 'GET');
    t.match(line, { status: 200, outcome: 'public', route: null, provider: null, code: null, cache: null });
    t.ok((await gate.metric('tollgate_requests_total', { outcome: 'public', provider: 'none' })) > 0);
  });

  t.test('the path beside it is an ordinary request', async (t) => {
    const before = upstream.requests.length;
    t.equal((await gate.request(`${WELL_KNOWN}/other`)).status, 401, 'a protected route needs a token');
    t.equal((await gate.request(`${WELL_KNOWN}/other`, { headers: bearer('good-token') })).status, 200);
    t.equal(upstream.requests.length, before + 1);
  });
});

t.test('several providers, an identifier with a path, every option', async (t) => {
  const op = await startFakeProvider();
  t.teardown(() => op.close());
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const gate = await startTollgate(t, {
    upstream: { url: upstream.url },
    providers: [
      providerEntry('a', op.tenantIssuer('a')),
      providerEntry('b', op.tenantIssuer('b')),
      // The same issuer with other settings (another route's credentials): listed once.
      providerEntry('a2', op.tenantIssuer('a'), { timeout_ms: 500 }),
    ],
    provider_header: 'X-Tenant',
    token_sources: ['header', 'query', 'cookie:at'],
    resource: {
      identifier: 'https://api.example.com/v1/mcp',
      scopes_supported: ['mcp:tools'],
      documentation: 'https://docs.example.com/mcp',
    },
    routes: [{ match: { path_prefix: '/v1' }, scopes: ['orders:read'] }],
  });
  const res = await gate.request(`${WELL_KNOWN}/v1/mcp`);
  t.equal(res.status, 200);
  t.strictSame(res.json(), {
    resource: 'https://api.example.com/v1/mcp',
    authorization_servers: [op.tenantIssuer('a'), op.tenantIssuer('b')],
    scopes_supported: ['mcp:tools'],
    bearer_methods_supported: ['header', 'query'],
    resource_documentation: 'https://docs.example.com/mcp',
  });
  t.equal((await gate.request(WELL_KNOWN)).status, 401, 'the root document is not this resource’s: an ordinary request');
  t.equal(upstream.requests.length, 0);
});

t.test('only what has a value: no scopes anywhere, tokens only in a cookie', async (t) => {
  const config = testConfig({
    upstream: { url: 'http://127.0.0.1:9' },
    providers: [providerEntry('a', 'https://idp.example')],
    token_sources: ['cookie:session'],
    resource: { identifier: 'https://api.example.com/' },
  });
  const metadata = compileResourceMetadata(config)!;
  t.strictSame(metadata.document, {
    resource: 'https://api.example.com/',
    authorization_servers: ['https://idp.example'],
    bearer_methods_supported: [],
  });
  t.equal(metadata.url, `https://api.example.com${WELL_KNOWN}`);
  t.equal(
    compileResourceMetadata(
      testConfig({ upstream: { url: 'http://127.0.0.1:9' }, providers: [providerEntry('a', 'https://idp.example')] }),
    ),
    null,
  );
});

t.test('a reload that adds a provider updates the document', async (t) => {
  const op = await startFakeProvider();
  t.teardown(() => op.close());
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const base = { upstream: { url: upstream.url }, resource: { identifier: 'https://api.example.com/mcp' } };
  let tree: Record<string, unknown> = { ...base, providers: [providerEntry('a', op.tenantIssuer('a'))] };
  const source: ConfigSource = { load: () => validateConfig(testTree(tree)), file: undefined, baseDir: process.cwd() };
  const gate = await startTollgate(t, tree, { source, reload: { watch: false } });
  const servers = async () => (await gate.request(`${WELL_KNOWN}/mcp`)).json().authorization_servers;
  t.same(await servers(), [op.tenantIssuer('a')]);

  tree = { ...base, providers: [providerEntry('a', op.tenantIssuer('a')), providerEntry('b', op.tenantIssuer('b'))] };
  t.match(await gate.app.reload(), { ok: true });
  t.same(await servers(), [op.tenantIssuer('a'), op.tenantIssuer('b')]);

  tree = { ...tree, resource: { identifier: 'https://api.example.com/v2' } };
  t.match(await gate.app.reload(), { ok: true });
  t.equal(
    (await gate.request(`${WELL_KNOWN}/v2`)).json().resource,
    'https://api.example.com/v2',
    'a new identifier, a new location',
  );
  const refused = await gate.request('/anything');
  t.match(refused.headers['www-authenticate'], `resource_metadata="https://api.example.com${WELL_KNOWN}/v2"`);

  const { resource: _, ...without } = tree;
  tree = without;
  t.match(await gate.app.reload(), { ok: true });
  t.equal((await gate.request(`${WELL_KNOWN}/v2`)).status, 401, 'resource removed: no document, an ordinary request');
  t.notMatch((await gate.request('/anything')).headers['www-authenticate'], /resource_metadata/);
  t.equal(upstream.requests.length, 0);
});
