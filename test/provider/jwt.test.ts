/**
 * JWT access tokens verified locally (RFC 9068), through tollgate over HTTP: what passes, each
 * refusal (401 invalid_token, no provider call, nothing upstream), and the hybrid provider that
 * verifies JWTs and introspects opaque tokens. The provider is the fake one: it publishes the
 * test's keys and counts both its introspection calls and its JWKS fetches. Time is a manual clock.
 */
import t, { type Test } from 'tap';
import { createHmac, createPublicKey, type JsonWebKey } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CompactSign, type JWK } from 'jose';
import { manualClock, type ManualClock } from '../helpers/clock.js';
import { startFakeProvider, type FakeProvider } from '../helpers/fake-provider.js';
import { assertRefusal, bearer } from '../helpers/http.js';
import { b64json, signJwt, testKey, type TestKey } from '../helpers/jwt.js';
import { eventually, startTollgate, type TestTollgate } from '../helpers/tollgate.js';
import { startUpstream, type RecordingUpstream } from '../helpers/upstream.js';

const AUDIENCE = 'orders-api';

interface World {
  provider: FakeProvider;
  upstream: RecordingUpstream;
  gate: TestTollgate;
  clock: ManualClock;
  rsa: TestKey;
  ec: TestKey;
  jwks: { keys: JWK[] };
  /** Valid claims for now: iss, aud, exp in an hour. */
  claims(extra?: Record<string, unknown>): Record<string, unknown>;
}

interface Options {
  /** Give the provider introspection credentials too (hybrid). */
  introspection?: boolean;
  jwt?: Record<string, unknown>;
  routes?: Record<string, unknown>[];
  waitReady?: boolean;
  jwksDown?: boolean;
}

async function setUp(t: Test, options: Options = {}): Promise<World> {
  const rsa = await testKey('RS256', 'rsa-1');
  const ec = await testKey('ES256', 'ec-1');
  const jwks = { keys: [rsa.publicJwk, ec.publicJwk] };
  const provider = await startFakeProvider({ jwks });
  t.teardown(() => provider.close());
  if (options.jwksDown) provider.setJwksAvailable(false);
  provider.answer(() => ({ active: true, sub: 'from-introspection', scope: 'orders:read', aud: AUDIENCE }));
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const clock = manualClock(Date.now());
  const credentials = options.introspection ? { client_id: 'tollgate', client_secret: 'tollgate-secret' } : {};
  const gate = await startTollgate(
    t,
    {
      upstream: { url: upstream.url },
      providers: [{ name: 'acme', issuer: provider.issuer, audience: [AUDIENCE], jwt: options.jwt ?? {}, ...credentials }],
      ...(options.routes ? { routes: options.routes } : {}),
    },
    { clock, waitReady: options.waitReady ?? true, discoveryRetryMs: { first: 10, max: 50 } },
  );
  const claims = (extra: Record<string, unknown> = {}) => ({
    iss: provider.issuer,
    aud: AUDIENCE,
    sub: 'user-1',
    iat: clock.nowS(),
    exp: clock.nowS() + 3600,
    ...extra,
  });
  return { provider, upstream, gate, clock, rsa, ec, jwks, claims };
}

/** 401 invalid_token, and neither the provider's introspection nor the upstream saw anything. */
async function refused(t: Test, w: World, token: string, message: string) {
  const calls = w.provider.callCount;
  const res = await w.gate.request('/orders', { headers: bearer(token) });
  assertRefusal(t, res, 401, 'invalid_token');
  t.notOk(res.text.includes(token), 'the token is not echoed');
  t.equal(w.provider.callCount, calls, `${message}: no introspection call`);
  t.equal(w.upstream.requests.length, 0, `${message}: nothing upstream`);
}

