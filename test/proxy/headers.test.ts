/**
 * SPEC §3.7: what the upstream receives. Spoofed identity headers never arrive, in any spelling;
 * the injected identity always does; claim values can never split a header; X-Forwarded-* and
 * Authorization follow their rules. Requests go over raw sockets where an HTTP client would
 * normalise what the test needs to send.
 */
import t, { type Test } from 'tap';
import { startFakeProvider } from '../helpers/fake-provider.js';
import { rawRequest } from '../helpers/http.js';
import { providerEntry, startTollgate, type TestTollgate } from '../helpers/tollgate.js';
import { startUpstream, type Recorded } from '../helpers/upstream.js';

const fake = await startFakeProvider();
const upstream = await startUpstream();
t.teardown(async () => {
  await Promise.all([fake.close(), upstream.close()]);
});

const answers = new Map<string, Record<string, unknown>>();
fake.answer((token) => answers.get(token) ?? { active: false });
let counter = 0;
function tokenFor(claims: Record<string, unknown> = {}): string {
  const token = `hdr-${++counter}`;
  answers.set(token, {
    active: true,
    iss: fake.issuer,
    sub: 'alice',
    client_id: 'app',
    scope: 'orders:read',
    exp: 1893456000,
    ...claims,
  });
  return token;
}

const routes = [{ match: { path_prefix: '/public' }, public: true }];
const gate = await startTollgate(t, { upstream: { url: upstream.url }, providers: [providerEntry('fake', fake.issuer)], routes });
const custom = await startTollgate(t, {
  upstream: { url: upstream.url },
  providers: [providerEntry('fake', fake.issuer)],
  routes,
  headers: {
    claims: {
      'X-User': 'sub',
      'X-Auth-Groups': 'groups',
      'X-Auth-Meta': 'meta',
      'X-Auth-Num': 'num',
      'X-Auth-Float': 'float',
      'X-Auth-Flag': 'flag',
      'X-Auth-Nothing': 'nothing',
    },
    claims_json: 'X-Auth-Claims',
    forward_authorization: true,
  },
});

/** Sends a GET with these header lines over a raw socket and returns what the upstream received. */
async function send(t: Test, g: TestTollgate, path: string, headers: string[], status = 200): Promise<Recorded> {
  const before = upstream.requests.length;
  const res = await rawRequest(g.url, [`GET ${path} HTTP/1.1`, 'Host: api.example:8080', ...headers].join('\r\n'));
  t.equal(res.status, status, `status of GET ${path}: ${JSON.stringify(res.raw.slice(0, 300))}`);
  t.equal(upstream.requests.length, before + 1, 'forwarded once');
  return upstream.requests[upstream.requests.length - 1]!;
}

/** Every header the upstream received whose name, read as servers may read it, starts with x-auth-. */
function identityHeaders(seen: Recorded): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < seen.rawHeaders.length; i += 2) {
    const name = seen.rawHeaders[i]!.toLowerCase().replace(/[_.]/g, '-');
    if (name.startsWith('x-auth-') || name === 'x-user') out.push([name, seen.rawHeaders[i + 1]!]);
  }
  return out.sort(([a], [b]) => a.localeCompare(b));
}

const SPOOFS = [
  'X-Auth-Subject: evil-exact',
  'x-auth-subject: evil-lower',
  'X-AUTH-SUBJECT: evil-upper',
  'X_Auth_Subject: evil-underscore',
  'X.Auth.Subject: evil-dot',
  'x-auth_subject: evil-mixed',
  'X-Auth-Subject: evil-duplicate',
  'X-Auth-Scope: orders:admin',
  'X_AUTH_SCOPE: orders:admin',
  'X-Auth-Provider: other-tenant',
  'X-Auth-Role: admin',
  'x_auth.role: admin',
  'X-Auth-Expires-At: 99999999999',
];

t.test('spoofed identity headers never arrive, in any spelling', async (t) => {
  const token = tokenFor();
  const seen = await send(t, gate, '/orders', [`Authorization: Bearer ${token}`, ...SPOOFS]);
  t.same(identityHeaders(seen), [
    ['x-auth-client-id', 'app'],
    ['x-auth-expires-at', '1893456000'],
    ['x-auth-issuer', fake.issuer],
    ['x-auth-provider', 'fake'],
    ['x-auth-scope', 'orders:read'],
    ['x-auth-subject', 'alice'],
  ]);
  t.notMatch(JSON.stringify(seen.rawHeaders), /evil|other-tenant|orders:admin|admin/);
});

