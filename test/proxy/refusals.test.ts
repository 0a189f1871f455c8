/**
 * SPEC §4, row by row, against the scriptable fake provider (the answers a real provider won't
 * give) and a recording upstream. Every refusal: its status, its `WWW-Authenticate` exactly, a
 * JSON `{error, error_description}` body, `Content-Type: application/json`, `Cache-Control:
 * no-store`, `Retry-After` on 503, the token nowhere in the answer or the logs, and nothing
 * forwarded upstream. Time is the injected manual clock.
 */
import type { ServerResponse } from 'node:http';
import { gzipSync } from 'node:zlib';
import t, { type Test } from 'tap';
import { manualClock } from '../helpers/clock.js';
import { json, startFakeProvider } from '../helpers/fake-provider.js';
import { bearer, rawRequest, type Answer } from '../helpers/http.js';
import { providerEntry, startTollgate } from '../helpers/tollgate.js';
import { refusingPort } from '../helpers/ports.js';
import { startUpstream } from '../helpers/upstream.js';

const AUD = 'orders-api';
/** Breakers never open here: each row must reach the fake to show its own answer. */
const NO_BREAKER = { failures: 1000, max_pause_s: 1 };

const clock = manualClock();
const fake = await startFakeProvider();
const slow = await startFakeProvider({ discovery: false });
const upstream = await startUpstream();
const deadPort = await refusingPort(t);
t.teardown(async () => {
  await Promise.all([fake.close(), slow.close(), upstream.close()]);
});

const gate = await startTollgate(
  t,
  {
    upstream: { url: upstream.url },
    providers: [
      providerEntry('fake', fake.issuer, { audience: [AUD], circuit_breaker: NO_BREAKER }),
      // Discovery is skipped (explicit endpoint), so the provider is ready and every call is refused.
      providerEntry('dead', `http://127.0.0.1:${deadPort}`, {
        introspection_endpoint: `http://127.0.0.1:${deadPort}/introspect`,
        circuit_breaker: NO_BREAKER,
      }),
      providerEntry('slow', slow.issuer, {
        introspection_endpoint: slow.introspectionEndpoint,
        timeout_ms: 200,
        circuit_breaker: NO_BREAKER,
      }),
    ],
    routes: [
      { match: { path_prefix: '/dead' }, providers: ['dead'] },
      { match: { path_prefix: '/slow' }, providers: ['slow'] },
      { match: { path_prefix: '/admin' }, providers: ['fake'], scopes: ['orders:admin', 'orders:write'] },
      { match: { path_prefix: '/public' }, public: true },
      { providers: ['fake'] },
    ],
  },
  { clock },
);

/** Claims the fake answers for each token: every test uses its own tokens. */
const answers = new Map<string, Record<string, unknown>>();
fake.answer((token) => answers.get(token) ?? { active: false });

/** Introspection calls the fake received for `token`. */
const callsFor = (token: string) => fake.calls.filter((c) => c === token).length;

let counter = 0;
/** A fresh token whose introspection answer is `claims` (with this provider's issuer and audience). */
function tokenFor(claims: Record<string, unknown>): string {
  const token = `tok-${++counter}-${'x'.repeat(20)}`;
  answers.set(
    token,
    Object.fromEntries(
      Object.entries({
        active: true,
        iss: fake.issuer,
        aud: AUD,
        sub: 'alice',
        scope: 'orders:read',
        exp: clock.nowS() + 600,
        ...claims,
      }).filter(([, v]) => v !== undefined),
    ),
  );
  return token;
}

interface Expected {
  status: 400 | 401 | 403 | 503;
  error: string;
  /** `bare`: `Bearer realm="tollgate"`; `error`: with error and error_description; `none`: no challenge. */
  challenge: 'bare' | 'error' | 'none';
  scope?: string;
}