t.test(
  'a JWT signed with the provider key passes: claims, scopes and client_id as from introspection; a repeat is a cache hit',
  async (t) => {
    const w = await setUp(t, { introspection: true });
    for (const key of [w.rsa, w.ec]) {
      const token = await signJwt(key, w.claims({ sub: `user-${key.kid}`, scp: ['orders:read', 'orders:write'], azp: 'app-7' }));
      for (let i = 0; i < 2; i++) {
        const res = await w.gate.request('/orders', { headers: bearer(token) });
        t.equal(res.status, 200, `${key.alg} accepted`);
      }
      const seen = w.upstream.requests.at(-1)!.headers;
      t.same(seen['x-auth-subject'], [`user-${key.kid}`]);
      t.same(seen['x-auth-client-id'], ['app-7'], 'client_id read from azp');
      t.same(seen['x-auth-scope'], ['orders:read orders:write'], 'an scp array written space-separated');
      t.same(seen['x-auth-provider'], ['acme']);
    }
    t.equal(w.provider.callCount, 0, 'no introspection call for a JWT');
    t.equal(
      await w.gate.metric('tollgate_jwt_verifications_total', { provider: 'acme', result: 'valid' }),
      2,
      'one verification per token',
    );
    t.equal(
      await w.gate.metric('tollgate_jwks_fetches_total', { provider: 'acme', result: 'success' }),
      1,
      'keys fetched once at start',
    );
    const lines = w.gate.accessLines();
    t.same(
      lines.map((l) => [l.check, l.cache]),
      [
        ['jwt', 'miss'],
        ['jwt', 'hit'],
        ['jwt', 'miss'],
        ['jwt', 'hit'],
      ],
    );
    t.notOk(w.gate.rawLogs().includes('eyJ'), 'no token in the logs');
  },
);

t.test('scope_claims: the first present wins; an Entra scp string; route scopes checked against it', async (t) => {
  const w = await setUp(t, {
    jwt: { scope_claims: ['scp', 'scope'] },
    routes: [{ match: { path_prefix: '/admin' }, scopes: ['orders:admin'] }],
  });
  const token = await signJwt(w.rsa, w.claims({ scp: 'orders:read orders:admin', scope: 'ignored', appid: 'entra-app' }));
  const res = await w.gate.request('/admin/x', { headers: bearer(token) });
  t.equal(res.status, 200);
  t.same(w.upstream.requests[0]!.headers['x-auth-scope'], ['orders:read orders:admin']);
  t.same(w.upstream.requests[0]!.headers['x-auth-client-id'], ['entra-app'], 'client_id read from appid');
  const narrow = await signJwt(w.rsa, w.claims({ scp: 'orders:read' }));
  assertRefusal(t, await w.gate.request('/admin/x', { headers: bearer(narrow) }), 403, 'insufficient_scope');
});

