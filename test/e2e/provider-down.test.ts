/**
 * SPEC §5: a provider that cannot be reached at start does not stop tollgate. /readyz answers 503
 * until its metadata is known (discovery retried with backoff, made fast here), the other
 * providers serve meanwhile, and requests that need the missing one get 503 without any call.
 */
import t from 'tap';
import { startOidcProvider } from '../../dev/oidc-provider.js';
import { bearer } from '../helpers/http.js';
import { eventually, providerEntry, startTollgate } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';

t.test('a provider down at start', async (t) => {
  const up = await startOidcProvider();
  const down = await startOidcProvider();
  t.teardown(() => Promise.all([up.close(), down.close()]));
  down.setAvailable(false);
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const gate = await startTollgate(
    t,
    {
      upstream: { url: upstream.url },
      providers: [providerEntry('up', up.issuer), providerEntry('down', down.issuer)],
      provider_header: 'X-Tenant',
    },
    { waitReady: false, discoveryRetryMs: { first: 10, max: 40 } },
  );
  const readyz = async () => (await fetch(`${gate.adminUrl}/readyz`)).status;
  const upToken = await up.mintToken();
  await eventually(() => gate.app.runtime().providers.get('up')!.isReady(), 'the reachable provider became ready');

  t.equal(await readyz(), 503, 'not ready while one provider is unknown');
  t.equal((await gate.request('/x', { headers: { ...bearer(upToken), 'x-tenant': 'up' } })).status, 200, 'the others serve');

  down.setAvailable(true);
  const downToken = await down.mintToken();
  down.setAvailable(false);
  const refused = await gate.request('/x', { headers: { ...bearer(downToken), 'x-tenant': 'down' } });
  t.equal(refused.status, 503);
  t.equal(refused.json().error, 'temporarily_unavailable');
  t.ok(refused.headers['retry-after'], 'Retry-After is set');
  t.equal(down.introspections, 0, 'no introspection was attempted at a provider that is not ready');
  t.ok(
    gate.logs.some((l) => l.msg === 'provider discovery failed' && l.provider === 'down'),
    'the log says which provider and why',
  );

  down.setAvailable(true);
  await eventually(async () => (await readyz()) === 200, '/readyz turned 200 once the provider came up');
  const res = await gate.request('/x', { headers: { ...bearer(downToken), 'x-tenant': 'down' } });
  t.equal(res.status, 200);
  t.same(upstream.requests.at(-1)?.headers['x-auth-provider'], ['down']);
  t.equal(upstream.requests.length, 2, 'the refused request never reached the API');
});