/** Every SPEC §4 requirement of a refusal, and that nothing of it went upstream or to the logs. */
function assertRefusal(t: Test, res: Answer, token: string | undefined, want: Expected, upstreamBefore: number): void {
  t.equal(res.status, want.status, 'status');
  t.equal(res.headers['content-type'], 'application/json', 'Content-Type');
  t.equal(res.headers['cache-control'], 'no-store', 'Cache-Control');
  const body = res.json<{ error: string; error_description: string }>();
  t.same(Object.keys(body).sort(), ['error', 'error_description'], 'body has exactly error and error_description');
  t.equal(body.error, want.error, 'body error');
  t.type(body.error_description, 'string');
  t.ok(body.error_description.length > 0, 'a description');
  const challenge = res.headers['www-authenticate'];
  switch (want.challenge) {
    case 'bare':
      t.equal(challenge, 'Bearer realm="tollgate"', 'bare challenge (RFC 6750 §3.1)');
      break;
    case 'error': {
      let expected = `Bearer realm="tollgate", error="${want.error}", error_description="${body.error_description}"`;
      if (want.scope !== undefined) expected += `, scope="${want.scope}"`;
      t.equal(challenge, expected, 'WWW-Authenticate');
      break;
    }
    case 'none':
      t.equal(challenge, undefined, 'no challenge');
  }
  if (want.status === 503) t.match(res.headers['retry-after'], /^[1-9]\d*$/, 'Retry-After in seconds');
  else t.equal(res.headers['retry-after'], undefined, 'no Retry-After');
  if (token !== undefined) {
    t.notOk(JSON.stringify(res.headers).includes(token), 'the token is in no header');
    t.notOk(res.text.includes(token), 'the token is not in the body');
    t.notOk(gate.rawLogs().includes(token), 'the token is in no log line');
  }
  t.equal(upstream.requests.length, upstreamBefore, 'nothing reached the upstream');
}

/** Sends `token` to `path` and checks the refusal. */
async function refused(t: Test, path: string, token: string, want: Expected) {
  const before = upstream.requests.length;
  const res = await gate.request(path, { headers: bearer(token) });
  assertRefusal(t, res, token, want, before);
  return res;
}

async function allowed(t: Test, path: string, token: string) {
  const before = upstream.requests.length;
  const res = await gate.request(path, { headers: bearer(token) });
  t.equal(res.status, 200, 'allowed');
  t.equal(upstream.requests.length, before + 1, 'forwarded once');
  return res;
}

const invalidToken = { status: 401, error: 'invalid_token', challenge: 'error' } as const;
const unavailable = { status: 503, error: 'temporarily_unavailable', challenge: 'none' } as const;

t.test('the baseline answer is allowed', async (t) => {
  await allowed(t, '/orders', tokenFor({}));
});

t.test('no token on a protected route: 401 with a bare challenge', async (t) => {
  const before = upstream.requests.length;
  const calls = fake.calls.length;
  assertRefusal(t, await gate.request('/orders'), undefined, { status: 401, error: 'missing_token', challenge: 'bare' }, before);
  assertRefusal(
    t,
    await gate.request('/orders', { headers: { authorization: 'Basic YWxpY2U6c2VjcmV0' } }),
    'YWxpY2U6c2VjcmV0',
    { status: 401, error: 'missing_token', challenge: 'bare' },
    before,
  );
  t.equal(fake.calls.length, calls, 'no provider was asked');
});

t.test('two tokens: 400 invalid_request with a challenge', async (t) => {
  const token = tokenFor({});
  const before = upstream.requests.length;
  const res = await gate.request(`/orders?access_token=${token}`, { headers: bearer(token) });
  assertRefusal(t, res, token, { status: 400, error: 'invalid_request', challenge: 'error' }, before);
  t.notOk(fake.calls.includes(token), 'no provider was asked');
});

t.test('a bad path: 400 invalid_request without a Bearer challenge', async (t) => {
  const before = upstream.requests.length;
  // Sent raw: an HTTP client's URL parser would resolve `%2e%2e` itself.
  const token = tokenFor({});
  const raw = await rawRequest(gate.url, `GET /orders/%2e%2e/%2e%2e/etc HTTP/1.1\nHost: x\nAuthorization: Bearer ${token}`);
  const res: Answer = {
    status: raw.status,
    headers: Object.fromEntries(Object.entries(raw.headers).map(([k, v]) => [k, v.length === 1 ? v[0] : v])),
    text: raw.body,
    json: <T>() => JSON.parse(raw.body) as T,
  };
  assertRefusal(t, res, token, { status: 400, error: 'invalid_request', challenge: 'none' }, before);
  t.notOk(fake.calls.includes(token), 'no provider was asked');
});

t.test('inactive: 401 invalid_token', async (t) => {
  await refused(t, '/orders', tokenFor({ active: false }), invalidToken);
  await refused(t, '/orders', 'never-issued-token', invalidToken);
});