t.test('injected headers are named in lower case, however the configuration spells them', async (t) => {
  // RFC 9110 §5.1: names are case-insensitive; Envoy and HTTP/2 write them so too.
  const token = tokenFor({ groups: ['a'] });
  const seen = await send(t, custom, '/orders', [`Authorization: Bearer ${token}`]);
  const names = seen.rawHeaders.filter((_, i) => i % 2 === 0);
  t.same(
    names.filter((name) => /^x-(auth|user|forwarded)/i.test(name)),
    ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-user', 'x-auth-groups', 'x-auth-provider', 'x-auth-claims'],
  );
});

t.test('spoofed identity headers are removed on a public route too', async (t) => {
  const seen = await send(t, gate, '/public/status', SPOOFS);
  t.same(identityHeaders(seen), [], 'no identity on a public route');
});

t.test('a configured claim header outside the prefixes is stripped too', async (t) => {
  const token = tokenFor();
  const seen = await send(t, custom, '/orders', [`Authorization: Bearer ${token}`, 'X-User: mallory', 'x_user: mallory']);
  t.same(seen.headers['x-user'], ['alice']);
  t.equal(seen.headers['x_user'], undefined);
  const open = await send(t, custom, '/public/x', ['X-User: mallory', 'X.User: mallory']);
  t.same(identityHeaders(open), []);
});

t.test('a header named in Connection never removes an injected one', async (t) => {
  const token = tokenFor();
  const one = await send(t, gate, '/orders', [
    `Authorization: Bearer ${token}`,
    'Connection: X-Auth-Subject',
    'X-Auth-Subject: evil',
  ]);
  t.same(one.headers['x-auth-subject'], ['alice']);
  const two = await send(t, gate, '/orders', [
    `Authorization: Bearer ${token}`,
    'Connection: close, X-Auth-Scope, X-Forwarded-For, X-Forwarded-Host',
  ]);
  t.same(two.headers['x-auth-scope'], ['orders:read'], 'the injected scope still arrives');
  t.same(two.headers['x-forwarded-for'], ['127.0.0.1'], 'and tollgate’s X-Forwarded-For');
  t.same(two.headers['x-forwarded-host'], ['api.example:8080']);
});

t.test('hop-by-hop headers and those named in Connection are removed', async (t) => {
  const token = tokenFor();
  const seen = await send(t, gate, '/orders', [
    `Authorization: Bearer ${token}`,
    'Connection: X-Custom-Hop',
    'X-Custom-Hop: 1',
    'Keep-Alive: timeout=5',
    'TE: trailers',
    'Trailer: X-Checksum',
    'Proxy-Authorization: Basic eDp5',
    'Proxy-Connection: keep-alive',
    'HTTP2-Settings: AAMAAABkAAQAAP__',
    'X-Kept: yes',
  ]);
  for (const name of [
    'x-custom-hop',
    'keep-alive',
    'te',
    'trailer',
    'proxy-authorization',
    'proxy-connection',
    'http2-settings',
  ]) {
    t.equal(seen.headers[name], undefined, `${name} removed`);
  }
  t.same(seen.headers['x-kept'], ['yes'], 'an end-to-end header is kept');
});

t.test('claim values that could split a header are percent-encoded whole', async (t) => {
  const cases: [string, unknown, string | undefined][] = [
    ['CR/LF', 'alice\r\nX-Injected: 1', 'alice%0D%0AX-Injected%3A%201'],
    ['LF', 'alice\nX-Injected: 1', 'alice%0AX-Injected%3A%201'],
    ['NUL', 'a\u0000b', 'a%00b'],
    ['tab', 'a\tb', 'a%09b'],
    ['DEL', 'a\u007fb', 'a%7Fb'],
    ['non-ASCII', 'Zoë Ångström', 'Zo%C3%AB%20%C3%85ngstr%C3%B6m'],
    ['emoji', 'ok 👍', 'ok%20%F0%9F%91%8D'],
    ['printable ASCII stays as is', 'a b!"#%&\'()*+,/:;<=>?@[\\]^_`{|}~', 'a b!"#%&\'()*+,/:;<=>?@[\\]^_`{|}~'],
    ['empty string', '', ''],
  ];
  for (const [what, sub, want] of cases) {
    const token = tokenFor({ sub });
    const seen = await send(t, gate, '/orders', [`Authorization: Bearer ${token}`]);
    t.same(seen.headers['x-auth-subject'], [want], what);
    t.equal(seen.headers['x-injected'], undefined, `${what}: no header injected`);
  }
});

