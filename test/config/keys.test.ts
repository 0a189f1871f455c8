/**
 * SPEC §2: key and certificate files are read and parsed at load, so check-config reports a bad
 * one with its path; their content never appears in a message; relative paths start at the
 * configuration file; ca_file adds to the system CAs; a file renewed in place changes the digest a
 * reload compares.
 */
import { createPublicKey } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { rootCertificates } from 'node:tls';
import t from 'tap';
import { keyFilesDigest, readProviderKeys } from '../../src/config/keys.js';
import { validateConfig, type Problem } from '../../src/config/load.js';
import { providerSchema } from '../../src/config/schema.js';
import { createPki } from '../helpers/pki.js';

const pki = createPki(t.testdir());
const ca = pki.ca('keys test CA');
const client = pki.issue(ca, 'tollgate', 'client');
const other = pki.issue(ca, 'someone-else', 'client');
const ec = pki.signingKey('ec', 'ec-1');
const rsa = pki.signingKey('rsa', 'rsa-1');
const ed = pki.signingKey('ed25519');

const base = { upstream: { url: 'http://127.0.0.1:8080' } };
const provider = (extra: Record<string, unknown>) => ({
  name: 'acme',
  issuer: 'https://login.acme.example',
  client_id: 'tollgate',
  ...extra,
});
const problemsOf = (raw: Record<string, unknown>, baseDir = pki.dir): Problem[] => {
  const result = validateConfig({ ...base, ...raw }, { baseDir });
  return result.ok ? [] : result.problems;
};
const jwt = (file: string, extra: Record<string, unknown> = {}) =>
  provider({ auth_method: 'private_key_jwt', private_key_file: file, ...extra });
const keysOf = (raw: Record<string, unknown>) => {
  const problems: string[] = [];
  const keys = readProviderKeys(providerSchema.parse(raw), (key, message) => problems.push(`${key}: ${message}`));
  return { keys, problems };
};

t.test('private_key_file: a file that is not a private key is named with its path', async (t) => {
  const secretLooking = 'this-is-not-a-key-but-could-be-a-secret';
  const file = pki.write('garbage.pem', secretLooking);
  const problems = problemsOf({ providers: [jwt(file)] });
  t.same(problems, [{ path: 'providers[0].private_key_file', message: 'not a PEM or JWK private key' }]);
  t.notMatch(JSON.stringify(problems), secretLooking, 'the content never appears');
});

t.test('private_key_file: public keys, encrypted keys and broken JSON are refused', async (t) => {
  const publicPem = createPublicKey(ec.privateKey).export({ format: 'pem', type: 'spki' }) as string;
  const encrypted = ec.privateKey.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'pw' }) as string;
  const files = [
    pki.write('public.pem', publicPem),
    pki.write('encrypted.pem', encrypted),
    pki.write('public.jwk', JSON.stringify(ec.publicJwk)),
    pki.write('broken.jwk', '{"kty": "EC",'),
  ];
  for (const file of files) {
    t.same(
      problemsOf({ providers: [jwt(file)] }),
      [{ path: 'providers[0].private_key_file', message: 'not a PEM or JWK private key' }],
      path.basename(file),
    );
  }
});

t.test('private_key_file: a missing file, and a relative path read from the configuration folder', async (t) => {
  t.same(problemsOf({ providers: [jwt('nowhere.pem')] }), [
    { path: 'providers[0].private_key_file', message: `cannot read ${path.join(pki.dir, 'nowhere.pem')}: ENOENT` },
  ]);
  pki.write('relative.pem', ec.pem);
  const result = validateConfig({ ...base, providers: [jwt('relative.pem')] }, { baseDir: pki.dir });
  t.ok(result.ok);
  if (result.ok) t.equal(result.config.providers[0]!.private_key_file, path.join(pki.dir, 'relative.pem'));
});

t.test('the algorithm: from signing_alg, else the JWK, else the key', async (t) => {
  const ecJwk = pki.write('ec.jwk', JSON.stringify(ec.privateJwk));
  t.match(keysOf(jwt(ecJwk)).keys?.signingKey, { kid: 'ec-1', alg: 'ES256' }, 'an EC P-256 JWK signs ES256 with its kid');
  t.match(keysOf(jwt(pki.write('rsa.pem', rsa.pem))).keys?.signingKey, { kid: undefined, alg: 'RS256' }, 'PEM: no kid');
  t.match(keysOf(jwt(pki.write('ed.pem', ed.pem))).keys?.signingKey, { alg: 'EdDSA' });
  const rsaJwk = pki.write('rsa384.jwk', JSON.stringify({ ...rsa.privateJwk, alg: 'RS384' }));
  t.match(keysOf(jwt(rsaJwk)).keys?.signingKey, { alg: 'RS384', kid: 'rsa-1' }, "the JWK's alg");
  t.match(keysOf(jwt(rsaJwk, { signing_alg: 'RS384' })).keys?.signingKey, { alg: 'RS384' });
  const set = pki.write('set.jwks', JSON.stringify({ keys: [ec.privateJwk] }));
  t.match(keysOf(jwt(set)).keys?.signingKey, { kid: 'ec-1' }, 'a JWK Set of one key');
  t.match(keysOf(jwt(pki.write('rsa2.pem', rsa.pem), { signing_alg: 'PS512' })).keys?.signingKey, { alg: 'PS512' });

  t.same(problemsOf({ providers: [jwt(ecJwk, { signing_alg: 'RS256' })] }), [
    { path: 'providers[0].signing_alg', message: 'RS256 needs another kind of key than the one in private_key_file' },
  ]);
  t.same(problemsOf({ providers: [jwt(rsaJwk, { signing_alg: 'RS512' })] }), [
    { path: 'providers[0].signing_alg', message: 'the key in private_key_file is for RS384' },
  ]);
  t.match(problemsOf({ providers: [jwt(ecJwk, { signing_alg: 'HS256' })] }), [
    { path: 'providers[0].signing_alg', message: /^expected one of RS256, / },
  ]);
});

