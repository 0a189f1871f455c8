/**
 * SPEC §5: a provider whose issuer cannot be reached at start does not stop the process; its
 * discovery is retried with backoff, 1 s doubling to 30 s, and /readyz answers 503 meanwhile.
 */
import t, { type Test } from 'tap';
import { startFakeProvider } from '../helpers/fake-provider.js';
import { request } from '../helpers/http.js';
import { providerEntry, startTollgate, waitFor } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';

const failures = (logs: Record<string, unknown>[]) =>
  logs.filter((l) => l.msg === 'provider discovery failed').map((l) => l.retry_in_ms);

/** tollgate with one provider that serves no metadata: every discovery attempt fails. */
async function startWithUndiscoverableProvider(t: Test, discoveryRetryMs?: { first: number; max: number }) {
  const provider = await startFakeProvider({ discovery: false });
  t.teardown(() => provider.close());
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  return startTollgate(
    t,
    { upstream: { url: upstream.url }, providers: [providerEntry('down', provider.issuer)] },
    { waitReady: false, ...(discoveryRetryMs ? { discoveryRetryMs } : {}) },
  );
}

t.test('discovery is retried with pauses doubling up to the maximum', async (t) => {
  const gate = await startWithUndiscoverableProvider(t, { first: 10, max: 40 });
  await waitFor(() => failures(gate.logs).length >= 5, 10_000, 'five failed discoveries were not logged within 10 s');
  t.same(failures(gate.logs).slice(0, 5), [10, 20, 40, 40, 40]);
  t.equal((await request(`${gate.adminUrl}/readyz`)).status, 503, 'not ready while a provider is unknown');
  t.equal((await request(`${gate.adminUrl}/healthz`)).status, 200, 'the process runs');
});

t.test('by default the first pause is 1 s', async (t) => {
  const gate = await startWithUndiscoverableProvider(t);
  await waitFor(() => failures(gate.logs).length >= 1, 10_000, 'the first failed discovery was not logged within 10 s');
  t.same(failures(gate.logs), [1000]);
});
