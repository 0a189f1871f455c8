/**
 * A second real provider: Glewlwyd 2.7.5 (Debian 12's package), HTTPS with a private CA, JWT
 * access tokens, started here on a free loopback port (test/helpers/glewlwyd.ts). The basics —
 * active, inactive, scopes, revoked once the cache's TTL has passed, JWT routing by `iss` — and
 * what broke against it in issue 18, each against the real thing:
 *  1. the issuer configured with a trailing `/` its metadata lacks (was: never ready);
 *  3. client_secret_basic with a secret beyond letters and digits (was: 503 on every request):
 *     `basic_auth_encoding: raw`, and the default encoding now caught at start;
 *  4. its bare 401 logged as what it is, not as "unexpected response content-type";
 *  5. zero-file mode with TOLLGATE_AUTH_METHOD and TOLLGATE_CA_FILE;
 *  6. a wrong secret caught by the credential probe (was: ready, then 503).
 * (2, ID tokens, needs a user's browser login at Glewlwyd; test/proxy/refusals.test.ts has it.)
 * Glewlwyd's own quirks are pinned too: Basic authentication gets `{"active": false}` for any
 * token but the client's own, and its answers carry no `iss` and the scope string as `aud`.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import { CLI, startBinary } from '../helpers/binary.js';
import { manualClock } from '../helpers/clock.js';
import { startFakeProvider } from '../helpers/fake-provider.js';
import { glewlwydMissing, startGlewlwyd, type Glewlwyd, type GlewlwydClient } from '../helpers/glewlwyd.js';
import { bearer, request } from '../helpers/http.js';
import { assertInvalidToken, jwtClaiming } from '../helpers/tenants.js';
import { eventually, providerEntry, startTollgate } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';

const missing = glewlwydMissing();
if (missing !== undefined && process.env.CI) {
  // CI installs Glewlwyd (.ci/run): without it this file must fail, never pass by skipping.
  throw new Error(`Glewlwyd is required in CI and cannot run: ${missing}`);
}

/** Secrets with characters RFC 6749 §2.3.1's form encoding changes (`-`, `.` stays, `~`). */
const TOLLGATE_SECRET = 'tg-Secret.1~x';
const APP_SECRET = 'app-Secret.2';
const PROBE_REFUSED = "provider not ready: it rejects tollgate's credentials";