t.test('refused, each with 401 invalid_token, no provider call, nothing upstream', async (t) => {
  const w = await setUp(t, { introspection: true });
  const header = (h: Record<string, unknown>) => b64json(h);

  await t.test('alg none', async (t) => {
    await refused(t, w, `${header({ alg: 'none', typ: 'JWT' })}.${b64json(w.claims())}.`, 'alg none');
  });

  await t.test('HS256 signed with the RSA public key as the secret (algorithm confusion)', async (t) => {
    const pem = createPublicKey({ key: w.rsa.publicJwk as JsonWebKey, format: 'jwk' })
      .export({ type: 'spki', format: 'pem' })
      .toString();
    for (const kid of [w.rsa.kid, undefined]) {
      const input = `${header({ alg: 'HS256', ...(kid ? { kid } : {}) })}.${b64json(w.claims())}`;
      const signature = createHmac('sha256', pem).update(input).digest('base64url');
      await refused(t, w, `${input}.${signature}`, 'HS256 confusion');
    }
  });

  await t.test('an embedded jwk of the attacker', async (t) => {
    const attacker = await testKey('RS256', 'attacker');
    for (const noKid of [true, false]) {
      const token = await signJwt(attacker, w.claims(), { header: { jwk: attacker.publicJwk }, noKid });
      await refused(t, w, token, 'embedded jwk');
    }
  });

  await t.test('a jku pointing at a server that records whether it is ever called', async (t) => {
    let called = 0;
    const attacker = await testKey('RS256', 'attacker-jku');
    const server = createServer((_req, res) => {
      called++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [attacker.publicJwk] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const jku = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
    for (const x of [{ jku }, { x5u: jku }, { x5c: ['MIIB'] }]) {
      await refused(t, w, await signJwt(attacker, w.claims(), { header: x }), Object.keys(x)[0]!);
    }
    t.equal(called, 0, "the token's jku is never fetched");
  });

  await t.test('an expired token, and nbf in the future (beyond the 30 s skew)', async (t) => {
    await refused(t, w, await signJwt(w.rsa, w.claims({ exp: w.clock.nowS() - 31 })), 'expired');
    await refused(t, w, await signJwt(w.rsa, w.claims({ nbf: w.clock.nowS() + 60 })), 'nbf');
    await refused(t, w, await signJwt(w.rsa, w.claims({ exp: undefined })), 'no exp');
    t.equal(
      (await w.gate.request('/', { headers: bearer(await signJwt(w.rsa, w.claims({ exp: w.clock.nowS() - 10 }))) })).status,
      200,
      'within the skew',
    );
    w.upstream.requests.length = 0;
  });

  await t.test('wrong iss, wrong aud, and an ID token of the same provider (aud = the client)', async (t) => {
    await refused(t, w, await signJwt(w.rsa, w.claims({ iss: 'https://evil.example' })), 'wrong iss');
    await refused(t, w, await signJwt(w.rsa, w.claims({ aud: 'another-api' })), 'wrong aud');
    const idToken = await signJwt(w.rsa, w.claims({ aud: 'demo-app', nonce: 'n', auth_time: w.clock.nowS() }), {
      header: { typ: 'JWT' },
    });
    await refused(t, w, idToken, 'ID token');
  });

  await t.test('a crit header of an unknown name', async (t) => {
    // jose will not sign one, so the signature is made by hand (RS256: RSASSA-PKCS1-v1_5, SHA-256).
    const input = `${header({ alg: 'RS256', kid: w.rsa.kid, crit: ['urn:example:unknown'], 'urn:example:unknown': true })}.${b64json(w.claims())}`;
    const signature = await crypto.subtle.sign('RSASSA-PKCS1-v1_5', w.rsa.privateKey, new TextEncoder().encode(input));
    await refused(t, w, `${input}.${Buffer.from(signature).toString('base64url')}`, 'crit');
  });

  await t.test('a payload that is not JSON, signed with the right key', async (t) => {
    const token = await new CompactSign(new TextEncoder().encode('not json {'))
      .setProtectedHeader({ alg: 'RS256', kid: w.rsa.kid })
      .sign(w.rsa.privateKey);
    await refused(t, w, token, 'non-JSON payload');
  });

  await t.test('a 5,000-byte JWT is refused before any parsing', async (t) => {
    const before = await w.gate.metric('tollgate_jwt_verifications_total', { provider: 'acme', result: 'invalid' });
    const token = await signJwt(w.rsa, w.claims({ pad: 'x'.repeat(3600) }));
    t.ok(token.length >= 5000, `${token.length} bytes`);
    await refused(t, w, token, '5,000 bytes');
    t.equal(
      await w.gate.metric('tollgate_jwt_verifications_total', { provider: 'acme', result: 'invalid' }),
      before,
      'never verified',
    );
  });

  await t.test('a signature spelt with non-zero pad bits (the same bytes, another token)', async (t) => {
    const token = await signJwt(w.rsa, w.claims());
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(token.at(-1)!);
    // RS256 signatures are 256 bytes: 342 characters, the last of which carries 2 unused bits.
    const respelt = token.slice(0, -1) + alphabet[last ^ 1];
    t.same(Buffer.from(respelt.split('.')[2]!, 'base64url'), Buffer.from(token.split('.')[2]!, 'base64url'), 'same bytes');
    await refused(t, w, respelt, 'non-canonical');
  });

  t.ok(
    (await w.gate.metric('tollgate_jwt_verifications_total', { provider: 'acme', result: 'invalid' })) >= 15,
    'counted invalid',
  );
  t.notOk(w.gate.rawLogs().includes('eyJ'), 'no token in the logs');
});

t.test("iss of provider A signed with provider B's key (both publish the same kid)", async (t) => {
  const aKey = await testKey('RS256', 'shared-kid');
  const bKey = await testKey('RS256', 'shared-kid');
  const a = await startFakeProvider({ jwks: { keys: [aKey.publicJwk] } });
  const b = await startFakeProvider({ jwks: { keys: [bKey.publicJwk] } });
  t.teardown(() => Promise.all([a.close(), b.close()]));
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const clock = manualClock(Date.now());
  const gate = await startTollgate(
    t,
    {
      upstream: { url: upstream.url },
      providers: [
        { name: 'a', issuer: a.issuer, audience: [AUDIENCE], jwt: {} },
        { name: 'b', issuer: b.issuer, audience: [AUDIENCE], jwt: {} },
      ],
    },
    { clock },
  );
  const claims = (iss: string) => ({ iss, aud: AUDIENCE, sub: 'x', exp: clock.nowS() + 60 });
  t.equal((await gate.request('/', { headers: bearer(await signJwt(bKey, claims(b.issuer))) })).status, 200, "B's own token");
  t.equal((await gate.request('/', { headers: bearer(await signJwt(aKey, claims(a.issuer))) })).status, 200, "A's own token");
  const forged = await signJwt(bKey, claims(a.issuer));
  assertRefusal(t, await gate.request('/', { headers: bearer(forged) }), 401, 'invalid_token');
  t.equal(upstream.requests.length, 2, 'the forged token never reached the upstream');
});

t.test('an unknown kid: one re-fetch, then 401; a flood of them makes at most one fetch per 30 s', async (t) => {
  const w = await setUp(t, { introspection: true });
  t.equal(w.provider.jwksFetches, 1, 'fetched at start');
  const made = async (n: number) =>
    Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const liar = await testKey('RS256', `made-up-${i}-${Math.random()}`);
        return signJwt(liar, w.claims());
      }),
    );
  // Within 30 s of the start-up fetch: not even one re-fetch.
  await refused(t, w, (await made(1))[0]!, 'unknown kid, too soon');
  t.equal(w.provider.jwksFetches, 1, 'no fetch within 30 s of the previous one');

  w.clock.advance(30_000);
  const flood = await made(50);
  const answers = await Promise.all(flood.map((token) => w.gate.request('/', { headers: bearer(token) })));
  t.ok(
    answers.every((r) => r.status === 401),
    'every one refused',
  );
  t.equal(w.provider.jwksFetches, 2, 'the flood shared one fetch');
  for (const token of await made(20)) await refused(t, w, token, 'after the flood');
  t.equal(w.provider.jwksFetches, 2, 'and no more for 30 s');

  w.clock.advance(29_999);
  await refused(t, w, (await made(1))[0]!, 'at 29.999 s');
  t.equal(w.provider.jwksFetches, 2);
  w.clock.advance(1);
  await refused(t, w, (await made(1))[0]!, 'at 30 s');
  t.equal(w.provider.jwksFetches, 3, 'one more fetch once 30 s have passed');
  t.equal(w.provider.callCount, 0, 'never introspected');
});