t.test('exp, with clock_skew_s (30 s)', async (t) => {
  await allowed(t, '/orders', tokenFor({ exp: clock.nowS() - 29 }));
  await refused(t, '/orders', tokenFor({ exp: clock.nowS() - 31 }), invalidToken);
  await refused(t, '/orders', tokenFor({ exp: clock.nowS() - 30 }), invalidToken); // exp + skew is now: expired
  await refused(t, '/orders', tokenFor({ exp: String(clock.nowS() + 600) }), invalidToken);

  // An answer is cached no longer than its exp, so past exp the provider is asked again; its
  // answer is then judged with the skew: allowed up to exp + 30 s, refused after.
  const token = tokenFor({ exp: clock.nowS() + 10 });
  await allowed(t, '/orders', token);
  clock.advance(39_000);
  await allowed(t, '/orders', token);
  t.equal(callsFor(token), 2, 'past exp, the provider was asked again');
  clock.advance(2_000);
  await refused(t, '/orders', token, invalidToken);
});

t.test('a cached answer is judged again at each request, as the clock moves', async (t) => {
  // nbf 60 s ahead: refused now (beyond the 30 s skew), and the active answer is cached (ttl_s 60).
  const token = tokenFor({ nbf: clock.nowS() + 60 });
  await refused(t, '/orders', token, invalidToken);
  clock.advance(29_000);
  await refused(t, '/orders', token, invalidToken);
  clock.advance(2_000);
  await allowed(t, '/orders', token);
  t.equal(callsFor(token), 1, 'one provider call: each verdict was reached on the cached answer');
});

t.test('nbf, with clock_skew_s (30 s)', async (t) => {
  await allowed(t, '/orders', tokenFor({ nbf: clock.nowS() + 29 }));
  await allowed(t, '/orders', tokenFor({ nbf: clock.nowS() + 30 })); // nbf − skew is now: valid
  const token = tokenFor({ nbf: clock.nowS() + 31 });
  await refused(t, '/orders', token, invalidToken);
  await refused(t, '/orders', tokenFor({ nbf: 'soon' }), invalidToken);
});

t.test('iss other than the provider: 401', async (t) => {
  await refused(t, '/orders', tokenFor({ iss: 'https://evil.example' }), invalidToken);
  await refused(t, '/orders', tokenFor({ iss: `${fake.issuer}//` }), invalidToken);
  await refused(t, '/orders', tokenFor({ iss: `${fake.issuer}/x` }), invalidToken);
  // One trailing `/` is no other issuer (issue 18: LemonLDAP::NG's issuer ends in one).
  await allowed(t, '/orders', tokenFor({ iss: `${fake.issuer}/` }));
  await allowed(t, '/orders', tokenFor({ iss: undefined }));
});

t.test('aud, with an audience configured', async (t) => {
  await refused(t, '/orders', tokenFor({ aud: 'billing-api' }), invalidToken);
  await refused(t, '/orders', tokenFor({ aud: ['billing-api', 'x'] }), invalidToken);
  await refused(t, '/orders', tokenFor({ aud: undefined }), invalidToken);
  await refused(t, '/orders', tokenFor({ aud: [] }), invalidToken);
  await refused(t, '/orders', tokenFor({ aud: 42 }), invalidToken); // neither a string nor a list
  await refused(t, '/orders', tokenFor({ aud: { [AUD]: true } }), invalidToken);
  await allowed(t, '/orders', tokenFor({ aud: ['billing-api', AUD] }));
});

t.test('token_type refresh_token: 401', async (t) => {
  await refused(t, '/orders', tokenFor({ token_type: 'refresh_token' }), invalidToken);
  await refused(t, '/orders', tokenFor({ token_type: 'urn:ietf:params:oauth:token-type:refresh_token' }), invalidToken);
  await refused(t, '/orders', tokenFor({ token_type: 'Refresh_Token' }), invalidToken); // compared case-insensitively
  await allowed(t, '/orders', tokenFor({ token_type: 'Bearer' }));
  await allowed(t, '/orders', tokenFor({ token_type: 'access_tokens' })); // as long as refresh_token
});