t.test('Glewlwyd', { skip: missing === undefined ? false : `Glewlwyd cannot run here: ${missing}` }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-glewlwyd-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const g: Glewlwyd = await startGlewlwyd(dir);
  t.teardown(() => g.close());
  const tollgate: GlewlwydClient = await g.addClient('tollgate', TOLLGATE_SECRET, ['orders.read']);
  const app: GlewlwydClient = await g.addClient('app', APP_SECRET);
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  /** tollgate's provider entry for this Glewlwyd; the issuer as a user might copy it, with `/`. */
  const entry = (extra: Record<string, unknown> = {}) =>
    providerEntry('glewlwyd', `${g.issuer}/`, {
      client_id: tollgate.client_id,
      client_secret: TOLLGATE_SECRET,
      auth_method: 'client_secret_post',
      ca_file: g.ca.certFile,
      ...extra,
    });

  t.test('what Glewlwyd answers (the quirks README names)', async (t) => {
    const token = await g.mintToken(app);
    const answer = await g.introspect(tollgate, token);
    t.match(answer, { active: true, client_id: 'app', scope: 'orders.read', aud: 'orders.read' });
    t.equal(answer.iss, undefined, 'no iss in the answer');
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { iss: string };
    t.equal(claims.iss, g.issuer, 'the token names the issuer without a trailing /');
  });

  t.test('client_secret_post, issuer with a trailing /: active, inactive, scopes, JWT routing, revocation', async (t) => {
    const other = await startFakeProvider();
    t.teardown(() => other.close());
    const clock = manualClock(Date.now());
    const gate = await startTollgate(
      t,
      {
        upstream: { url: upstream.url },
        providers: [entry(), providerEntry('other', other.issuer)],
        routes: [{ match: { path_prefix: '/admin' }, scopes: ['orders.admin'] }],
        cache: { ttl_s: 60 },
      },
      { clock },
    );
    t.equal((await request(`${gate.adminUrl}/readyz`)).status, 200, 'ready: discovery and the credential probe passed');

    const token = await g.mintToken(app);
    const before = upstream.requests.length;
    const res = await gate.request('/orders', { headers: bearer(token) });
    t.equal(res.status, 200, res.text);
    const seen = upstream.requests.at(-1)!;
    t.same(seen.headers['x-auth-provider'], ['glewlwyd'], 'chosen by the JWT iss (no /) among two providers');
    t.same(seen.headers['x-auth-client-id'], ['app']);
    t.same(seen.headers['x-auth-scope'], ['orders.read']);
    t.equal(other.callCount, 0, 'the other provider never saw the token');

    assertInvalidToken(t, await gate.request('/orders', { headers: bearer(jwtClaiming(g.issuer)) }), /not active/);
    t.equal((await gate.request('/admin/x', { headers: bearer(token) })).status, 403, 'orders.admin missing: 403');
    const admin = await g.mintToken(app, ['orders.read', 'orders.admin']);
    t.equal((await gate.request('/admin/x', { headers: bearer(admin) })).status, 200, 'orders.admin present');

    await g.revoke(app, token);
    t.equal((await gate.request('/orders', { headers: bearer(token) })).status, 200, 'revoked, still cached within ttl_s');
    clock.advance(61_000);
    assertInvalidToken(t, await gate.request('/orders', { headers: bearer(token) }), /not active/);
    t.equal(upstream.requests.length, before + 3, 'only the three allowed requests reached the upstream');
  });

  t.test('client_secret_basic', async (t) => {
    t.test('basic_auth_encoding: raw — ready; Glewlwyd then vouches only for its own tokens', async (t) => {
      const gate = await startTollgate(t, {
        upstream: { url: upstream.url },
        providers: [entry({ auth_method: 'client_secret_basic', basic_auth_encoding: 'raw' })],
      });
      const own = await g.mintToken(tollgate);
      t.equal((await gate.request('/x', { headers: bearer(own) })).status, 200, "tollgate's own token: active");
      const foreign = await g.mintToken(app);
      assertInvalidToken(t, await gate.request('/x', { headers: bearer(foreign) }), /not active/);
      t.equal((await g.introspect(tollgate, foreign)).active, true, 'the same token, asked with client_secret_post: active');
    });

    t.test('the default rfc6749 encoding: the secret is refused, found at start (issue 18, 3, 4, 6)', async (t) => {
      const gate = await startTollgate(
        t,
        { upstream: { url: upstream.url }, providers: [entry({ auth_method: 'client_secret_basic' })] },
        { waitReady: false, discoveryRetryMs: { first: 60_000, max: 60_000 } },
      );
      await eventually(() => gate.logs.some((l) => l.msg === PROBE_REFUSED), `no "${PROBE_REFUSED}" line`);
      const line = gate.logs.find((l) => l.msg === PROBE_REFUSED)!;
      t.match(
        line.cause,
        /^credential probe: unexpected HTTP status 401: the provider rejected tollgate's client credentials; check client_id and the secret$/,
      );
      t.equal((await request(`${gate.adminUrl}/readyz`)).status, 503);
      t.notMatch(gate.rawLogs(), TOLLGATE_SECRET);
    });
  });

  t.test('a wrong secret: /readyz 503 with a clear line, and check-config --discover exits 1', async (t) => {
    const wrong = entry({ client_secret: 'not-the-secret' });
    const gate = await startTollgate(
      t,
      { upstream: { url: upstream.url }, providers: [wrong] },
      { waitReady: false, discoveryRetryMs: { first: 60_000, max: 60_000 } },
    );
    await eventually(() => gate.logs.some((l) => l.msg === PROBE_REFUSED), `no "${PROBE_REFUSED}" line`);
    t.equal((await request(`${gate.adminUrl}/readyz`)).status, 503);

    const file = path.join(t.testdir({}), 'tollgate.yaml');
    writeFileSync(file, stringify({ upstream: { url: upstream.url }, providers: [wrong, entry({ name: 'right' })] }));
    const out = await checkConfigDiscover(t, file);
    t.equal(out.code, 1, out.stdout);
    t.match(out.stdout, `right: introspection at ${g.issuer}/introspect (credentials accepted)`);
    t.match(out.stdout, /glewlwyd: discovery failed: credential probe: unexpected HTTP status 401: the provider rejected/);
  });

  t.test('zero-file mode: TOLLGATE_AUTH_METHOD and TOLLGATE_CA_FILE', async (t) => {
    const bin = await startBinary(t, null, {
      env: {
        TOLLGATE_LISTEN: '127.0.0.1:0',
        TOLLGATE_ADMIN_LISTEN: '127.0.0.1:0',
        TOLLGATE_UPSTREAM_URL: upstream.url,
        TOLLGATE_ISSUER: g.issuer,
        TOLLGATE_CLIENT_ID: tollgate.client_id,
        TOLLGATE_CLIENT_SECRET: TOLLGATE_SECRET,
        TOLLGATE_AUTH_METHOD: 'client_secret_post',
        TOLLGATE_CA_FILE: g.ca.certFile,
      },
    });
    await bin.waitForLine((l) => l.msg === 'provider ready', 'provider ready');
    const res = await request(`${bin.proxyUrl}/orders`, { headers: bearer(await g.mintToken(app)) });
    t.equal(res.status, 200, res.text);
    t.same(upstream.requests.at(-1)?.headers['x-auth-provider'], ['default']);
    t.notMatch(bin.output(), TOLLGATE_SECRET);
    bin.child.kill('SIGTERM');
    await bin.waitForExit(10_000, 'SIGTERM');
  });
});

/** `tollgate check-config --discover --config FILE`, bounded. */
function checkConfigDiscover(t: Test, file: string): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [CLI, 'check-config', '--discover', '--config', file],
      { timeout: 20_000, env: { PATH: process.env.PATH ?? '' } },
      (err, stdout) => resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout }),
    );
    t.teardown(() => void child.kill('SIGKILL'));
  });
}