t.test('key rotation: a new kid is fetched once, concurrent requests share it, old tokens keep working', async (t) => {
  const w = await setUp(t);
  const old = await signJwt(w.rsa, w.claims({ sub: 'old' }));
  t.equal((await w.gate.request('/', { headers: bearer(old) })).status, 200);
  const next = await testKey('ES256', 'ec-2');
  w.jwks.keys.push(next.publicJwk);
  w.clock.advance(30_000);
  const tokens = await Promise.all(Array.from({ length: 20 }, (_, i) => signJwt(next, w.claims({ sub: `new-${i}` }))));
  const answers = await Promise.all(tokens.map((token) => w.gate.request('/', { headers: bearer(token) })));
  t.same(
    answers.map((r) => r.status),
    tokens.map(() => 200),
    'every token of the new key accepted',
  );
  t.equal(w.provider.jwksFetches, 2, 'one shared fetch for the new kid');
  const oldAgain = await signJwt(w.rsa, w.claims({ sub: 'old-2' }));
  t.equal((await w.gate.request('/', { headers: bearer(oldAgain) })).status, 200, 'the old key still verifies while published');
});

t.test('keys are refreshed every 10 minutes, and kept when the JWKS endpoint is down', async (t) => {
  const w = await setUp(t);
  w.provider.setJwksAvailable(false);
  w.clock.advance(10 * 60_000);
  const token = await signJwt(w.rsa, w.claims());
  t.equal((await w.gate.request('/', { headers: bearer(token) })).status, 200, 'served with the cached keys');
  await eventually(
    async () => (await w.gate.metric('tollgate_jwks_fetches_total', { provider: 'acme', result: 'failure' })) === 1,
    'the background refresh was tried',
  );
  t.equal((await w.gate.request('/', { headers: bearer(await signJwt(w.ec, w.claims())) })).status, 200, 'and new tokens too');
  const ready = await fetch(`${w.gate.adminUrl}/readyz`);
  t.equal(ready.status, 200, 'still ready: it has keys');
  t.ok(
    w.gate.logs.some((l) => l.msg === 'JWKS fetch failed: the last good keys stay in use'),
    'logged',
  );
  w.provider.setJwksAvailable(true);
  w.clock.advance(30_000);
  t.equal((await w.gate.request('/', { headers: bearer(await signJwt(w.rsa, w.claims({ sub: 'z' }))) })).status, 200);
  await eventually(
    async () => (await w.gate.metric('tollgate_jwks_fetches_total', { provider: 'acme', result: 'success' })) === 2,
    'refreshed once the endpoint is back',
  );
});