// Issue 18, failure 2: a provider that ignores token_type_hint vouched for an ID token.
t.test('token_type id_token: 401', async (t) => {
  const res = await refused(t, '/orders', tokenFor({ token_type: 'id_token' }), invalidToken);
  t.match(res.json<{ error_description: string }>().error_description, /ID token/);
  await refused(t, '/orders', tokenFor({ token_type: 'urn:ietf:params:oauth:token-type:id_token' }), invalidToken);
  await refused(t, '/orders', tokenFor({ token_type: 'ID_Token' }), invalidToken);
  await allowed(t, '/orders', tokenFor({ token_type: 'access_token' }));
});

t.test('cnf present (a sender-constrained token): 401', async (t) => {
  await refused(t, '/orders', tokenFor({ cnf: { 'x5t#S256': 'abc' } }), invalidToken);
  await refused(t, '/orders', tokenFor({ cnf: { jkt: 'abc' } }), invalidToken);
});

t.test('missing scope: 403 insufficient_scope naming the scopes', async (t) => {
  await refused(t, '/admin/x', tokenFor({ scope: 'orders:read orders:admin' }), {
    status: 403,
    error: 'insufficient_scope',
    challenge: 'error',
    scope: 'orders:admin orders:write',
  });
  await refused(t, '/admin/x', tokenFor({ scope: undefined }), {
    status: 403,
    error: 'insufficient_scope',
    challenge: 'error',
    scope: 'orders:admin orders:write',
  });
  await allowed(t, '/admin/x', tokenFor({ scope: 'orders:write orders:admin' }));
});

t.test('malformed answers are failures: 503', async (t) => {
  for (const [what, claims] of [
    ['missing active', { active: undefined }],
    ['active "true"', { active: 'true' }],
    ['active 1', { active: 1 }],
  ] as const) {
    t.test(what, async (t) => {
      const token = tokenFor(claims);
      const calls = fake.calls.length;
      await refused(t, '/orders', token, unavailable);
      t.equal(fake.calls.length, calls + 1, 'the provider was asked once');
    });
  }
});

/** Scripts the fake for one token only; every other token keeps the claims table. */
function scriptFor(token: string, fn: (res: ServerResponse) => void): void {
  fake.script((tok, _req, res) => {
    if (tok === token) return fn(res);
    json(res, 200, answers.get(tok) ?? { active: false });
  });
}

