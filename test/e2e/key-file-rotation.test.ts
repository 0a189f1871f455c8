/**
 * SPEC §7 with SPEC §2's key files: a CA, certificate or key file renewed at the same path (as
 * cert-manager renews a Secret) is read by the reload that its folder's watch triggers, and the
 * provider is rebuilt with it — no restart. A reload that finds the files untouched keeps the
 * provider as it is. Against a real oidc-provider over HTTPS with a private test CA.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { startOidcProvider } from '../../dev/oidc-provider.js';
import { bearer } from '../helpers/http.js';
import { createPki } from '../helpers/pki.js';
import { eventually, providerEntry, startTollgate, withTimeout } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';

const pki = createPki(t.testdir());
const ca = pki.ca('the provider CA');
const otherCa = pki.ca('some other CA');
const serverCert = pki.issue(ca, 'oidc-provider', 'server');

t.test('a CA file renewed in place is read by the reload its folder triggers', async (t) => {
  const op = await startOidcProvider({ https: { cert: serverCert.cert, key: serverCert.key, ca: ca.cert } });
  t.teardown(() => op.close());
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  // Its own folder, as a mounted Secret has; first holding a CA that did not sign the provider.
  const caFile = path.join(t.testdir({ 'ca.pem': otherCa.cert }), 'ca.pem');

  const gate = await startTollgate(
    t,
    { upstream: { url: upstream.url }, providers: [providerEntry('acme', op.issuer, { ca_file: caFile })] },
    // No discovery retry within the test: only a reload can make the provider ready.
    { waitReady: false, discoveryRetryMs: { first: 60_000, max: 60_000 } },
  );
  const token = await op.mintToken();
  await eventually(
    () => gate.logs.some((l) => l.msg === 'provider discovery failed' && l.provider === 'acme'),
    'the untrusted provider certificate is logged',
  );
  t.equal((await gate.request('/x', { headers: bearer(token) })).status, 503, 'not trusted yet');
  const before = gate.app.runtime().providers.get('acme')!;

  writeFileSync(caFile, ca.cert); // renewed in place: same path, new content
  await eventually(
    () => gate.logs.some((l) => l.msg === 'configuration reloaded' && (l.changed as string[]).includes('acme')),
    'a reload that changed acme, triggered by the folder watch',
  );
  const after = gate.app.runtime().providers.get('acme')!;
  t.not(after, before, 'the provider was built again');
  await withTimeout(after.ready, 10_000, 'the rebuilt provider did not become ready within 10 s');
  const res = await gate.request('/x', { headers: bearer(token) });
  t.equal(res.status, 200, 'the renewed CA is trusted');
  t.equal(upstream.requests.length, 1);

  // Nothing changed: the next reload keeps the provider, its connections and readiness.
  const result = await gate.app.reload();
  t.match(result, { ok: true, changed: [], unchanged: ['acme'] });
  t.equal(gate.app.runtime().providers.get('acme'), after, 'the same provider');
  t.notOk(gate.rawLogs().includes('BEGIN CERTIFICATE'), 'no file content in any log line');
});
