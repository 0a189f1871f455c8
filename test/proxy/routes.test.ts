/**
 * SPEC §3.1: the path is normalised once; routes are matched on the normalised path and exactly
 * that path is forwarded. A path that smuggles a separator or climbs above the root is refused.
 */
import t from 'tap';
import { isTollgateError } from '../../src/errors.js';
import { normalizeTarget } from '../../src/proxy/routes.js';
import { startFakeProvider } from '../helpers/fake-provider.js';
import { rawRequest } from '../helpers/http.js';
import { providerEntry, startTollgate } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';

t.test('normalizeTarget', async (t) => {
  t.test('resolves dot-segments and decodes unreserved characters', async (t) => {
    const cases: [string, string, string?][] = [
      ['/', '/'],
      ['/orders/42', '/orders/42'],
      ['/a/./b', '/a/b'],
      ['/a/b/../c', '/a/c'],
      ['/a/b/..', '/a/'],
      ['/a/.', '/a/'],
      ['/a/b/./../c/', '/a/c/'],
      ['/a/%2e%2e/b', '/b'],
      ['/a/%2E%2e/b', '/b'],
      ['/a/.%2e/b', '/b'],
      ['/a/%2e/b', '/a/b'],
      ['/%61%62%63', '/abc'],
      ['/%7E%7e%2D%5F%2E', '/~~-_.'],
      ['/caf%c3%a9', '/caf%C3%A9'],
      ['/a%20b', '/a%20b'],
      ['/a/%2525/b', '/a/%2525/b'], // an encoded % stays encoded
      ['/a//b', '/a//b'],
      ['/a/...', '/a/...'],
      ['/a/..b/.c', '/a/..b/.c'],
      ['/a;x=1/b', '/a;x=1/b'],
      ['/a/../b?x=/../y&z=%2f', '/b', '?x=/../y&z=%2f'],
      ['/?access_token=x', '/', '?access_token=x'],
    ];
    for (const [raw, path, query = ''] of cases) {
      t.same(normalizeTarget(raw), { path, query }, raw);
    }
  });

  t.test('refuses with 400 invalid_request, without a Bearer challenge', async (t) => {
    for (const raw of [
      '/a%2fb',
      '/a%2Fb',
      '/a%5cb',
      '/a%5Cb',
      '/a%00b',
      '/a\\b',
      '/..',
      '/../a',
      '/a/../..',
      '/a/../../b',
      '/%2e%2e/a',
      '/a/%2e%2e/%2e%2e',
      '/a/..;/b',
      '/a/..;x=1/b',
      '/a/.;/b',
      // A dot encoded twice: refused, so an upstream that decodes twice never resolves it.
      '/a/%252e%252e/b',
      '/a%zz',
      '/a%2',
      '/a%',
      'http://evil.example/a',
      '*',
      '',
    ]) {
      try {
        normalizeTarget(raw);
        t.fail(`${JSON.stringify(raw)} was accepted`);
      } catch (err) {
        t.ok(isTollgateError(err) && err.code === 'invalid_request' && !err.challenge, `${JSON.stringify(raw)} → 400`);
      }
    }
  });
});

t.test('over HTTP', async (t) => {
  const fake = await startFakeProvider();
  const upstream = await startUpstream();
  t.teardown(async () => {
    await Promise.all([fake.close(), upstream.close()]);
  });
  fake.answer((token) => (token === 'good-token' ? { active: true, sub: 'alice', scope: 'admin' } : { active: false }));
  const gate = await startTollgate(t, {
    upstream: { url: upstream.url },
    providers: [providerEntry('fake', fake.issuer)],
    routes: [
      { match: { path_prefix: '/public' }, public: true },
      { match: { path_prefix: '/admin' }, scopes: ['admin'] },
    ],
  });
  const get = (target: string, headers: string[] = []) =>
    rawRequest(gate.url, [`GET ${target} HTTP/1.1`, 'Host: api.example', ...headers].join('\r\n'));

  t.test('a public prefix followed by /../ is not judged public', async (t) => {
    for (const target of [
      '/public/../admin/users',
      '/public/%2e%2e/admin/users',
      '/public/.%2E/admin/users',
      '/public/./../admin',
    ]) {
      const before = upstream.requests.length;
      const res = await get(target);
      t.equal(res.status, 401, `${target}: a token is needed`);
      t.same(res.headers['www-authenticate'], ['Bearer realm="tollgate"']);
      t.equal(upstream.requests.length, before, `${target}: nothing forwarded`);
    }
  });

  t.test('the upstream receives exactly the normalised path', async (t) => {
    const cases: [string, string, string[]][] = [
      ['/public/../admin/users?x=1', '/admin/users?x=1', ['Authorization: Bearer good-token']],
      ['/public/./a/../b/%7Euser?q=/../x', '/public/b/~user?q=/../x', []],
      ['/public/%2e%2e/public/x', '/public/x', []],
      ['/public/caf%c3%a9', '/public/caf%C3%A9', []],
    ];
    for (const [target, forwarded, headers] of cases) {
      const res = await get(target, headers);
      t.equal(res.status, 200, target);
      t.equal(upstream.requests[upstream.requests.length - 1]?.url, forwarded, `${target} → ${forwarded}`);
    }
  });

  t.test('a bad path is refused with 400 and never forwarded', async (t) => {
    const calls = fake.calls.length;
    for (const target of [
      '/public/a%2fb',
      '/public/a%5Cb',
      '/public/a%00',
      '/public/../..',
      '/admin/..;/x',
      '/public\\..\\admin',
      '/public/%252e%252e/x',
    ]) {
      const before = upstream.requests.length;
      const res = await get(target, ['Authorization: Bearer good-token']);
      t.equal(res.status, 400, target);
      t.same(JSON.parse(res.body).error, 'invalid_request');
      t.equal(res.headers['www-authenticate'], undefined, 'a path problem carries no Bearer challenge');
      t.same(res.headers['cache-control'], ['no-store']);
      t.equal(upstream.requests.length, before, `${target}: nothing forwarded`);
    }
    t.equal(fake.calls.length, calls, 'no provider was asked');
  });

  t.test('an absolute-form request target is refused', async (t) => {
    const before = upstream.requests.length;
    const res = await get(`${upstream.url}/public/x`);
    t.equal(res.status, 400);
    t.same(JSON.parse(res.body).error, 'invalid_request');
    t.equal(upstream.requests.length, before);
  });
});
