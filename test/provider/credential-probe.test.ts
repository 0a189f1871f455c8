/**
 * Issue 18, failure 6: a wrong client secret passed discovery and /readyz, and the first sign was
 * a 503 on real traffic. Once a provider's endpoint is known, tollgate introspects a random token
 * (the credential probe): a provider that refuses tollgate's credentials keeps it unready, with an
 * error line that says what to check; one that answers the probe in an unexpected way is logged
 * and made ready all the same. The refusal comes from a real oidc-provider; the odd answers from
 * the fake (a real provider won't give them).
 */
import t from 'tap';
import { startOidcProvider, TOLLGATE_CLIENT } from '../../dev/oidc-provider.js';
import { json, startFakeProvider } from '../helpers/fake-provider.js';
import { bearer, request } from '../helpers/http.js';
import { eventually, providerEntry, startTollgate } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';

const WRONG_SECRET = 'not-the-secret-5e1f';

const upstream = await startUpstream();
t.teardown(() => upstream.close());

t.test('a real provider refusing the secret: never ready, /readyz 503, an error line, no secret logged', async (t) => {
  const op = await startOidcProvider();
  t.teardown(() => op.close());
  const gate = await startTollgate(
    t,
    {
      upstream: { url: upstream.url },
      providers: [
        providerEntry('wrong', op.issuer, { client_secret: WRONG_SECRET }),
        providerEntry('right', op.issuer, { client_secret: TOLLGATE_CLIENT.client_secret }),
      ],
      provider_header: 'X-Tenant',
    },
    { waitReady: false, discoveryRetryMs: { first: 20, max: 20 } },
  );
  await eventually(
    () =>
      gate.logs.filter((l) => l.provider === 'wrong' && l.msg === "provider not ready: it rejects tollgate's credentials")
        .length >= 2,
    'the refused probe was not logged and retried',
  );
  await eventually(() => gate.logs.some((l) => l.provider === 'right' && l.msg === 'provider ready'), 'right never became ready');
  t.equal((await request(`${gate.adminUrl}/readyz`)).status, 503, '/readyz 503 while one provider refuses');
  const line = gate.logs.find(
    (l) => l.provider === 'wrong' && l.msg === "provider not ready: it rejects tollgate's credentials",
  )!;
  t.equal(line.level, 50, 'an error: it needs an operator');
  t.match(
    line.cause,
    /^credential probe: HTTP 401\b.*: the provider rejected tollgate's client credentials; check client_id and the secret$/,
  );
  t.notMatch(gate.rawLogs(), WRONG_SECRET, 'the secret is never logged');
  t.notMatch(gate.rawLogs(), 'tollgate-credential-probe-', 'nor the probe token');
  const res = await gate.request('/x', { headers: { ...bearer('whatever-token'), 'x-tenant': 'wrong' } });
  t.equal(res.status, 503, 'its requests: 503, as before');
  t.equal(upstream.requests.length, 0);
});

t.test('a probe answered unexpectedly is logged and not held against readiness', async (t) => {
  const odd = {
    'HTTP 500': (res: Parameters<typeof json>[0]) => json(res, 500, { error: 'server_error' }),
    'active: true for a token it never issued': (res: Parameters<typeof json>[0]) => json(res, 200, { active: true }),
  };
  for (const [name, answer] of Object.entries(odd)) {
    t.test(name, async (t) => {
      const fake = await startFakeProvider();
      t.teardown(() => fake.close());
      fake.probeScript((_token, _req, res) => answer(res));
      fake.answer(() => ({ active: true, sub: 'alice' }));
      const gate = await startTollgate(t, { upstream: { url: upstream.url }, providers: [providerEntry('odd', fake.issuer)] });
      t.equal(fake.probes.length, 1, 'probed once');
      const line = gate.logs.find((l) => l.msg === 'credential probe answered unexpectedly; readiness not held back');
      t.ok(line, 'logged');
      t.equal(line?.level, 40);
      t.equal((await request(`${gate.adminUrl}/readyz`)).status, 200);
      t.equal((await gate.request('/x', { headers: bearer('real-token-1') })).status, 200, 'real tokens are still asked about');
    });
  }
});

t.test('the probe is sent with the configured credentials, and a good answer says nothing', async (t) => {
  const fake = await startFakeProvider();
  t.teardown(() => fake.close());
  const gate = await startTollgate(t, { upstream: { url: upstream.url }, providers: [providerEntry('ok', fake.issuer)] });
  t.equal(fake.probes.length, 1);
  t.equal(fake.probes[0], `Basic ${Buffer.from('tollgate:tollgate%2Dsecret').toString('base64')}`);
  t.notOk(gate.logs.some((l) => typeof l.msg === 'string' && l.msg.includes('probe')));
  t.equal(fake.callCount, 0, 'the probe is no introspection of a request');
  t.equal(
    await gate.metric('tollgate_introspection_requests_total', { provider: 'ok', result: 'inactive' }),
    0,
    'nor counted as one',
  );
});
