/**
 * SPEC §2 provider authentication, end to end against a real oidc-provider over HTTPS with a
 * private test CA: private_key_jwt, tls_client_auth (through the provider's mtls_endpoint_aliases
 * too), self_signed_tls_client_auth, none, signed introspection answers, and a CA trusted for one
 * provider only. Each method lets a valid token through; a wrong key, a wrong certificate, an
 * unsigned answer where a signed one is required, a tampered signature (fake provider: a real one
 * won't tamper) and an untrusted CA are each a 503 that reaches nothing upstream, with a log line
 * naming the provider and the cause.
 */
import { createPublicKey, createSign, createVerify, X509Certificate } from 'node:crypto';
import t, { type Test } from 'tap';
import type { ClientMetadata } from 'oidc-provider';
import { startOidcProvider, type OidcProvider } from '../../dev/oidc-provider.js';
import { startFakeProvider } from '../helpers/fake-provider.js';
import { bearer } from '../helpers/http.js';
import { createPki, type Issued, type SigningKey } from '../helpers/pki.js';
import { startTollgate, withTimeout, type TestTollgate } from '../helpers/tollgate.js';
import { startUpstream, type RecordingUpstream } from '../helpers/upstream.js';

const pki = createPki(t.testdir());
const ca = pki.ca('tollgate test CA');
const otherCa = pki.ca('some other CA');
const serverCert = pki.issue(ca, 'oidc-provider', 'server');
const clientCert = pki.issue(ca, 'tollgate', 'client');
const strangerCert = pki.issue(otherCa, 'tollgate', 'client'); // right name, untrusted issuer
const selfSigned = pki.selfSigned('tollgate-self');
const otherSelfSigned = pki.selfSigned('tollgate-self');
const ecKey = pki.signingKey('ec');
const rsaKey = pki.signingKey('rsa', 'rsa-2026');
const wrongKey = pki.signingKey('ec');

const https = { cert: serverCert.cert, key: serverCert.key, ca: ca.cert };
const jwks = (...keys: SigningKey[]) => ({ keys: keys.map((k) => k.publicJwk) });
/** RFC 8705 §2.2: a self-signed certificate is registered as a JWK carrying it in x5c. */
const x5cKey = (cert: Issued) => ({ ...new X509Certificate(cert.cert).publicKey.export({ format: 'jwk' }), x5c: [cert.x5c] });

const none = { grant_types: [], response_types: [], redirect_uris: [] };
const clients = (): ClientMetadata[] => [
  { ...none, client_id: 'tollgate-jwt', token_endpoint_auth_method: 'private_key_jwt', jwks: jwks(ecKey, rsaKey) },
  {
    ...none,
    client_id: 'tollgate-mtls',
    token_endpoint_auth_method: 'tls_client_auth',
    tls_client_auth_subject_dn: 'CN=tollgate',
  },
  {
    ...none,
    client_id: 'tollgate-self',
    token_endpoint_auth_method: 'self_signed_tls_client_auth',
    jwks: { keys: [x5cKey(selfSigned)] },
  },
  { ...none, client_id: 'tollgate-public', token_endpoint_auth_method: 'none' },
  {
    ...none,
    client_id: 'tollgate-signed',
    client_secret: 'tollgate-signed-secret',
    introspection_signed_response_alg: 'ES256',
  },
];

async function provider(t: Test, extra: { mtlsAlias?: boolean; signsAnswers?: boolean } = {}): Promise<OidcProvider> {
  const op = await startOidcProvider({
    https,
    ...(extra.mtlsAlias === undefined ? {} : { mtlsAlias: extra.mtlsAlias }),
    clients: clients(),
    extraTokenClaims: (clientId) => ({ sub: `service:${clientId}` }),
    configuration: {
      features: {
        // A public client (auth_method none) may introspect others' tokens here: a deployment decision.
        introspection: { enabled: true, allowedPolicy: async () => true },
        jwtIntrospection: { enabled: extra.signsAnswers ?? true },
      },
      enabledJWA: { introspectionSigningAlgValues: ['RS256', 'ES256'] },
      jwks: {
        keys: [
          { ...pki.signingKey('ec', 'op-es256').privateJwk, use: 'sig' },
          { ...pki.signingKey('rsa', 'op-rs256').privateJwk, use: 'sig' },
        ],
      },
    },
  });
  t.teardown(() => op.close());
  return op;
}

async function upstreamFor(t: Test): Promise<RecordingUpstream> {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  return upstream;
}

function gateway(t: Test, upstream: RecordingUpstream, entry: Record<string, unknown>, waitReady = true) {
  return startTollgate(
    t,
    { upstream: { url: upstream.url }, providers: [{ name: 'acme', ...entry }] },
    waitReady ? {} : { waitReady: false, discoveryRetryMs: { first: 60_000, max: 60_000 } },
  );
}

