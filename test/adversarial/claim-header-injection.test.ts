/**
 * Envoy (CVE-2019-9900 and its family): illegal characters in a header value the proxy generated
 * let one value split into several headers, or into a second request. tollgate writes each
 * configured claim as one header: printable ASCII as is, anything else whole as
 * encodeURIComponent(UTF-8) (SPEC §3.7); claim names are looked up as own properties only, so
 * `__proto__` or `constructor` never reads Object.prototype; and a value too large for the
 * upstream (60 KiB; 64 KiB is past the answer's own 65,536-byte cap) never produces a partial request: it arrives whole, or the client gets a clean 502.
 */
import t from 'tap';
import { bearer } from '../helpers/http.js';
import { identityOf, startGate } from '../helpers/gate.js';

const CLAIM_HEADERS = {
  'X-Auth-Subject': 'sub',
  'X-Auth-Crlf': 'crlf',
  'X-Auth-Nul': 'nul',
  'X-Auth-Name': 'name',
  'X-Auth-Groups': 'groups',
  'X-Auth-Obj': 'obj',
  'X-Auth-Int': 'int',
  'X-Auth-Big-Int': 'big_int',
  'X-Auth-Float': 'float',
  'X-Auth-Lone': 'lone',
  'X-Auth-Tab': 'tab',
  'X-Auth-Del': 'del',
  'X-Auth-Proto': '__proto__',
  'X-Auth-Ctor': 'constructor',
  'X-Auth-To-String': 'toString',
  'X-Auth-Has-Own': 'hasOwnProperty',
  'X-Auth-Flag': 'flag',
  'X-Auth-Null': 'nullish',
};

// JSON.parse makes `__proto__` an own property, as a provider's JSON answer would.
const HOSTILE = JSON.parse(`{
  "sub": "alice",
  "crlf": "a\\r\\nX-Auth-Admin: yes\\r\\n\\r\\nGET /admin HTTP/1.1",
  "nul": "a\\u0000b",
  "name": "Zoë 東京 🚀",
  "groups": ["staff", "b\\r\\nX-Injected: 1"],
  "obj": {"role": "x\\ny"},
  "int": 42,
  "big_int": 1e21,
  "float": 1.5,
  "lone": "x\\ud800y",
  "tab": "a\\tb",
  "del": "a\\u007fb",
  "__proto__": "proto\\r\\nX-Evil: 1",
  "flag": true,
  "nullish": null
}`) as Record<string, unknown>;

t.test('hostile claim values arrive as exactly one header each, safely encoded', async (t) => {
  const g = await startGate(t, {
    claims: HOSTILE,
    config: { headers: { claims: CLAIM_HEADERS, claims_json: 'X-Auth-Claims' } },
  });
  const res = await g.gate.request('/orders', { headers: bearer('good') });
  t.equal(res.status, 200);
  const seen = g.upstream.single();
  const claimsJson = seen.headers['x-auth-claims'];
  t.same(identityOf(seen.headers), {
    'x-auth-subject': ['alice'],
    'x-auth-crlf': [encodeURIComponent(HOSTILE.crlf as string)],
    'x-auth-nul': ['a%00b'],
    'x-auth-name': [encodeURIComponent('Zoë 東京 🚀')],
    'x-auth-groups': ['staff%20b%0D%0AX-Injected%3A%201'],
    'x-auth-obj': ['{"role":"x\\ny"}'],
    'x-auth-int': ['42'],
    'x-auth-big-int': ['1000000000000000000000'],
    'x-auth-float': ['1.5'],
    'x-auth-lone': ['x%EF%BF%BDy'],
    'x-auth-tab': ['a%09b'],
    'x-auth-del': ['a%7Fb'],
    'x-auth-proto': ['proto%0D%0AX-Evil%3A%201'],
    'x-auth-flag': ['true'],
    'x-auth-provider': ['acme'],
    'x-auth-claims': claimsJson ?? [],
  });
  t.equal(seen.headers['x-auth-ctor'], undefined, 'an absent `constructor` claim is not Object');
  t.equal(seen.headers['x-auth-to-string'], undefined);
  t.equal(seen.headers['x-auth-has-own'], undefined);
  t.equal(seen.headers['x-auth-null'], undefined, 'a null claim adds no header');
  t.equal(seen.headers['x-auth-admin'], undefined, 'no header was split off a value');
  t.equal(seen.headers['x-injected'], undefined);
  t.equal(seen.headers['x-evil'], undefined);
  t.equal(g.upstream.requests.length, 1, 'no second request was split off a value');
  t.ok(claimsJson?.[0] && /^[A-Za-z0-9_-]+$/.test(claimsJson[0]), 'the whole answer travels as base64url');
  t.same(JSON.parse(Buffer.from(claimsJson![0]!, 'base64url').toString('utf8')).crlf, HOSTILE.crlf);
});

t.test('claims named constructor, __proto__ and toString are read as the provider sent them', async (t) => {
  const claims = JSON.parse('{"constructor": "ctor", "__proto__": {"admin": true}, "toString": ["a", 1]}') as Record<
    string,
    unknown
  >;
  const g = await startGate(t, { claims, config: { headers: { claims: CLAIM_HEADERS } } });
  t.equal((await g.gate.request('/orders', { headers: bearer('good') })).status, 200);
  const seen = g.upstream.single();
  t.same(seen.headers['x-auth-ctor'], ['ctor']);
  t.same(seen.headers['x-auth-proto'], ['{"admin":true}']);
  t.same(seen.headers['x-auth-to-string'], ['a 1']);
  t.equal(({} as Record<string, unknown>).admin, undefined, 'Object.prototype is untouched');
});

t.test('a 64 KiB claim makes the answer itself too large (SPEC §3.4): 503, nothing forwarded', async (t) => {
  const g = await startGate(t, { claims: { sub: 'a'.repeat(64 * 1024) }, upstream: { maxHeaderSize: 256 * 1024 } });
  const res = await g.gate.request('/orders', { headers: bearer('good') });
  t.equal(res.status, 503);
  t.equal(res.json().error, 'temporarily_unavailable');
  t.equal(g.upstream.requests.length, 0);
});

// The largest claim an answer under 65,536 bytes can carry, with room for the other claims.
const BIG = 'a'.repeat(60 * 1024);

t.test('a 60 KiB claim arrives whole at an upstream that accepts it', async (t) => {
  const g = await startGate(t, {
    claims: { sub: BIG },
    upstream: { maxHeaderSize: 256 * 1024 },
  });
  t.equal((await g.gate.request('/orders', { headers: bearer('good') })).status, 200);
  t.same(g.upstream.single().headers['x-auth-subject'], [BIG]);
});

t.test('a 60 KiB claim an upstream refuses: a clean 502, never a partial request', async (t) => {
  const g = await startGate(t, { claims: { sub: BIG } }); // Node's default: 16 KiB of head
  for (let i = 0; i < 3; i++) {
    const res = await g.gate.request('/orders', { headers: bearer('good') });
    t.equal(res.status, 502);
    // 431 read, or the connection reset while writing: the same refusal either way.
    t.equal(res.json().error, 'bad_gateway');
    t.equal(res.headers['content-type'], 'application/json');
    t.equal(res.headers['cache-control'], 'no-store');
  }
  t.equal(g.upstream.requests.length, 0, 'the upstream handled no request at all');
  // The same tollgate still serves a request whose identity fits.
  const small = await g.gate.request('/public/x');
  t.equal(small.status, 200);
});
