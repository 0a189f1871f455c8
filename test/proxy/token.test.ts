/**
 * SPEC §3.2: exactly one bearer token, from the configured sources, in RFC 6750 b64token syntax
 * and at most 4096 bytes. Every malformed token is refused before any provider is called: the
 * fake provider counts its calls.
 */
import t, { type Test } from 'tap';
import { startFakeProvider } from '../helpers/fake-provider.js';
import { rawRequest, type RawAnswer } from '../helpers/http.js';
import { providerEntry, startTollgate, type TestTollgate } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';

const fake = await startFakeProvider();
const upstream = await startUpstream();
t.teardown(async () => {
  await Promise.all([fake.close(), upstream.close()]);
});
const GOOD = 'good-token_1.2~3+4/5==';
fake.answer((token) => (token === GOOD ? { active: true, sub: 'alice' } : { active: false }));

const gate = await startTollgate(t, { upstream: { url: upstream.url }, providers: [providerEntry('fake', fake.issuer)] });
const queryOnly = await startTollgate(t, {
  upstream: { url: upstream.url },
  providers: [providerEntry('fake', fake.issuer)],
  token_sources: ['query'],
});
const everySource = await startTollgate(t, {
  upstream: { url: upstream.url },
  providers: [providerEntry('fake', fake.issuer)],
  token_sources: ['header', 'query', 'cookie:session'],
});

const get = (g: TestTollgate, target: string, headers: string[]) =>
  rawRequest(g.url, [`GET ${target} HTTP/1.1`, 'Host: api.example', ...headers].join('\r\n'));

const challenge = (res: RawAnswer) => res.headers['www-authenticate']?.[0];
const errorOf = (res: RawAnswer) => (JSON.parse(res.body) as { error: string }).error;

/** Runs `fn` and checks that no provider call and no upstream request came of it. */
async function untouched(t: Test, fn: () => Promise<void>): Promise<void> {
  const calls = fake.calls.length;
  const forwarded = upstream.requests.length;
  await fn();
  t.equal(fake.calls.length, calls, 'no call at the provider');
  t.equal(upstream.requests.length, forwarded, 'nothing forwarded');
}

t.test('a good token from the header is accepted, the scheme case-insensitively', async (t) => {
  for (const header of [`Authorization: Bearer ${GOOD}`, `authorization: bearer ${GOOD}`, `AUTHORIZATION: BEARER   ${GOOD}`]) {
    const res = await get(gate, '/x', [header]);
    t.equal(res.status, 200, header);
  }
});

t.test('two Authorization headers: 400 invalid_request', async (t) => {
  await untouched(t, async () => {
    const res = await get(gate, '/x', [`Authorization: Bearer ${GOOD}`, `Authorization: Bearer ${GOOD}`]);
    t.equal(res.status, 400);
    t.equal(errorOf(res), 'invalid_request');
    t.match(challenge(res), /^Bearer realm="tollgate", error="invalid_request"/);
    const mixed = await get(gate, '/x', ['Authorization: Basic YTpi', `authorization: Bearer ${GOOD}`]);
    t.equal(mixed.status, 400, 'a second Authorization of any scheme');
  });
});

t.test('header and query: 400 invalid_request, whatever the sources', async (t) => {
  await untouched(t, async () => {
    for (const g of [gate, everySource]) {
      const res = await get(g, `/x?access_token=${GOOD}`, [`Authorization: Bearer ${GOOD}`]);
      t.equal(res.status, 400);
      t.equal(errorOf(res), 'invalid_request');
      t.notOk(res.raw.includes(GOOD), 'the token is not echoed');
    }
    const notASource = await get(queryOnly, `/x?access_token=${GOOD}`, [`Authorization: Bearer ${GOOD}`]);
    t.equal(notASource.status, 400, 'a header token still counts when only the query is a source');
    const disguised = await get(gate, `/x?access%5Ftoken=${GOOD}`, [`Authorization: Bearer ${GOOD}`]);
    t.equal(disguised.status, 400, 'header and an encoded access_token in the query');
    const twice = await get(everySource, `/x?access_token=${GOOD}&access_token=${GOOD}`, []);
    t.equal(twice.status, 400, 'two query tokens');
    const both = await get(everySource, '/x', [`Authorization: Bearer ${GOOD}`, `Cookie: session=${GOOD}`]);
    t.equal(both.status, 400, 'header and cookie');
    const cookies = await get(everySource, '/x', [`Cookie: session=${GOOD}; session=${GOOD}`]);
    t.equal(cookies.status, 400, 'two cookies of that name');
  });
});

