/**
 * identity_jwt's configuration: the signing key file is read and checked at load, so check-config
 * names a bad one (encrypted, too weak, wrong curve, public only, not a key, unfit for `alg`) by its
 * path and never by its content; `kid` is the RFC 7638 thumbprint unless the JWK names one; the
 * public key set never carries a private member; a header that contradicts another setting is a
 * problem.
 */
import { generateKeyPairSync } from 'node:crypto';
import path from 'node:path';
import { calculateJwkThumbprint } from 'jose';
import t from 'tap';
import { validateConfig, type Problem } from '../../src/config/load.js';
import { generateSigningKey, readSigningKey } from '../../src/identity/keys.js';
import { compileIdentity } from '../../src/identity/mint.js';
import { generateKey, keyFile } from '../helpers/identity.js';

const base = {
  upstream: { url: 'http://127.0.0.1:8080' },
  providers: [{ name: 'acme', issuer: 'https://login.acme.example', client_id: 'tollgate', client_secret: 's' }],
};
const identity = (extra: Record<string, unknown>) => ({ issuer: 'https://tollgate.example', audience: 'api', ...extra });
const problemsOf = (headers: Record<string, unknown>, baseDir: string): Problem[] => {
  const result = validateConfig({ ...base, headers }, { baseDir });
  return result.ok ? [] : result.problems;
};

const ec = generateKey('ES256');
const rsa = generateKey('RS256');
const ed = generateKey('EdDSA');
const weakRsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey;
const x25519 = generateKeyPairSync('x25519').privateKey;
const SECRET_LOOKING = 'this-is-not-a-key-but-could-be-a-secret';

const dir = t.testdir({
  'ec.pem': keyFile(ec, 'pkcs8'),
  'ec-sec1.pem': keyFile(ec, 'traditional'),
  'rsa.pem': keyFile(rsa, 'traditional'),
  'ed.jwk': keyFile(ed, 'jwk', { kid: 'my-key' }),
  'set.jwks': JSON.stringify({ keys: [JSON.parse(keyFile(ec, 'jwk'))] }),
  'encrypted.pem': ec.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'pw' }) as string,
  'weak.pem': keyFile(weakRsa, 'pkcs8'),
  'p384.pem': keyFile(p384, 'pkcs8'),
  'x25519.pem': keyFile(x25519, 'pkcs8'),
  'public.jwk': JSON.stringify(ec.export({ format: 'jwk' }) && { ...ec.export({ format: 'jwk' }), d: undefined }),
  'garbage.pem': SECRET_LOOKING,
});
const file = (name: string) => path.join(dir, name);

t.test('good keys of every kind load, relative to the configuration', async (t) => {
  for (const name of ['ec.pem', 'ec-sec1.pem', 'rsa.pem', 'ed.jwk', 'set.jwks']) {
    t.same(problemsOf({ identity_jwt: identity({ key_file: name }) }, dir), [], `${name} is accepted`);
  }
  t.same(problemsOf({ identity_jwt: identity({ key_file: 'rsa.pem', alg: 'PS256' }) }, dir), [], 'an RSA key may sign PS256');
});

t.test('a bad key file is a problem naming the file, never its content', async (t) => {
  const cases: [string, RegExp][] = [
    ['encrypted.pem', /encrypted\.pem holds an encrypted key; store it decrypted/],
    ['weak.pem', /weak\.pem: a 1024-bit RSA key is too weak; at least 2048 bits/],
    ['p384.pem', /p384\.pem: an EC key on curve secp384r1; expected P-256, Ed25519 or RSA/],
    ['x25519.pem', /x25519\.pem: a x25519 key cannot sign/],
    ['public.jwk', /public\.jwk holds a public key; tollgate needs the private key/],
    ['garbage.pem', /garbage\.pem holds no PEM or JWK private key/],
    ['missing.pem', /cannot read .*missing\.pem: ENOENT/],
  ];
  for (const [name, message] of cases) {
    const problems = problemsOf({ identity_jwt: identity({ key_file: name }) }, dir);
    t.equal(problems.length, 1, `${name}: one problem`);
    t.equal(problems[0]?.path, 'headers.identity_jwt.key_file');
    t.match(problems[0]?.message, message);
    t.notMatch(problems[0]?.message, SECRET_LOOKING);
  }
});

