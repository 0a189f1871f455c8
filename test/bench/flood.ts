/**
 * Load (a): a flood of random tokens, as fast as this machine allows (issue 8, SPEC §3.4).
 *
 *   npx tsx test/bench/flood.ts [--tokens 1000000] [--seconds 180] [--connections 64]
 *                               [--max-entries 10000] [--max-concurrency 32] [--provider-delay-ms 5]
 *
 * Every request carries a new random token: a cache miss, an introspection call, a 401. It stops
 * after `--tokens` requests or `--seconds`, whichever comes first. Meanwhile a checker loop keeps
 * asking with one valid, cached token, and tollgate's heap and cache are sampled. It passes when:
 * the cache never holds more than max_entries, the heap after a final GC is flat, the fake provider
 * never saw more than max_concurrency calls at once, and every checker request was allowed.
 */
import autocannon from 'autocannon';
import { randomBytes } from 'node:crypto';
import { request } from 'undici';
import { json, startFakeProvider } from '../helpers/fake-provider.js';
import { providerEntry } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';
import { mib, numberArgs, startTollgateProcess, sum } from './bench-kit.js';

const args = numberArgs({
  tokens: 1_000_000,
  seconds: 180,
  connections: 64,
  maxEntries: 10_000,
  maxConcurrency: 32,
  providerDelayMs: 5,
});
const VALID = 'valid-bench-token';

const provider = await startFakeProvider({ record: false });
// A provider that takes a few milliseconds per answer, as a real one does: calls overlap, so the
// limit on calls in flight is what keeps them at max_concurrency.
provider.script((token, _req, res) => {
  setTimeout(
    () =>
      json(
        res,
        200,
        token === VALID ? { active: true, sub: 'checker', exp: Math.floor(Date.now() / 1000) + 3600 } : { active: false },
      ),
    args.providerDelayMs,
  );
});
const upstream = await startUpstream({ record: false });
const gate = await startTollgateProcess({
  listen: '127.0.0.1:0',
  admin_listen: '127.0.0.1:0',
  upstream: { url: upstream.url },
  providers: [
    providerEntry('acme', provider.issuer, {
      introspection_endpoint: provider.introspectionEndpoint,
      max_concurrency: args.maxConcurrency,
    }),
  ],
  cache: { max_entries: args.maxEntries },
});

const headerOf = (token: string) => ({ authorization: `Bearer ${token}` });
const first = await request(`${gate.proxyUrl}/check`, { headers: headerOf(VALID) });
await first.body.dump();
if (first.statusCode !== 200) throw new Error(`the valid token was refused (${first.statusCode}) before the flood`);
const baseline = await gate.stats(true);

// The checker: one valid token, every 20 ms, all through the flood.
const checker = { ok: 0, failed: [] as string[], running: true };
const checking = (async () => {
  while (checker.running) {
    try {
      const res = await request(`${gate.proxyUrl}/check`, { headers: headerOf(VALID), headersTimeout: 5000, bodyTimeout: 5000 });
      await res.body.dump();
      if (res.statusCode === 200) checker.ok++;
      else checker.failed.push(String(res.statusCode));
    } catch (err) {
      checker.failed.push((err as Error).message);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
})();

// Samples of tollgate's heap and cache, every 5 s (no GC: what it holds under load).
const samples: { s: number; heap: number; entries: number }[] = [];
const started = Date.now();
const sampler = setInterval(() => {
  void gate
    .stats()
    .then((s) => samples.push({ s: (Date.now() - started) / 1000, heap: s.heapUsedBytes, entries: s.cacheEntries }));
}, 5000);

const prefix = randomBytes(6).toString('base64url');
let n = 0;
const flood = autocannon({
  url: gate.proxyUrl,
  connections: args.connections,
  amount: args.tokens,
  timeout: 10,
  requests: [{ path: '/orders', setupRequest: (req) => ({ ...req, headers: headerOf(`${prefix}.${(n++).toString(36)}`) }) }],
});
const stopper = setTimeout(() => flood.stop(), args.seconds * 1000);
const result = await flood;
clearTimeout(stopper);
clearInterval(sampler);
checker.running = false;
await checking;

// Past keep_alive_timeout_ms (5 s), so idle client connections are gone before counting.
await new Promise((r) => setTimeout(r, 6000));
const final = await gate.stats(true);
const statuses = Object.fromEntries(Object.entries(result.statusCodeStats).map(([k, v]) => [k, Number(v.count)]));
const maxEntriesSeen = Math.max(...samples.map((s) => s.entries), final.cacheEntries);
const report = {
  command: `npx tsx test/bench/flood.ts ${process.argv.slice(2).join(' ')}`.trim(),
  requests: result.requests.total,
  seconds: result.duration,
  requests_per_s: Math.round(result.requests.total / result.duration),
  latency_ms: { p50: result.latency.p50, p99: result.latency.p99, max: result.latency.max },
  statuses,
  connection_errors: result.errors,
  timeouts: result.timeouts,
  provider_calls: provider.callCount,
  provider_max_in_flight: provider.maxInFlight,
  max_concurrency: args.maxConcurrency,
  cache_entries_max_sampled: maxEntriesSeen,
  max_entries: args.maxEntries,
  heap_after_gc: { before: mib(baseline.heapUsedBytes), after: mib(final.heapUsedBytes) },
  heap_under_load_max: mib(Math.max(...samples.map((s) => s.heap))),
  rss_after: mib(final.rssBytes),
  resources_after_gc: { before: baseline.resources, after: final.resources },
  checker: { ok: checker.ok, failed: checker.failed.length, first_failures: checker.failed.slice(0, 5) },
};
const passed =
  provider.maxInFlight <= args.maxConcurrency &&
  maxEntriesSeen <= args.maxEntries &&
  checker.failed.length === 0 &&
  checker.ok > 0 &&
  final.heapUsedBytes < baseline.heapUsedBytes + 64 * 1024 * 1024 &&
  sum(final.resources) <= sum(baseline.resources) + 8;
process.stdout.write(`${JSON.stringify({ ...report, passed }, null, 2)}\n`);

await gate.close();
await provider.close();
await upstream.close();
process.exit(passed ? 0 : 1);