t.test('with only the query as a source, another scheme in Authorization is no second token', async (t) => {
  const res = await get(queryOnly, `/x?access_token=${encodeURIComponent(GOOD)}`, ['Authorization: Basic YTpi']);
  t.equal(res.status, 200);
});

t.test('another scheme counts as no token: 401 with a bare challenge', async (t) => {
  await untouched(t, async () => {
    for (const header of [
      'Authorization: Basic YWxpY2U6c2VjcmV0',
      `Authorization: DPoP ${GOOD}`,
      `Authorization: Bearer${GOOD}`,
      'Authorization: Token x',
    ]) {
      const res = await get(gate, '/x', [header]);
      t.equal(res.status, 401, header);
      t.equal(errorOf(res), 'missing_token');
      t.equal(challenge(res), 'Bearer realm="tollgate"');
    }
    const query = await get(gate, `/x?access_token=${GOOD}`, []);
    t.equal(query.status, 401, 'a query token when only the header is a source is no token');
  });
});

t.test('illegal characters and oversize tokens: 401 invalid_token, no provider call', async (t) => {
  const bad = [
    'abc def',
    'tok"en',
    'tok,en',
    'tok;en',
    'tok\\en',
    '=abc',
    'ab=c',
    'tok%20en',
    'tok\ten',
    'tøk',
    'x'.repeat(4097),
    'x'.repeat(5000),
  ];
  await untouched(t, async () => {
    for (const token of bad) {
      const res = await get(gate, '/x', [`Authorization: Bearer ${token}`]);
      const label = token.length > 40 ? `${token.length} bytes` : JSON.stringify(token);
      t.equal(res.status, 401, label);
      t.equal(errorOf(res), 'invalid_token', label);
      t.match(challenge(res), /^Bearer realm="tollgate", error="invalid_token", error_description="[^"]+"$/, label);
      t.notOk(res.raw.includes(token), `${label}: not echoed`);
    }
    const empty = await get(gate, '/x', ['Authorization: Bearer ']);
    t.equal(empty.status, 401, 'an empty token');
  });
});

t.test('4096 bytes is still a token (and goes to the provider)', async (t) => {
  const calls = fake.calls.length;
  const res = await get(gate, '/x', [`Authorization: Bearer ${'x'.repeat(4096)}`]);
  t.equal(res.status, 401, 'inactive at the provider');
  t.equal(fake.calls.length, calls + 1, 'the provider was asked');
});

t.test('query and cookie sources: the token is removed from what is forwarded', async (t) => {
  const fromQuery = await get(everySource, `/orders?a=1&access_token=${encodeURIComponent(GOOD)}&b=2`, []);
  t.equal(fromQuery.status, 200);
  let seen = upstream.requests[upstream.requests.length - 1]!;
  t.equal(seen.url, '/orders?a=1&b=2');
  t.notOk(JSON.stringify(seen).includes('good-token'), 'the token reaches the upstream nowhere');

  const exact = await get(everySource, `/orders?b=%20x&access_token=${encodeURIComponent(GOOD)}&c=a+b&d`, []);
  t.equal(exact.status, 200);
  t.equal(upstream.requests[upstream.requests.length - 1]!.url, '/orders?b=%20x&c=a+b&d', 'the other parameters byte for byte');

  const encodedName = await get(everySource, `/orders?access%5Ftoken=${encodeURIComponent(GOOD)}&a=1`, []);
  t.equal(encodedName.status, 200, 'access%5Ftoken is access_token');
  t.equal(upstream.requests[upstream.requests.length - 1]!.url, '/orders?a=1', 'and is removed too');

  const onlyToken = await get(everySource, `/orders?access_token=${encodeURIComponent(GOOD)}`, []);
  t.equal(onlyToken.status, 200);
  t.equal(upstream.requests[upstream.requests.length - 1]!.url, '/orders');

  const fromCookie = await get(everySource, '/orders', [`Cookie: theme=dark; session=${GOOD}; lang=en`]);
  t.equal(fromCookie.status, 200);
  seen = upstream.requests[upstream.requests.length - 1]!;
  t.same(seen.headers.cookie, ['theme=dark; lang=en']);
  t.notOk(JSON.stringify(seen).includes('good-token'), 'the token reaches the upstream nowhere');

  const onlyCookie = await get(everySource, '/orders', [`Cookie: session=${GOOD}`]);
  t.equal(onlyCookie.status, 200);
  t.equal(upstream.requests[upstream.requests.length - 1]!.headers.cookie, undefined, 'an empty Cookie is dropped');

  const badCookie = await get(everySource, '/orders', ['Cookie: session=a b']);
  t.equal(badCookie.status, 401, 'a cookie token is held to the same syntax');
});
