/**
 * The signed identity for the API (README "A signed identity for the API"): against a real
 * oidc-provider, an API that trusts no header verifies every minted token against tollgate's
 * `/.well-known/jwks.json` with jose — signature, `iss`, `aud`, `exp` not past the access token's,
 * claims equal to the provider's answer — for ES256, EdDSA and RS256 keys, a generated key, and a
 * key rotated by a reload. A minted token is reused with its cached answer until half its life.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { calculateJwkThumbprint, createLocalJWKSet, decodeJwt, jwtVerify } from 'jose';
import t, { type Test } from 'tap';
import { startOidcProvider, type OidcProvider } from '../../dev/oidc-provider.js';
import { manualClock } from '../helpers/clock.js';
import { bearer, request } from '../helpers/http.js';
import { generateKey, keyFile, startVerifyingApi, type KeyKind, type Verified } from '../helpers/identity.js';
import { eventually, providerEntry, startTollgate, type TestTollgate } from '../helpers/tollgate.js';

const ISSUER = 'https://tollgate.orders.svc';
const AUDIENCE = 'orders-api';
const JWKS = '/.well-known/jwks.json';

let op: OidcProvider;
t.before(async () => {
  op = await startOidcProvider({ extraTokenClaims: (clientId) => ({ sub: `service:${clientId}` }) });
});
t.teardown(() => op.close());

interface Setup {
  gate: TestTollgate;
  api: Awaited<ReturnType<typeof startVerifyingApi>>;
  clock: ReturnType<typeof manualClock>;
}

async function setup(
  t: Test,
  identity: Record<string, unknown>,
  extra: Record<string, unknown> = {},
  provider: OidcProvider = op,
): Promise<Setup> {
  const clock = manualClock(Date.now());
  let gate: TestTollgate | undefined;
  const header = typeof identity.header === 'string' ? identity.header : undefined;
  const api = await startVerifyingApi({
    jwksUrl: () => gate!.adminUrl + JWKS,
    issuer: ISSUER,
    audience: AUDIENCE,
    clock,
    ...(header ? { header } : {}),
  });
  t.teardown(() => api.upstream.close());
  gate = await startTollgate(
    t,
    {
      upstream: { url: api.url },
      providers: [providerEntry('acme', provider.issuer)],
      routes: [
        { match: { path_prefix: '/public' }, public: true },
        { match: { path_prefix: '/admin' }, scopes: ['nope'] },
      ],
      headers: { claims_json: 'X-Auth-Claims', identity_jwt: { issuer: ISSUER, audience: AUDIENCE, ...identity } },
      ...extra,
    },
    { clock },
  );
  return { gate, api, clock };
}

/** The provider's answer as tollgate forwarded it (claims_json), for comparison with the minted token. */
function answerOf(api: Setup['api'], index: number): Record<string, unknown> {
  const value = api.upstream.requests[index]!.headers['x-auth-claims']![0]!;
  return JSON.parse(Buffer.from(value, 'base64url').toString('utf8')) as Record<string, unknown>;
}

async function allowed(t: Test, s: Setup, token: string): Promise<Verified> {
  const res = await s.gate.request('/orders', { headers: bearer(token) });
  t.equal(res.status, 200, `the API verified the minted token (${res.text})`);
  return res.json<Verified>() as unknown as Verified;
}

const keyCases: { kind: KeyKind; format: 'pkcs8' | 'traditional' | 'jwk' }[] = [
  { kind: 'ES256', format: 'pkcs8' },
  { kind: 'EdDSA', format: 'jwk' },
  { kind: 'RS256', format: 'traditional' },
];