t.test('mutual TLS: the certificate and its key must belong together', async (t) => {
  const mtls = (cert: string, key: string) =>
    provider({ auth_method: 'tls_client_auth', tls_cert_file: cert, tls_key_file: key });
  t.same(problemsOf({ providers: [mtls(client.certFile, client.keyFile)] }), []);
  t.same(problemsOf({ providers: [mtls(client.certFile, other.keyFile)] }), [
    { path: 'providers[0].tls_key_file', message: 'does not belong to the certificate in tls_cert_file' },
  ]);
  t.same(problemsOf({ providers: [mtls(client.keyFile, client.certFile)] }), [
    { path: 'providers[0].tls_cert_file', message: 'not a PEM certificate' },
    { path: 'providers[0].tls_key_file', message: 'not a PEM private key' },
  ]);
  const { keys } = keysOf(mtls(client.certFile, client.keyFile));
  t.equal(keys?.tls?.cert, client.cert);
  t.equal(keys?.tls?.ca, undefined, 'no ca_file: the system CAs, untouched');
});

t.test('ca_file adds to the system CAs, and must hold certificates', async (t) => {
  const { keys } = keysOf(provider({ client_secret: 's', ca_file: ca.certFile }));
  const trusted = new Set(keys?.tls?.ca?.map((c) => c.trim()));
  t.ok(
    rootCertificates.every((c) => trusted.has(c.trim())),
    'every system CA is kept',
  );
  t.equal(keys?.tls?.ca?.at(-1)?.trim(), ca.cert.trim());
  const notPem = pki.write('ca.txt', 'hello');
  t.same(problemsOf({ providers: [provider({ client_secret: 's', ca_file: notPem })] }), [
    { path: 'providers[0].ca_file', message: 'not a PEM certificate bundle' },
  ]);
});

t.test('key files are checked even when another part of the configuration is wrong', async (t) => {
  const file = pki.write('garbage2.pem', 'nope');
  const problems = problemsOf({ providers: [jwt(file), provider({ name: 'b', client_secret: 's', timeout_ms: -1 })] });
  t.match(problems, [{ path: 'providers[1].timeout_ms' }, { path: 'providers[0].private_key_file' }]);
});

t.test('providers_dir: problems are named by the file, relative paths start at the folder', async (t) => {
  const dir = path.join(pki.dir, 'providers.d');
  mkdirSync(dir);
  pki.write('providers.d/good.pem', ec.pem);
  writeFileSync(
    path.join(dir, 'acme.yaml'),
    'issuer: https://login.acme.example\nclient_id: tollgate\nauth_method: private_key_jwt\nprivate_key_file: missing.pem\n',
  );
  writeFileSync(
    path.join(dir, 'beta.yaml'),
    'issuer: https://login.beta.example\nclient_id: tollgate\nauth_method: private_key_jwt\nprivate_key_file: good.pem\n',
  );
  t.same(problemsOf({ providers_dir: 'providers.d' }), [
    { path: 'providers_dir/acme.yaml: private_key_file', message: `cannot read ${path.join(dir, 'missing.pem')}: ENOENT` },
  ]);
});

t.test('a key file the method does not use is an error, not silently ignored', async (t) => {
  t.same(problemsOf({ providers: [provider({ client_secret: 's', private_key_file: 'k.pem', signing_alg: 'ES256' })] }), [
    { path: 'providers[0].private_key_file', message: 'only with auth_method private_key_jwt' },
    { path: 'providers[0].signing_alg', message: 'only with auth_method private_key_jwt' },
  ]);
});

t.test('a signed answer needs the provider metadata for its JWKS', async (t) => {
  const entry = provider({
    client_secret: 's',
    introspection_response: 'jwt',
    introspection_endpoint: 'https://login.acme.example/i',
  });
  t.same(problemsOf({ providers: [entry] }), [
    {
      path: 'providers[0].introspection_response',
      message: 'jwt needs the provider metadata (its jwks_uri): leave introspection_endpoint out',
    },
  ]);
});

t.test('the key files digest changes when any file changes at the same path, and only then', async (t) => {
  const dir = t.testdir({ 'client.pem': client.cert, 'client.key': client.key, 'ca.pem': ca.cert });
  const settings = {
    auth_method: 'tls_client_auth',
    tls_cert_file: path.join(dir, 'client.pem'),
    tls_key_file: path.join(dir, 'client.key'),
    ca_file: path.join(dir, 'ca.pem'),
  };
  const first = keyFilesDigest(settings);
  t.equal(keyFilesDigest(settings), first, 'untouched files: the same digest');
  t.notOk(first.includes('BEGIN') || first.length > 64, 'a digest, not content');

  writeFileSync(settings.tls_cert_file, other.cert);
  writeFileSync(settings.tls_key_file, other.key);
  const renewed = keyFilesDigest(settings);
  t.not(renewed, first, 'a renewed certificate and key');
  writeFileSync(settings.ca_file, `${ca.cert}${ca.cert}`);
  t.not(keyFilesDigest(settings), renewed, 'a changed CA bundle');
  t.not(keyFilesDigest({ ...settings, ca_file: path.join(dir, 'gone.pem') }), renewed, 'an unreadable file counts as changed');
});
