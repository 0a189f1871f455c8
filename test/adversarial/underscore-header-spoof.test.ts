/**
 * GHSA-vjrc-mh2v-45x6 (oauth2-proxy): only exact header names were stripped, so
 * `X-Forwarded_Email` reached Python and PHP apps that read `_` as `-`. tollgate compares names
 * lower-cased with `_` and `.` read as `-` (SPEC §3.7), on protected, public and refused requests,
 * for configured claim headers and for anything under a strip prefix.
 */
import t from 'tap';
import { head, rawRequest } from '../helpers/raw.js';
import { goodIdentity, identityOf, startGate } from '../helpers/gate.js';

/** Every spelling of one header an upstream might read as `X-Auth-Subject`. */
const SPOOFS: [string, string][] = [
  ['X-Auth-Subject', 'mallory'],
  ['x-auth-subject', 'mallory'],
  ['X-AUTH-SUBJECT', 'mallory'],
  ['X_Auth_Subject', 'mallory'],
  ['x_auth-subject', 'mallory'],
  ['X-Auth_Subject', 'mallory'],
  ['X.Auth.Subject', 'mallory'],
  ['x-auth.subject', 'mallory'],
  ['X-Auth-Subject', 'mallory, alice'], // comma-joined
  ['X-Auth-Subject', 'mallory'], // duplicated line
  ['X-Auth-Roles', 'admin'], // under the prefix, never set by tollgate
  ['x_auth_roles', 'admin'],
  ['X-Auth-Provider', 'evil'],
  ['X-Auth-Scope', 'orders:admin'],
  ['X-User', 'mallory'], // a configured claim header outside the prefix
  ['x_user', 'mallory'],
  ['X.USER', 'mallory'],
];

const config = { headers: { claims: { 'X-Auth-Subject': 'sub', 'X-User': 'sub', 'X-Auth-Scope': 'scope' } } };

t.test('a protected request: the upstream sees only the verified identity', async (t) => {
  const g = await startGate(t, { config });
  const res = await rawRequest(
    g.gate.url,
    head('GET /orders HTTP/1.1', [['Host', g.host], ['Authorization', 'Bearer good'], ...SPOOFS, ['Connection', 'close']]),
  );
  t.equal(res.responses[0]?.status, 200);
  const seen = g.upstream.single();
  t.same(identityOf(seen.headers), {
    'x-auth-subject': ['alice'],
    'x-auth-scope': ['orders:read'],
    'x-auth-provider': ['acme'],
  });
  t.same(seen.headers['x-user'], ['alice'], 'the claim header outside the prefix carries the verified value only');
  for (const [name] of SPOOFS) {
    const variants = Object.keys(seen.headers).filter(
      (n) => n.replace(/[_.]/g, '-') === name.toLowerCase().replace(/[_.]/g, '-'),
    );
    t.ok(
      variants.every((n) => n === n.replace(/[_.]/g, '-')),
      `no ${name} spelling with _ or . reached the upstream`,
    );
  }
  t.notMatch(JSON.stringify(seen.rawHeaders), /mallory|evil|orders:admin|"admin"/, 'no spoofed value reached the upstream');
});

t.test('a public request: spoofed identity headers are removed and none is added', async (t) => {
  const g = await startGate(t, { config });
  const res = await rawRequest(
    g.gate.url,
    head('GET /public/page HTTP/1.1', [['Host', g.host], ...SPOOFS, ['Connection', 'close']]),
  );
  t.equal(res.responses[0]?.status, 200);
  const seen = g.upstream.single();
  t.same(identityOf(seen.headers), {});
  t.equal(seen.headers['x-user'], undefined);
  t.notMatch(JSON.stringify(seen.rawHeaders), /mallory|evil|orders:admin/);
});

t.test('a public request with a token: still no identity (no token is read there)', async (t) => {
  const g = await startGate(t);
  const res = await g.gate.request('/public/x', { headers: { authorization: 'Bearer good', 'x-auth-subject': 'mallory' } });
  t.equal(res.status, 200);
  t.same(identityOf(g.upstream.single().headers), {});
  t.same(g.provider.calls, [], 'no introspection on a public route');
});

t.test('refused requests: nothing reaches the upstream', async (t) => {
  const g = await startGate(t, { config });
  const cases: { auth: [string, string][]; path: string; status: number }[] = [
    { auth: [], path: '/orders', status: 401 },
    { auth: [['Authorization', 'Bearer nope']], path: '/orders', status: 401 },
    { auth: [['Authorization', 'Bearer good']], path: '/admin/orders', status: 403 }, // lacks the scope
  ];
  for (const { auth, path, status } of cases) {
    const res = await rawRequest(
      g.gate.url,
      head(`GET ${path} HTTP/1.1`, [['Host', g.host], ...auth, ...SPOOFS, ['Connection', 'close']]),
    );
    t.equal(res.responses[0]?.status, status, `${path} with ${auth.length ? auth[0]![1].replace(/ .*/, ' …') : 'no token'}`);
  }
  t.equal(g.upstream.requests.length, 0);
});

t.test('the default claim map: every header tollgate sets is stripped in every spelling', async (t) => {
  const g = await startGate(t);
  const spoofs: [string, string][] = [];
  for (const name of [
    'X-Auth-Subject',
    'X-Auth-Client-Id',
    'X-Auth-Scope',
    'X-Auth-Username',
    'X-Auth-Issuer',
    'X-Auth-Expires-At',
    'X-Auth-Provider',
  ]) {
    spoofs.push(
      [name.replace(/-/g, '_'), 'spoofed'],
      [name.replace(/-/g, '.').toLowerCase(), 'spoofed'],
      [name.toUpperCase(), 'spoofed'],
    );
  }
  const res = await rawRequest(
    g.gate.url,
    head('GET /x HTTP/1.1', [['Host', g.host], ['Authorization', 'Bearer good'], ...spoofs, ['Connection', 'close']]),
  );
  t.equal(res.responses[0]?.status, 200);
  t.same(identityOf(g.upstream.single().headers), goodIdentity(g));
});
