/**
 * SPEC §6: one access line per request, every field at the top level and null where it does not
 * apply; and nothing secret in any line — the token (from header, query or cookie), the client
 * secret, the Authorization and Cookie headers — whatever the request or the provider's answer.
 */
import { Writable } from 'node:stream';
import t from 'tap';
import { startOidcProvider, TOLLGATE_CLIENT } from '../../dev/oidc-provider.js';
import { createLogger } from '../../src/observability/log.js';
import { startFakeProvider, json } from '../helpers/fake-provider.js';
import { bearer } from '../helpers/http.js';
import { refusingPort } from '../helpers/ports.js';
import { providerEntry, startTollgate } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';

/** A token with `+ / =`, whose percent-encoded form differs from it. */
const ECHOED = 'echoed+token/value==';

const FIELDS = ['method', 'path', 'route', 'status', 'outcome', 'code', 'provider', 'cache', 'duration_ms', 'upstream_ms'];

t.test('the access line of every outcome, and no secret anywhere', async (t) => {
  const op = await startOidcProvider();
  t.teardown(() => op.close());
  // A provider that refuses and echoes what it was sent in its error text, the token raw and
  // percent-encoded and tollgate's Basic credentials: a 400's error_description is logged (a 500's
  // body is not), so its words reach the log line and must be masked there.
  const echo = await startFakeProvider();
  t.teardown(() => echo.close());
  echo.script((token, req, res) =>
    json(res, 400, {
      error: 'invalid_request',
      error_description: `cannot check ${token} (${encodeURIComponent(token)}) for ${req.headers.authorization}`,
    }),
  );
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());

  const gate = await startTollgate(t, {
    upstream: { url: upstream.url },
    providers: [providerEntry('acme', op.issuer), providerEntry('echo', echo.issuer, { client_secret: 'echo-client-secret' })],
    token_sources: ['header', 'query', 'cookie:tg'],
    routes: [
      { match: { path_prefix: '/health' }, public: true },
      { match: { path_prefix: '/admin' }, scopes: ['orders:admin'], providers: ['acme'] },
      { match: { path_prefix: '/echo' }, providers: ['echo'] },
      { match: { path_prefix: '/orders' }, providers: ['acme'] },
    ],
  });
  const token = await op.mintToken(undefined, undefined, 'orders:read');
  const cookieSecret = 'session-cookie-value-never-logged';

  const sent: { path: string; headers?: Record<string, string> }[] = [
    { path: '/orders/1?q=visible-only-upstream', headers: bearer(token) },
    { path: '/orders/2', headers: bearer(token) },
    { path: '/health/live', headers: { cookie: `sid=${cookieSecret}` } },
    { path: '/orders/3' },
    { path: '/admin/x', headers: bearer(token) },
    { path: '/orders%2Fx', headers: bearer(token) },
    { path: '/echo/1', headers: bearer(ECHOED) },
    { path: `/orders/4?access_token=${token}` },
    { path: '/orders/5', headers: { cookie: `tg=${token}; sid=${cookieSecret}` } },
    { path: '/nowhere', headers: bearer(token) },
  ];
  const statuses: number[] = [];
  for (const r of sent) statuses.push((await gate.request(r.path, r.headers ? { headers: r.headers } : {})).status);
  t.same(statuses, [200, 200, 200, 401, 403, 400, 503, 200, 200, 401]);

  // Lines are written as the response ends; the last one may follow the answer by a tick.
  const lines = gate.accessLines();
  t.equal(lines.length, sent.length, 'one access line per request');

  t.test('every field at the top level, in its type, null where it does not apply', async (t) => {
    for (const line of lines) {
      for (const field of FIELDS) t.ok(Object.hasOwn(line, field), `${String(line.path)}: ${field} present`);
      t.type(line.method, 'string');
      t.type(line.status, 'number');
      t.type(line.duration_ms, 'number');
      t.ok((line.duration_ms as number) >= 0);
      t.ok(line.route === null || Number.isInteger(line.route));
      t.ok(line.upstream_ms === null || typeof line.upstream_ms === 'number');
      t.ok(line.cache === null || ['hit', 'miss', 'coalesced', 'stale'].includes(line.cache as string));
      for (const value of Object.values(line)) t.not(typeof value === 'object' && value !== null, true, 'nothing nested');
    }
    const pick = (i: number) =>
      Object.fromEntries(FIELDS.filter((f) => f !== 'duration_ms' && f !== 'upstream_ms').map((f) => [f, lines[i]![f]]));
    const base = { method: 'GET', code: null };
    t.same(
      pick(0),
      { ...base, path: '/orders/1', route: 3, status: 200, outcome: 'allowed', provider: 'acme', cache: 'miss' },
      'allowed, path without its query',
    );
    t.same(pick(1), { ...base, path: '/orders/2', route: 3, status: 200, outcome: 'allowed', provider: 'acme', cache: 'hit' });
    t.same(
      pick(2),
      { ...base, path: '/health/live', route: 0, status: 200, outcome: 'public', provider: null, cache: null },
      'public: no provider, no cache',
    );
    t.same(pick(3), {
      method: 'GET',
      path: '/orders/3',
      route: 3,
      status: 401,
      outcome: 'unauthenticated',
      code: 'missing_token',
      provider: null,
      cache: null,
    });
    t.same(pick(4), {
      method: 'GET',
      path: '/admin/x',
      route: 1,
      status: 403,
      outcome: 'forbidden',
      code: 'insufficient_scope',
      provider: 'acme',
      cache: 'hit',
    });
    t.same(
      pick(5),
      {
        method: 'GET',
        path: null,
        route: null,
        status: 400,
        outcome: 'bad_request',
        code: 'invalid_request',
        provider: null,
        cache: null,
      },
      'an unreadable path is null',
    );
    t.same(pick(6), {
      method: 'GET',
      path: '/echo/1',
      route: 2,
      status: 503,
      outcome: 'provider_unavailable',
      code: 'temporarily_unavailable',
      provider: 'echo',
      cache: 'miss',
    });
    t.same(
      pick(7),
      { ...base, path: '/orders/4', route: 3, status: 200, outcome: 'allowed', provider: 'acme', cache: 'hit' },
      'query token: path without it',
    );
    t.same(
      pick(9),
      {
        method: 'GET',
        path: '/nowhere',
        route: null,
        status: 401,
        outcome: 'unauthenticated',
        code: 'invalid_token',
        provider: null,
        cache: null,
      },
      'no route matched: route null',
    );
    for (const i of [0, 1, 2, 7, 8]) t.type(lines[i]!.upstream_ms, 'number', `${String(lines[i]!.path)}: upstream_ms`);
    for (const i of [3, 4, 5, 6, 9]) t.equal(lines[i]!.upstream_ms, null, `${String(lines[i]!.path)}: refused, no upstream_ms`);
  });

  t.test('no line holds a token, a secret, an Authorization or a Cookie value', async (t) => {
    const raw = gate.rawLogs();
    const failure = gate.logs.find((l) => l.msg === 'introspection failed');
    t.equal(
      failure?.cause,
      'HTTP 400 invalid_request (cannot check [token] ([token]) for Basic [credentials])',
      "the provider's words are logged, each copy of the token masked",
    );
    for (const [what, secret] of [
      ['the token', token],
      ['the echoed token', ECHOED],
      ['the echoed token, percent-encoded', encodeURIComponent(ECHOED)],
      ['the cookie', cookieSecret],
      ["tollgate's client secret", TOLLGATE_CLIENT.client_secret],
      ["the echo provider's client secret", 'echo-client-secret'],
      ['Basic credentials', Buffer.from('tollgate:echo-client-secret').toString('base64')],
      // openid-client form-encodes the id and secret before base64 (`-` as %2D).
      ['Basic credentials as sent', Buffer.from('tollgate:echo%2Dclient%2Dsecret').toString('base64')],
      ['the query string', 'visible-only-upstream'],
    ] as const) {
      t.notOk(raw.includes(secret), `${what} is in no log line`);
    }
    t.notMatch(raw, /"authorization"|"cookie"/i, 'no header dump');
  });
});