for (const { kind, format } of keyCases) {
  t.test(`${kind} key from a ${format} file: the API verifies every token against the JWKS`, async (t) => {
    const key = generateKey(kind);
    const dir = t.testdir({ 'signing.key': keyFile(key, format) });
    const s = await setup(t, { key_file: path.join(dir, 'signing.key'), ttl_s: 60 });
    const token = await op.mintToken();

    const first = await allowed(t, s, token);
    const answer = answerOf(s.api, 0);
    t.equal(first.protectedHeader.alg, kind);
    t.equal(first.protectedHeader.typ, 'JWT');
    const jwks = (await request(s.gate.adminUrl + JWKS)).json<{ keys: Record<string, string>[] }>();
    t.equal(jwks.keys.length, 1, 'one key');
    t.equal(first.protectedHeader.kid, jwks.keys[0]!.kid);
    t.equal(jwks.keys[0]!.kid, await calculateJwkThumbprint(jwks.keys[0]! as never), 'kid: the RFC 7638 thumbprint');
    t.match(first.payload, {
      iss: ISSUER,
      aud: AUDIENCE,
      sub: answer.sub,
      client_id: answer.client_id,
      scope: answer.scope,
      provider: 'acme',
      provider_iss: op.issuer,
      jti: String,
    });
    t.equal(first.payload.iat, s.clock.nowS());
    t.equal(first.payload.exp, s.clock.nowS() + 60, 'ttl_s');
    t.ok(first.payload.exp! <= (answer.exp as number), "never past the access token's exp");
    t.equal(answer.sub, 'service:demo-app', 'the claims are the real ones');

    // A cache hit reuses the token: nothing signed.
    const again = await allowed(t, s, token);
    t.equal(again.raw, first.raw, 'the same token on a cache hit');
    // Still more than half its life left at 29 s; at 31 s (past half), a new one.
    s.clock.advance(29_000);
    t.equal((await allowed(t, s, token)).raw, first.raw, 'reused while more than half its life remains');
    s.clock.advance(2_000);
    const renewed = await allowed(t, s, token);
    t.not(renewed.raw, first.raw, 'a new token once half its life has passed');
    t.equal(renewed.payload.iat, s.clock.nowS());
    t.equal(s.api.upstream.requests.length, 4);
    t.ok(
      s.api.results.every((r) => r.ok),
      'every request reaching the API carried a verified token',
    );
    t.notOk(s.gate.rawLogs().includes(first.raw), 'no minted token in any log line');
  });
}

t.test("exp never goes past the access token's own exp", async (t) => {
  const shortLived = await startOidcProvider({ accessTokenTtlS: 20 });
  t.teardown(() => shortLived.close());
  const s = await setup(t, { ttl_s: 300 }, {}, shortLived);
  const token = await shortLived.mintToken();
  const verified = await allowed(t, s, token);
  const answer = answerOf(s.api, 0);
  t.equal(verified.payload.exp, answer.exp, "exp is the access token's");
  t.ok((verified.payload.exp as number) < s.clock.nowS() + 300);
});

t.test('without key_file: a key generated at start, logged as for one replica only', async (t) => {
  const s = await setup(t, {});
  const verified = await allowed(t, s, await op.mintToken());
  t.equal(verified.protectedHeader.alg, 'ES256', 'ES256 by default');
  const warning = s.gate.logs.find((l) => typeof l.msg === 'string' && l.msg.includes('one replica only'));
  t.ok(warning, 'the generated key is logged');
  t.equal(warning?.kid, verified.protectedHeader.kid);
  // A reload with the same settings keeps the generated key (and the minted tokens).
  t.match(await s.gate.app.reload(), { ok: true });
  const jwks = (await request(s.gate.adminUrl + JWKS)).json<{ keys: { kid: string }[] }>();
  t.same(
    jwks.keys.map((k) => k.kid),
    [verified.protectedHeader.kid],
    'the same key after a reload',
  );
});

t.test('a key rotated by a reload: old tokens verify until they expire, new ones carry the new kid', async (t) => {
  const oldKey = generateKey('ES256');
  const newKey = generateKey('EdDSA');
  const dir = t.testdir({ 'signing.pem': keyFile(oldKey, 'pkcs8') });
  const file = path.join(dir, 'signing.pem');
  const s = await setup(t, { key_file: file, ttl_s: 60 });
  const token = await op.mintToken();
  const before = await allowed(t, s, token);

  writeFileSync(file, keyFile(newKey, 'pkcs8')); // renewed in place, as a mounted Secret is
  await eventually(
    () => s.gate.logs.some((l) => l.msg === 'identity_jwt: signing key loaded' && l.replaced === before.protectedHeader.kid),
    'the folder watch reloads the new key',
  );
  const after = await allowed(t, s, token);
  t.not(after.protectedHeader.kid, before.protectedHeader.kid, 'a new kid');
  t.equal(after.protectedHeader.alg, 'EdDSA');
  t.not(after.raw, before.raw, 'no token minted with the old key is handed out again');

  const jwksNow = (await request(s.gate.adminUrl + JWKS)).json<{ keys: { kid: string }[] }>();
  t.same(
    jwksNow.keys.map((k) => k.kid),
    [after.protectedHeader.kid, before.protectedHeader.kid],
    'current key first, the previous one still listed',
  );
  const verifyOld = async () =>
    jwtVerify(before.raw, createLocalJWKSet((await request(s.gate.adminUrl + JWKS)).json() as never), {
      issuer: ISSUER,
      audience: AUDIENCE,
      currentDate: new Date(s.clock.now()),
    });
  await t.resolves(verifyOld(), 'a token minted before the rotation still verifies');

  s.clock.advance(61_000);
  const jwksLater = (await request(s.gate.adminUrl + JWKS)).json<{ keys: { kid: string }[] }>();
  t.same(
    jwksLater.keys.map((k) => k.kid),
    [after.protectedHeader.kid],
    'the previous key goes after ttl_s',
  );
  await t.rejects(verifyOld(), 'and the old token no longer verifies');
});