t.test('JWKS endpoint down at start: not ready (503), then up: ready, requests pass', async (t) => {
  const w = await setUp(t, { jwksDown: true, waitReady: false });
  await eventually(
    async () => (await w.gate.metric('tollgate_jwks_fetches_total', { provider: 'acme', result: 'failure' })) >= 1,
    'a fetch failed',
  );
  t.equal((await fetch(`${w.gate.adminUrl}/readyz`)).status, 503, 'not ready without keys');
  const token = await signJwt(w.rsa, w.claims());
  assertRefusal(t, await w.gate.request('/', { headers: bearer(token) }), 503, 'temporarily_unavailable');
  t.equal(w.upstream.requests.length, 0);
  w.provider.setJwksAvailable(true);
  await eventually(async () => (await fetch(`${w.gate.adminUrl}/readyz`)).status === 200, 'ready once the keys are fetched');
  t.equal((await w.gate.request('/', { headers: bearer(token) })).status, 200);
});

t.test('hybrid: JWTs verified, opaque tokens and JWEs introspected; introspect: always also asks the provider', async (t) => {
  const revoked = new Set<string>();
  const w = await setUp(t, {
    introspection: true,
    routes: [{ match: { path_prefix: '/payments' }, introspect: 'always' }],
  });
  w.provider.answer((token) =>
    revoked.has(token)
      ? { active: false }
      : { active: true, sub: 'from-introspection', scope: 'orders:read', iss: w.provider.issuer, aud: AUDIENCE },
  );
  const jwt = await signJwt(w.rsa, w.claims({ sub: 'from-jwt' }));
  t.equal((await w.gate.request('/orders', { headers: bearer('opaque-token-1') })).status, 200, 'opaque introspected');
  t.equal((await w.gate.request('/orders', { headers: bearer(jwt) })).status, 200, 'JWT verified');
  t.same(w.provider.calls, ['opaque-token-1'], 'only the opaque token was introspected');
  t.same(
    w.upstream.requests.map((r) => r.headers['x-auth-subject']),
    [['from-introspection'], ['from-jwt']],
  );

  const jwe = 'eyJhbGciOiJkaXIiLCJlbmMiOiJBMTI4R0NNIn0..aaaa.bbbb.cccc';
  t.equal((await w.gate.request('/orders', { headers: bearer(jwe) })).status, 200, 'a JWE is introspected');
  t.equal(w.provider.calls.at(-1), jwe);

  // introspect: always — verified first, then introspected; the headers come from introspection.
  t.equal((await w.gate.request('/payments', { headers: bearer(jwt) })).status, 200);
  t.equal(w.provider.calls.at(-1), jwt, 'the verified JWT was introspected');
  t.same(w.upstream.requests.at(-1)!.headers['x-auth-subject'], ['from-introspection']);
  t.same(
    w.gate.accessLines().map((l) => l.check),
    ['introspection', 'jwt', 'introspection', 'introspection'],
  );
  // Revoked at the provider: the signature is still valid, the route refuses it once its cached answer ends.
  const fresh = await signJwt(w.rsa, w.claims({ sub: 'to-revoke' }));
  revoked.add(fresh);
  assertRefusal(t, await w.gate.request('/payments', { headers: bearer(fresh) }), 401, 'invalid_token');
  t.equal((await w.gate.request('/orders', { headers: bearer(fresh) })).status, 200, 'a route without it trusts the signature');
  // A JWT that does not verify is never introspected, even there.
  const calls = w.provider.callCount;
  const bad = await signJwt(await testKey('RS256', w.rsa.kid), w.claims());
  assertRefusal(t, await w.gate.request('/payments', { headers: bearer(bad) }), 401, 'invalid_token');
  t.equal(w.provider.callCount, calls, 'no introspection of a refused JWT');
});