t.test('provider failures: 503 with Retry-After', async (t) => {
  t.afterEach(() => fake.answer((token) => answers.get(token) ?? { active: false }));

  t.test('HTTP 500', async (t) => {
    const token = tokenFor({});
    scriptFor(token, (res) => json(res, 500, { error: 'server_error' }));
    await refused(t, '/orders', token, unavailable);
  });

  t.test('an error answer that echoes the token is not logged as is', async (t) => {
    const token = tokenFor({});
    scriptFor(token, (res) => json(res, 400, { error: 'invalid_request', error_description: `bad token ${token}` }));
    await refused(t, '/orders', token, unavailable);
    t.match(gate.rawLogs(), 'invalid_request (bad token [token])', 'the rest of the reason is kept for the operator');
  });

  t.test('invalid JSON', async (t) => {
    const token = tokenFor({});
    scriptFor(token, (res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"active": true,'));
    await refused(t, '/orders', token, unavailable);
  });

  t.test('a JSON array, not an object', async (t) => {
    const token = tokenFor({});
    scriptFor(token, (res) => json(res, 200, [{ active: true }]));
    await refused(t, '/orders', token, unavailable);
  });

  const padded = (bytes: number) => {
    const base = JSON.stringify({ active: true, iss: fake.issuer, aud: AUD, pad: '' });
    return JSON.stringify({ active: true, iss: fake.issuer, aud: AUD, pad: 'p'.repeat(bytes - base.length) });
  };

  t.test('a body of exactly 65,536 bytes is read', async (t) => {
    const token = tokenFor({});
    const body = padded(65_536);
    t.equal(Buffer.byteLength(body), 65_536);
    scriptFor(token, (res) => res.writeHead(200, { 'content-type': 'application/json' }).end(body));
    await allowed(t, '/orders', token);
  });

  t.test('a body over 65,536 bytes', async (t) => {
    const token = tokenFor({});
    const body = padded(65_537);
    t.equal(Buffer.byteLength(body), 65_537);
    scriptFor(token, (res) => res.writeHead(200, { 'content-type': 'application/json' }).end(body));
    await refused(t, '/orders', token, unavailable);
  });

  t.test('a body over 65,536 bytes, chunked with no length', async (t) => {
    const token = tokenFor({});
    const body = padded(100_000);
    scriptFor(token, (res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      for (let i = 0; i < body.length; i += 10_000) res.write(body.slice(i, i + 10_000));
      res.end();
    });
    await refused(t, '/orders', token, unavailable);
  });

  t.test('a gzip body that inflates past 65,536 bytes (a decompression bomb)', async (t) => {
    const token = tokenFor({});
    const compressed = gzipSync(padded(1_000_000));
    t.ok(compressed.length < 65_536, `${compressed.length} bytes on the wire`);
    scriptFor(token, (res) =>
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' }).end(compressed),
    );
    await refused(t, '/orders', token, unavailable);
  });

  t.test('a 302 redirect is not followed', async (t) => {
    const token = tokenFor({});
    const calls = fake.calls.length;
    scriptFor(token, (res) => res.writeHead(302, { location: fake.introspectionEndpoint }).end());
    await refused(t, '/orders', token, unavailable);
    t.equal(fake.calls.length, calls + 1, 'the redirect target was not asked');
  });

  t.test("the provider refuses tollgate's credentials (401)", async (t) => {
    const token = tokenFor({});
    scriptFor(token, (res) =>
      res
        .writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Basic realm="op"' })
        .end('{"error":"invalid_client"}'),
    );
    await refused(t, '/orders', token, unavailable);
    t.match(gate.rawLogs(), /introspection failed/, 'the failure is logged for the operator');
  });

  t.test('slower than timeout_ms (a provider that never answers)', async (t) => {
    const calls = slow.calls.length;
    slow.script(() => {
      // Never answers; the fake's close() cuts the connection at teardown.
    });
    await refused(t, '/slow/orders', 'slow-token-1', unavailable);
    t.equal(slow.calls.length, calls + 1, 'the provider was asked');
  });

  t.test('connection refused', async (t) => {
    await refused(t, '/dead/orders', 'dead-token-1', unavailable);
  });
});

t.test('failures are not cached: the next request asks again', async (t) => {
  const token = tokenFor({});
  scriptFor(token, (res) => json(res, 500, {}));
  await refused(t, '/orders', token, unavailable);
  fake.answer((tok) => answers.get(tok) ?? { active: false });
  await allowed(t, '/orders', token);
});

t.test('a public route needs no token and calls no provider', async (t) => {
  const calls = fake.calls.length;
  const res = await gate.request('/public/status');
  t.equal(res.status, 200);
  t.equal(fake.calls.length, calls);
});

t.test('upstream failures: 502 and 504', async (t) => {
  const token = tokenFor({});

  t.test('an upstream that will not take the connection: 502 bad_gateway', async (t) => {
    const port = await refusingPort(t);
    const broken = await startTollgate(
      t,
      {
        upstream: { url: `http://127.0.0.1:${port}` },
        providers: [providerEntry('fake', fake.issuer, { audience: [AUD] })],
      },
      { clock },
    );
    const res = await broken.request('/orders', { headers: bearer(token) });
    t.equal(res.status, 502);
    t.same(res.json(), { error: 'bad_gateway', error_description: res.json().error_description });
    t.equal(res.headers['content-type'], 'application/json');
    t.equal(res.headers['cache-control'], 'no-store');
    t.equal(res.headers['www-authenticate'], undefined);
    t.notOk(JSON.stringify(res.headers).includes(token) || res.text.includes(token), 'the token is not echoed');
  });

  t.test('an upstream past upstream.timeout_ms: 504 gateway_timeout', async (t) => {
    const hung = await startUpstream();
    t.teardown(() => hung.close());
    hung.handle(() => {
      // Never answers; close() cuts the connection at teardown.
    });
    const slowGate = await startTollgate(
      t,
      {
        upstream: { url: hung.url, timeout_ms: 200 },
        providers: [providerEntry('fake', fake.issuer, { audience: [AUD] })],
      },
      { clock },
    );
    const res = await slowGate.request('/orders', { headers: bearer(token) });
    t.equal(res.status, 504);
    t.equal(res.json().error, 'gateway_timeout');
    t.equal(res.headers['content-type'], 'application/json');
    t.equal(res.headers['cache-control'], 'no-store');
    t.equal(res.headers['www-authenticate'], undefined);
    t.equal(hung.requests.length, 1, 'the request did reach the upstream, which never answered');
  });
});