t.test('claims render: numbers, arrays, objects; missing and null add nothing', async (t) => {
  const token = tokenFor({
    sub: 'alice',
    groups: ['admins', 'ops'],
    meta: { team: 'a', n: 1 },
    num: 1767225600,
    float: 1.5,
    flag: true,
    nothing: null,
  });
  const seen = await send(t, custom, '/orders', [`Authorization: Bearer ${token}`]);
  t.same(seen.headers['x-user'], ['alice']);
  t.same(seen.headers['x-auth-groups'], ['admins ops'], 'an array is joined with a space');
  t.same(seen.headers['x-auth-meta'], ['{"team":"a","n":1}'], 'an object as JSON');
  t.same(seen.headers['x-auth-num'], ['1767225600'], 'a number in decimal');
  t.same(seen.headers['x-auth-float'], ['1.5']);
  t.same(seen.headers['x-auth-flag'], ['true']);
  t.equal(seen.headers['x-auth-nothing'], undefined, 'null adds no header');

  const other = tokenFor({ groups: ['Zoë', 'ops'], num: 1e21 });
  const seen2 = await send(t, custom, '/orders', [`Authorization: Bearer ${other}`]);
  t.same(seen2.headers['x-auth-groups'], ['Zo%C3%AB%20ops'], 'a non-ASCII array is encoded whole');
  t.same(seen2.headers['x-auth-num'], ['1000000000000000000000'], 'a large integer in decimal, not exponent form');
});

t.test('a custom claims map replaces the default one', async (t) => {
  const token = tokenFor({ username: 'al' });
  const seen = await send(t, custom, '/orders', [`Authorization: Bearer ${token}`]);
  for (const name of [
    'x-auth-subject',
    'x-auth-scope',
    'x-auth-client-id',
    'x-auth-username',
    'x-auth-issuer',
    'x-auth-expires-at',
  ]) {
    t.equal(seen.headers[name], undefined, `${name} is not set`);
  }
  t.same(seen.headers['x-auth-provider'], ['fake'], 'the provider header is its own setting');
});

t.test('claims_json carries the whole answer as base64url JSON', async (t) => {
  const token = tokenFor({ sub: 'Zoë\r\n', extra: { a: [1, 2] } });
  const seen = await send(t, custom, '/orders', [`Authorization: Bearer ${token}`, 'X-Auth-Claims: e30']);
  const values = seen.headers['x-auth-claims'];
  t.equal(values?.length, 1, 'one header, the spoofed one removed');
  t.match(values?.[0], /^[A-Za-z0-9_-]+$/, 'base64url');
  t.same(JSON.parse(Buffer.from(values![0]!, 'base64url').toString('utf8')), answers.get(token));
});

t.test('X-Forwarded-For is appended to; -Proto and -Host are replaced', async (t) => {
  const token = tokenFor();
  const seen = await send(t, gate, '/orders', [
    `Authorization: Bearer ${token}`,
    'X-Forwarded-For: 203.0.113.9',
    'X-Forwarded-For: 198.51.100.7',
    'X-Forwarded-Proto: https',
    'X-Forwarded-Host: evil.example',
  ]);
  t.same(seen.headers['x-forwarded-for'], ['203.0.113.9, 198.51.100.7, 127.0.0.1']);
  t.same(seen.headers['x-forwarded-proto'], ['http']);
  t.same(seen.headers['x-forwarded-host'], ['api.example:8080']);

  const plain = await send(t, gate, '/public/x', []);
  t.same(plain.headers['x-forwarded-for'], ['127.0.0.1'], 'added when the client sent none');
  t.same(plain.headers['x-forwarded-proto'], ['http']);
});

t.test('Authorization is removed unless forward_authorization is true', async (t) => {
  const token = tokenFor();
  const removed = await send(t, gate, '/orders', [`Authorization: Bearer ${token}`]);
  t.equal(removed.headers.authorization, undefined);
  t.notOk(JSON.stringify(removed).includes(token), 'the token reaches the upstream nowhere');
  const publicRemoved = await send(t, gate, '/public/x', ['Authorization: Basic YTpi']);
  t.equal(publicRemoved.headers.authorization, undefined, 'on a public route too');

  const kept = await send(t, custom, '/orders', [`Authorization: Bearer ${token}`]);
  t.same(kept.headers.authorization, [`Bearer ${token}`]);
  const publicKept = await send(t, custom, '/public/x', ['Authorization: Basic YTpi']);
  t.same(publicKept.headers.authorization, ['Basic YTpi']);
});