/** The cause in the first log line with this message that names the provider. */
function causeOf(t: Test, gate: TestTollgate, msg: string, provider = 'acme'): string {
  // A refused credential is logged as 'introspection failed: configuration error'.
  const line = gate.logs.find((l) => String(l.msg).startsWith(msg) && l.provider === provider);
  t.ok(line, `a "${msg}" line names the provider ${provider}`);
  return String(line?.cause);
}

/** Waits (bounded) for something that happens in the background, such as a failed discovery. */
async function eventually(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function allowed(t: Test, gate: TestTollgate, upstream: RecordingUpstream, op: OidcProvider) {
  const token = await op.mintToken();
  const res = await gate.request('/orders', { headers: bearer(token) });
  t.equal(res.status, 200, res.text);
  t.same(upstream.single().headers['x-auth-subject'], ['service:demo-app']);
}

/**
 * Credentials the provider refuses keep it unready from the start (the credential probe at
 * discovery), with an error line saying what to check; a request meanwhile gets 503.
 */
async function refusedAtStart(t: Test, entry: Record<string, unknown>, op: OidcProvider, cause: RegExp) {
  const upstream = await upstreamFor(t);
  const gate = await gateway(t, upstream, entry, false);
  const msg = "provider not ready: it rejects tollgate's credentials";
  await eventually('the refused credential probe logged', () => gate.logs.some((l) => l.msg === msg));
  t.notOk(gate.app.isReady(), 'not ready');
  await refused(t, gate, upstream, op);
  t.match(causeOf(t, gate, msg), cause);
}

async function refused(t: Test, gate: TestTollgate, upstream: RecordingUpstream, op: OidcProvider) {
  const token = await op.mintToken();
  const res = await gate.request('/orders', { headers: bearer(token) });
  t.equal(res.status, 503);
  t.equal(res.json().error, 'temporarily_unavailable');
  t.ok(res.headers['retry-after'], 'Retry-After');
  t.equal(upstream.requests.length, 0, 'nothing reaches the upstream');
}

t.test('private_key_jwt', async (t) => {
  const op = await provider(t);
  const base = { issuer: op.issuer, client_id: 'tollgate-jwt', auth_method: 'private_key_jwt', ca_file: ca.certFile };

  t.test('an EC key in PEM (no kid) signs ES256', async (t) => {
    const upstream = await upstreamFor(t);
    const gate = await gateway(t, upstream, { ...base, private_key_file: pki.write('ec.pem', ecKey.pem) });
    await allowed(t, gate, upstream, op);
    t.notMatch(gate.rawLogs(), /PRIVATE KEY|"d":/, 'no key material in the logs');
  });

  t.test('an RSA key as a JWK with its kid, the algorithm named', async (t) => {
    const upstream = await upstreamFor(t);
    const file = pki.write('rsa.jwk', JSON.stringify(rsaKey.privateJwk));
    const gate = await gateway(t, upstream, { ...base, private_key_file: file, signing_alg: 'PS256' });
    await allowed(t, gate, upstream, op);
  });

  t.test('a key the provider does not know is refused', async (t) => {
    await refusedAtStart(
      t,
      { ...base, private_key_file: pki.write('wrong.pem', wrongKey.pem) },
      op,
      /^credential probe: HTTP 401 invalid_client.*public key of private_key_file/,
    );
  });
});

t.test('tls_client_auth', async (t) => {
  const op = await provider(t);
  const base = {
    issuer: op.issuer,
    client_id: 'tollgate-mtls',
    auth_method: 'tls_client_auth',
    ca_file: ca.certFile,
  };

  t.test('a certificate from the trusted CA with the registered subject', async (t) => {
    const upstream = await upstreamFor(t);
    const gate = await gateway(t, upstream, { ...base, tls_cert_file: clientCert.certFile, tls_key_file: clientCert.keyFile });
    await allowed(t, gate, upstream, op);
  });

  t.test('a certificate from another CA is refused', async (t) => {
    await refusedAtStart(
      t,
      { ...base, tls_cert_file: strangerCert.certFile, tls_key_file: strangerCert.keyFile },
      op,
      /^credential probe: HTTP 401 invalid_client.*client certificate/,
    );
  });
});

t.test('tls_client_auth through the mtls_endpoint_aliases the provider advertises', async (t) => {
  // Only the alias asks for a certificate: the plain endpoint would answer invalid_client.
  const op = await provider(t, { mtlsAlias: true });
  t.ok(op.mtlsIntrospectionEndpoint);
  const upstream = await upstreamFor(t);
  const gate = await gateway(t, upstream, {
    issuer: op.issuer,
    client_id: 'tollgate-mtls',
    auth_method: 'tls_client_auth',
    tls_cert_file: clientCert.certFile,
    tls_key_file: clientCert.keyFile,
    ca_file: ca.certFile,
  });
  t.match(
    gate.logs.find((l) => l.msg === 'provider ready'),
    { introspection_endpoint: op.mtlsIntrospectionEndpoint },
  );
  await allowed(t, gate, upstream, op);
});

t.test('self_signed_tls_client_auth', async (t) => {
  const op = await provider(t);
  const base = {
    issuer: op.issuer,
    client_id: 'tollgate-self',
    auth_method: 'self_signed_tls_client_auth',
    ca_file: ca.certFile,
  };

  t.test('the registered self-signed certificate', async (t) => {
    const upstream = await upstreamFor(t);
    const gate = await gateway(t, upstream, { ...base, tls_cert_file: selfSigned.certFile, tls_key_file: selfSigned.keyFile });
    await allowed(t, gate, upstream, op);
  });

  t.test('another self-signed certificate is refused', async (t) => {
    await refusedAtStart(
      t,
      { ...base, tls_cert_file: otherSelfSigned.certFile, tls_key_file: otherSelfSigned.keyFile },
      op,
      /^credential probe: HTTP 401 invalid_client.*certificate of tls_cert_file/,
    );
  });
});

t.test('auth_method none', async (t) => {
  const op = await provider(t);
  const upstream = await upstreamFor(t);
  const gate = await gateway(t, upstream, {
    issuer: op.issuer,
    client_id: 'tollgate-public',
    auth_method: 'none',
    ca_file: ca.certFile,
  });
  await allowed(t, gate, upstream, op);
});

t.test('introspection_response: jwt', async (t) => {
  const op = await provider(t);
  const signed = {
    issuer: op.issuer,
    client_id: 'tollgate-signed',
    client_secret: 'tollgate-signed-secret',
    ca_file: ca.certFile,
    introspection_response: 'jwt',
    introspection_signing_alg: 'ES256',
  };

  t.test('a signed answer verified against the provider JWKS', async (t) => {
    const upstream = await upstreamFor(t);
    const gate = await gateway(t, upstream, signed);
    await allowed(t, gate, upstream, op);
  });

  t.test('a plain JSON answer where a signed one is required', async (t) => {
    // A provider that does not sign answers (RFC 9701 off) ignores the Accept header and sends JSON.
    const plain = await provider(t, { signsAnswers: false });
    const upstream = await upstreamFor(t);
    const gate = await gateway(t, upstream, { ...signed, issuer: plain.issuer });
    await refused(t, gate, upstream, plain);
    t.match(causeOf(t, gate, 'introspection failed'), /not a signed application\/token-introspection\+jwt/);
  });

  t.test('an answer signed with another algorithm than the one required', async (t) => {
    const upstream = await upstreamFor(t);
    const gate = await gateway(t, upstream, { ...signed, introspection_signing_alg: 'RS256' });
    await refused(t, gate, upstream, op);
    t.match(causeOf(t, gate, 'introspection failed'), /alg/);
  });
});

t.test('a signed answer whose signature was tampered with (fake provider)', async (t) => {
  const opKey = pki.signingKey('ec', 'fake-es256');
  const fake = await startFakeProvider({ jwks: { keys: [{ ...opKey.publicJwk, alg: 'ES256', use: 'sig' }] } });
  t.teardown(() => fake.close());
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const sign = (claims: Record<string, unknown>) => {
    const input = `${b64({ alg: 'ES256', kid: 'fake-es256', typ: 'token-introspection+jwt' })}.${b64({
      iss: fake.issuer,
      aud: 'tollgate',
      iat: Math.floor(Date.now() / 1000),
      token_introspection: claims,
    })}`;
    const signature = createSign('sha256').update(input).sign({ key: opKey.privateKey, dsaEncoding: 'ieee-p1363' });
    return `${input}.${signature.toString('base64url')}`;
  };
  let tamper = false;
  fake.script((_token, _req, res) => {
    let jwt = sign({ active: true, sub: 'alice' });
    if (tamper) {
      // The same signature over other claims: someone on the path promoting alice.
      const [header, , signature] = jwt.split('.');
      jwt = `${header}.${sign({ active: true, sub: 'admin' }).split('.')[1]}.${signature}`;
    }
    res.writeHead(200, { 'content-type': 'application/token-introspection+jwt' }).end(jwt);
  });
  const upstream = await upstreamFor(t);
  const gate = await gateway(t, upstream, {
    issuer: fake.issuer,
    client_id: 'tollgate',
    client_secret: 'tollgate-secret',
    introspection_response: 'jwt',
    introspection_signing_alg: 'ES256',
  });

  const good = await gate.request('/orders', { headers: bearer('token-one') });
  t.equal(good.status, 200, 'the untampered answer verifies (the set-up is right)');
  t.equal(fake.requests[0]?.accept, 'application/token-introspection+jwt', 'a signed answer was asked for');
  tamper = true;
  const res = await gate.request('/orders', { headers: bearer('token-two') });
  t.equal(res.status, 503);
  t.equal(upstream.requests.length, 1, 'only the verified request reached the upstream');
  t.match(causeOf(t, gate, 'introspection failed'), /signature/i);
});

t.test('ca_file is trusted for its provider only', async (t) => {
  const op = await provider(t);
  const upstream = await upstreamFor(t);
  const entry = { issuer: op.issuer, client_id: 'tollgate-signed', client_secret: 'tollgate-signed-secret' };
  const gate = await startTollgate(
    t,
    {
      upstream: { url: upstream.url },
      providers: [
        { name: 'trusting', ...entry, ca_file: ca.certFile },
        { name: 'acme', ...entry },
        { name: 'wrong-ca', ...entry, ca_file: otherCa.certFile },
      ],
      routes: [
        { match: { path_prefix: '/trusting' }, providers: ['trusting'] },
        { match: { path_prefix: '/acme' }, providers: ['acme'] },
        { match: { path_prefix: '/wrong-ca' }, providers: ['wrong-ca'] },
      ],
    },
    { waitReady: false, discoveryRetryMs: { first: 60_000, max: 60_000 } },
  );
  const token = await op.mintToken();
  await withTimeout(gate.app.runtime().providers.get('trusting')!.ready, 10_000, 'provider trusting not ready within 10 s');
  t.equal((await gate.request('/trusting/x', { headers: bearer(token) })).status, 200);

  for (const name of ['acme', 'wrong-ca']) {
    const res = await gate.request(`/${name}/x`, { headers: bearer(token) });
    t.equal(res.status, 503, `${name}: the provider's certificate is not trusted`);
    await eventually(`${name}: discovery failure logged`, () =>
      gate.logs.some((l) => l.msg === 'provider discovery failed' && l.provider === name),
    );
    t.match(
      causeOf(t, gate, 'provider discovery failed', name),
      /SELF_SIGNED_CERT_IN_CHAIN.*not trusted.*ca_file/,
      `${name}: the log says why`,
    );
  }
  t.equal(upstream.requests.length, 1);
});

t.test("a reload reads the key file again and rotates the running gateway's key", async (t) => {
  const fake = await startFakeProvider();
  t.teardown(() => fake.close());
  fake.answer(() => ({ active: true, sub: 'alice' }));
  const january = pki.signingKey('ec', '2026-01');
  const february = pki.signingKey('ec', '2026-02');
  const file = pki.write('rotating.jwk', JSON.stringify(january.privateJwk));
  const entry = { issuer: fake.issuer, client_id: 'tollgate', auth_method: 'private_key_jwt', private_key_file: file };
  const upstream = await upstreamFor(t);

  // One gateway, reloaded as SIGHUP does; the folder watch is off, so the reload below is the only one.
  const gate = await startTollgate(
    t,
    { upstream: { url: upstream.url }, providers: [{ name: 'acme', ...entry }] },
    { reload: { watch: false } },
  );
  t.equal((await gate.request('/a', { headers: bearer('token-1') })).status, 200);
  pki.write('rotating.jwk', JSON.stringify(february.privateJwk));
  t.match(await gate.app.reload(), { ok: true, changed: ['acme'] }, 'the reload saw the key file change');
  await withTimeout(gate.app.runtime().providers.get('acme')!.ready, 10_000, 'the reloaded provider was not ready within 10 s');
  t.equal((await gate.request('/a', { headers: bearer('token-2') })).status, 200);

  const assertions = fake.requests.map(({ body: form }) => {
    const [header, payload, signature] = form.get('client_assertion')!.split('.') as [string, string, string];
    const decode = (part: string) => JSON.parse(Buffer.from(part, 'base64url').toString()) as Record<string, unknown>;
    return { header: decode(header), payload: decode(payload), input: `${header}.${payload}`, signature };
  });
  t.same(
    assertions.map((a) => a.header.kid),
    ['2026-01', '2026-02'],
    'before the reload the old key signed, after it the new one',
  );
  t.match(assertions[1]!.payload, { iss: 'tollgate', sub: 'tollgate', aud: fake.issuer });
  t.equal(assertions[1]!.header.alg, 'ES256');
  const verifies = createVerify('sha256')
    .update(assertions[1]!.input)
    .verify({ key: createPublicKey(february.privateKey), dsaEncoding: 'ieee-p1363' }, assertions[1]!.signature, 'base64url');
  t.ok(verifies, 'the assertion is signed with the new key');
  t.equal(fake.requests[1]!.body.get('client_assertion_type'), 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
  t.notMatch(gate.rawLogs(), /client_assertion|"d":|PRIVATE KEY/, 'no key material or assertion in the logs');
});
