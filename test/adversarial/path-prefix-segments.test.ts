/**
 * `path_prefix` matches whole path segments, as Kubernetes Ingress `pathType: Prefix` does. A
 * character prefix made `/healthcare/patients/42` and `/health-admin/users` public beside a public
 * `/health` route — and the Helm chart's example configuration shipped exactly that route.
 */
import t from 'tap';
import { findShadowedRoutes } from '../../src/config/shadow.js';
import { pathPrefixCovers } from '../../src/proxy/routes.js';
import { startGate } from '../helpers/gate.js';
import { head, rawRequest } from '../helpers/raw.js';

t.test('pathPrefixCovers: segment by segment', async (t) => {
  const cases: [string, string, boolean][] = [
    ['/health', '/health', true],
    ['/health', '/health/', true],
    ['/health', '/health/live', true],
    ['/health', '/health;v=1', true], // a segment parameter (Tomcat, Spring): the same resource
    ['/health', '/healthcare', false],
    ['/health', '/healthcare/patients/42', false],
    ['/health', '/health-admin/users', false],
    ['/health', '/health.json', false],
    ['/health', '/heal', false],
    ['/health', '/', false],
    ['/health/', '/health/live', true],
    ['/health/', '/health/', true],
    ['/health/', '/health', false],
    ['/api/v1', '/api/v1/orders', true],
    ['/api/v1', '/api/v10', false],
    ['/', '/anything', true],
    ['/', '/', true],
  ];
  for (const [prefix, path, covered] of cases) t.equal(pathPrefixCovers(prefix, path), covered, `${prefix} ~ ${path}`);
});

t.test('over HTTP: /healthcare and /health-admin need a token beside a public /health', async (t) => {
  const g = await startGate(t, {
    config: {
      routes: [
        { match: { path_prefix: '/health' }, public: true },
        { match: { path_prefix: '/admin' }, scopes: ['orders:admin'] },
      ],
    },
  });
  const send = (target: string, token?: string) =>
    rawRequest(
      g.gate.url,
      head(`GET ${target} HTTP/1.1`, [
        ['Host', g.host],
        ...(token === undefined ? [] : [['Authorization', `Bearer ${token}`] as const]),
        ['Connection', 'close'],
      ]),
    );

  for (const target of ['/health', '/health/', '/health/live']) {
    const res = await send(target);
    t.equal(res.responses[0]?.status, 200, `${target} is public`);
    t.equal(g.upstream.requests.at(-1)?.url, target);
  }
  for (const target of ['/healthcare/patients/42', '/health-admin/users', '/healthz', '/health.json']) {
    const before = g.upstream.requests.length;
    const res = await send(target);
    t.equal(res.responses[0]?.status, 401, `${target} needs a token`);
    t.same(res.responses[0]?.headers['www-authenticate'], ['Bearer realm="tollgate"']);
    t.equal(g.upstream.requests.length, before, `nothing of ${target} reached the upstream`);
    const vouched = await send(target, 'good');
    t.equal(vouched.responses[0]?.status, 200, `${target} with a token`);
    t.equal(g.upstream.requests.at(-1)?.headers['x-auth-subject']?.[0], 'alice', `${target} carries the identity`);
  }
  // The scoped route's segments: /administrators is not /admin (no scope needed, a token is).
  const admins = await send('/administrators', 'good');
  t.equal(admins.responses[0]?.status, 200, '/administrators is not the /admin route');
  const admin = await send('/admin/users', 'good');
  t.equal(admin.responses[0]?.status, 403, '/admin/users needs orders:admin');
});

t.test('a shorter prefix shadows only the routes inside its segments', async (t) => {
  const route = (path_prefix: string) => ({ match: { path_prefix }, public: false, scopes: [] });
  t.same(findShadowedRoutes([route('/api'), route('/apiv2')]), [], '/api does not take /apiv2');
  t.same(findShadowedRoutes([route('/api/'), route('/api')]), [], '/api/ does not take /api itself');
  t.equal(findShadowedRoutes([route('/api'), route('/api/v2')]).length, 1, '/api takes /api/v2');
  t.equal(findShadowedRoutes([route('/api/'), route('/api/v2')]).length, 1, '/api/ takes /api/v2');
});