t.test("the production logger's redaction holds when a header dump slips in", async (t) => {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  const logger = createLogger({ level: 'debug', destination });
  logger.info(
    {
      req: { headers: { authorization: 'Bearer leaked-token', cookie: 'sid=leaked-cookie', host: 'a' } },
      headers: { authorization: 'Bearer leaked-token-2', cookie: 'c=leaked-cookie-2' },
      provider: { client_secret: 'leaked-secret' },
      token: 'leaked-token-3',
      access_token: 'leaked-token-4',
      client_secret: 'leaked-secret-2',
    },
    'dump',
  );
  logger.flush();
  await new Promise((resolve) => setImmediate(resolve));
  const raw = chunks.join('');
  t.match(raw, /"msg":"dump"/);
  t.notMatch(raw, /leaked/, 'every secret path is redacted');
  t.match(raw, /\[redacted\]/);
});

t.test('access_log: false writes no access line, and the request is still served and counted', async (t) => {
  const dead = `http://127.0.0.1:${await refusingPort(t)}`;
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const gate = await startTollgate(t, {
    upstream: { url: upstream.url },
    // Never asked (no request here carries a token); a port of this test's, so nothing else answers.
    providers: [providerEntry('acme', dead, { introspection_endpoint: `${dead}/introspect` })],
    routes: [{ match: { path_prefix: '/health' }, public: true }],
    access_log: false,
  });
  t.equal((await gate.request('/health')).status, 200);
  t.equal((await gate.request('/orders')).status, 401);
  t.same(gate.accessLines(), [], 'no access line');
  t.equal(await gate.metric('tollgate_requests_total', { outcome: 'public' }), 1);
  t.equal(await gate.metric('tollgate_requests_total', { outcome: 'unauthenticated' }), 1);
});
