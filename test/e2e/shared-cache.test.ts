/**
 * The shared cache between real tollgate processes (the built binary, as pods run it) on one
 * real redis-server: a token used on both costs its provider one call, so do concurrent first
 * requests spread over both, and neither process prints the token.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { startBinary, type Binary } from '../helpers/binary.js';
import { startFakeProvider } from '../helpers/fake-provider.js';
import { bearer, request } from '../helpers/http.js';
import { startRedis } from '../helpers/redis.js';
import { providerEntry, waitFor } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';

const metricOf = async (b: Binary, sample: string) => {
  const text = (await request(`${b.adminUrl}/metrics`)).text;
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? NaN : Number(line.slice(line.lastIndexOf(' ') + 1));
};

t.test('two tollgate processes share one Redis: one provider call per token', async (t) => {
  const redis = await startRedis(t);
  const provider = await startFakeProvider();
  t.teardown(() => provider.close());
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  provider.answer(async () => {
    await held;
    return { active: true, sub: 'alice', exp: Math.floor(Date.now() / 1000) + 3600 };
  });
  const config = {
    upstream: { url: upstream.url },
    providers: [providerEntry('acme', provider.issuer)],
    cache: { shared: { url: redis.url, timeout_ms: 1000 } },
  };
  const dir = t.testdir({ a: {}, b: {} });
  const pods = await Promise.all(['a', 'b'].map((pod) => startBinary(t, config, { dir: path.join(dir, pod) })));
  for (const pod of pods) {
    await waitFor(async () => (await request(`${pod.adminUrl}/readyz`)).status === 200, 15_000, 'a pod did not become ready');
    await waitFor(async () => (await metricOf(pod, 'tollgate_shared_cache_up')) === 1, 15_000, 'a pod did not reach Redis');
  }

  // 50 concurrent first requests, 25 on each process, while the provider holds its answer.
  const token = `tok-${randomBytes(12).toString('hex')}`;
  const all = Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      request(`${pods[i % 2]!.proxyUrl}/orders`, { headers: bearer(token), timeoutMs: 20_000 }),
    ),
  );
  // One process holds the cross-pod lock and is asking; whatever the other one does meanwhile
  // (waiting for the lock's answer, or not there yet), it must not ask too.
  await waitFor(() => provider.callCount >= 1, 10_000, 'the provider was never asked');
  await waitFor(async () => (await redis.cli('--scan', '--pattern', 'tollgate:l:*')).trim() !== '', 5000, 'no lock was taken');
  release();
  const answers = await all;
  t.same(
    answers.map((a) => a.status),
    Array(50).fill(200),
    'every request served',
  );
  t.equal(provider.callCount, 1, 'one provider call for both processes');

  const second = `tok-${randomBytes(12).toString('hex')}`;
  t.equal((await request(`${pods[0]!.proxyUrl}/orders`, { headers: bearer(second) })).status, 200);
  await waitFor(async () => (await redis.cli('DBSIZE')).trim() !== '1', 5000, 'the second answer was not written');
  t.equal((await request(`${pods[1]!.proxyUrl}/orders`, { headers: bearer(second) })).status, 200);
  t.equal(provider.callCount, 2, 'a token used on both processes, one after the other: one call');
  await pods[1]!.waitForLine((l) => l.msg === 'request' && l.cache === 'shared_hit', 'a shared_hit access line');
  for (const pod of pods) {
    t.notOk(pod.output().includes(token) || pod.output().includes(second), 'no token in the output');
  }
});