t.test('a client-sent identity token never reaches the API, in any spelling', async (t) => {
  for (const header of ['X-Auth-Token', 'X-Identity']) {
    const s = await setup(t, header === 'X-Auth-Token' ? {} : { header });
    const forged = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.';
    const lower = header.toLowerCase();
    const spellings = [header, lower, header.toUpperCase(), lower.replace(/-/g, '_'), lower.replace(/-/g, '.'), 'X_auth-TOKEN'];
    const spoofed: string[] = [];
    for (const name of spellings) spoofed.push(name, forged);
    const token = await op.mintToken();
    const res = await s.gate.request('/orders', { headers: [...spoofed, 'authorization', `Bearer ${token}`] });
    t.equal(res.status, 200, `${header}: the API got exactly one token, and verified it`);
    const seen = s.api.upstream.single().rawHeaders;
    t.notOk(seen.includes(forged), `${header}: no forged value reaches the API`);
    const forwardedNames = seen.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase().replace(/[_.]/g, '-'));
    t.equal(forwardedNames.filter((n) => n === lower).length, 1, `${header}: one header of that name`);

    // A public route: the spoofed ones are removed, and no token is minted.
    const pub = await s.gate.request('/public/x', { headers: spoofed });
    t.equal(s.api.upstream.requests.length, 2);
    const publicSeen = s.api.upstream.requests[1]!;
    t.notOk(publicSeen.rawHeaders.includes(forged), `${header}: public route, nothing forged`);
    t.equal(
      publicSeen.rawHeaders.filter((_, i) => i % 2 === 0).filter((n) => n.toLowerCase().replace(/[_.]/g, '-') === lower).length,
      0,
      `${header}: a public route gets no minted token`,
    );
    t.equal(pub.status, 401, 'the API refuses a request without a token');
  }
});

t.test('refused requests reach nothing: no token minted, nothing forwarded', async (t) => {
  const s = await setup(t, {});
  t.equal((await s.gate.request('/orders')).status, 401, 'no token');
  t.equal((await s.gate.request('/orders', { headers: bearer('not-a-real-token') })).status, 401, 'inactive token');
  const token = await op.mintToken();
  t.equal((await s.gate.request('/admin', { headers: bearer(token) })).status, 403, 'missing scope');
  t.equal(s.api.upstream.requests.length, 0, 'nothing reached the API');
});

t.test('with Authorization: the minted token replaces the client token', async (t) => {
  const s = await setup(t, { header: 'Authorization' });
  const token = await op.mintToken();
  const verified = await allowed(t, s, token);
  const sent = s.api.upstream.single().headers.authorization!;
  t.same(sent, [`Bearer ${verified.raw.replace(/^Bearer /, '')}`], 'one Authorization: Bearer <minted jwt>');
  t.notOk(sent[0]!.includes(token), "the client's token is not forwarded");
  t.equal(decodeJwt(sent[0]!.slice('Bearer '.length)).iss, ISSUER);
});

t.test('identity_jwt off: no token minted and no key served', async (t) => {
  const api = await startVerifyingApi({ jwksUrl: () => 'http://127.0.0.1:1/', issuer: ISSUER, audience: AUDIENCE });
  t.teardown(() => api.upstream.close());
  const gate = await startTollgate(t, { upstream: { url: api.url }, providers: [providerEntry('acme', op.issuer)] });
  const res = await request(gate.adminUrl + JWKS);
  t.equal(res.status, 404, 'no key set to serve');
  await gate.request('/orders', { headers: { ...bearer(await op.mintToken()), 'x-auth-token': 'forged' } });
  t.same(api.upstream.single().headers['x-auth-token'], undefined, 'the forged header is still removed, none added');
});