t.test('a jwt-only provider: an opaque token or a JWE is refused without any call', async (t) => {
  const w = await setUp(t);
  await refused(t, w, 'opaque-token', 'opaque');
  await refused(t, w, 'eyJhbGciOiJkaXIiLCJlbmMiOiJBMTI4R0NNIn0..aaaa.bbbb.cccc', 'JWE');
  assertRefusal(t, await w.gate.request('/'), 401, 'missing_token');
  t.same(
    w.gate.accessLines().map((l) => l.check),
    [null, null, null],
    'check: null when no token was checked (this provider has no way to check an opaque token)',
  );
});

t.test('typ: when configured, the token must carry it (case-insensitively, application/ allowed)', async (t) => {
  const w = await setUp(t, { jwt: { typ: 'at+jwt' } });
  await refused(t, w, await signJwt(w.rsa, w.claims()), 'no typ');
  await refused(t, w, await signJwt(w.rsa, w.claims(), { header: { typ: 'JWT' } }), 'typ JWT');
  for (const typ of ['at+jwt', 'application/AT+JWT']) {
    t.equal(
      (await w.gate.request('/', { headers: bearer(await signJwt(w.rsa, w.claims({ sub: typ }), { header: { typ } })) })).status,
      200,
      typ,
    );
  }
});

t.test('algorithms: a key type outside the allow-list is refused', async (t) => {
  const w = await setUp(t, { jwt: { algorithms: ['RS256'] } });
  await refused(t, w, await signJwt(w.ec, w.claims()), 'ES256 not allowed');
  t.equal((await w.gate.request('/', { headers: bearer(await signJwt(w.rsa, w.claims())) })).status, 200);
});