t.test('alg must fit the key', async (t) => {
  t.same(problemsOf({ identity_jwt: identity({ key_file: 'ec.pem', alg: 'RS256' }) }, dir), [
    { path: 'headers.identity_jwt.alg', message: `RS256 does not fit the EC P-256 key in ${file('ec.pem')}` },
  ]);
  t.same(problemsOf({ identity_jwt: identity({ key_file: 'ed.jwk', alg: 'ES256' }) }, dir), [
    { path: 'headers.identity_jwt.alg', message: `ES256 does not fit the Ed25519 key in ${file('ed.jwk')}` },
  ]);
  const unknown = problemsOf({ identity_jwt: identity({ alg: 'HS256' }) }, dir);
  t.equal(unknown[0]?.path, 'headers.identity_jwt.alg', 'a symmetric algorithm is refused');
});

t.test('settings that contradict each other are problems', async (t) => {
  t.match(problemsOf({ forward_authorization: true, identity_jwt: identity({ header: 'Authorization' }) }, dir), [
    { path: 'headers.identity_jwt.header', message: /forward_authorization: false/ },
  ]);
  t.match(problemsOf({ identity_jwt: identity({ header: 'X-Auth-Subject' }) }, dir), [
    { path: 'headers.identity_jwt.header', message: 'collides with headers.claims.X-Auth-Subject' },
  ]);
  t.match(problemsOf({ identity_jwt: identity({ header: 'x_auth.provider' }) }, dir), [
    { path: 'headers.identity_jwt.header', message: 'collides with headers.provider' },
  ]);
  t.match(problemsOf({ identity_jwt: identity({ header: 'Host' }) }, dir), [
    { path: 'headers.identity_jwt.header', message: /not a header the token can travel in/ },
  ]);
  t.match(
    problemsOf({ identity_jwt: { ttl_s: 0, surprise: 1 } }, dir).map((p) => p.path),
    [
      'headers.identity_jwt.issuer',
      'headers.identity_jwt.audience',
      'headers.identity_jwt.ttl_s',
      'headers.identity_jwt.surprise',
    ].map((p) => new RegExp(`^${p.replace(/\./g, '\\.')}$`)),
    'every problem of the section, by path',
  );
});

t.test('kid: the RFC 7638 thumbprint, or the JWK own', async (t) => {
  const noProblem = () => t.fail('no problem expected');
  for (const name of ['ec.pem', 'rsa.pem', 'set.jwks']) {
    const key = readSigningKey({ key_file: file(name) }, noProblem)!;
    t.equal(key.kid, await calculateJwkThumbprint(key.publicJwk as never), `${name}: thumbprint`);
  }
  t.equal(readSigningKey({ key_file: file('ed.jwk') }, noProblem)!.kid, 'my-key');
  t.equal(
    readSigningKey({ key_file: file('ec.pem') }, noProblem)!.kid,
    readSigningKey({ key_file: file('ec-sec1.pem') }, noProblem)!.kid,
    'the same key in two encodings has one kid',
  );
});

t.test('the key set serves public members only', async (t) => {
  const noProblem = () => t.fail('no problem expected');
  const keys = [
    readSigningKey({ key_file: file('rsa.pem') }, noProblem)!,
    readSigningKey({ key_file: file('ec.pem') }, noProblem)!,
    readSigningKey({ key_file: file('ed.jwk') }, noProblem)!,
    generateSigningKey({ alg: 'EdDSA' }),
    generateSigningKey({ alg: 'PS256' }),
  ];
  const PRIVATE = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
  for (const key of keys) {
    for (const member of PRIVATE) t.notOk(member in key.publicJwk, `${key.alg}: no ${member}`);
    t.match(key.publicJwk, { kid: key.kid, alg: key.alg, use: 'sig' });
  }
  // Through the identity's JWK Set too, after a rotation (two keys listed).
  const settings = { header: 'X-Auth-Token', issuer: 'i', audience: 'a', ttl_s: 60, alg: null, key_file: file('rsa.pem') };
  const first = compileIdentity(settings, { issuers: new Map(), nowMs: 0 });
  const second = compileIdentity({ ...settings, key_file: file('ec.pem') }, { previous: first, issuers: new Map(), nowMs: 1000 });
  const served = JSON.stringify(second.keys.jwks(1000));
  t.equal(JSON.parse(served).keys.length, 2);
  for (const member of PRIVATE) t.notMatch(served, new RegExp(`"${member}":`), `the served set has no ${member}`);
  t.equal(second.keys.jwks(61_000)!.keys.length, 1, 'the previous key goes after the old ttl_s');
  t.equal(compileIdentity(null, { issuers: new Map(), nowMs: 0 }).keys.jwks(0), null, 'identity_jwt off: nothing to serve');
});
