/**
 * Soak (b): steady load for a long time, mixing cache hits, misses (random tokens), refusals (no
 * token; a missing scope) and uploads (64 KiB bodies streamed to the upstream). tollgate's heap,
 * handles and sockets after a full GC must not grow from the end of a warm-up to the end.
 *
 *   npx tsx test/bench/soak.ts [--minutes 10] [--rate 300] [--connections 16] [--warmup-s 60]
 *                              [--max-entries 2000]
 *
 * The cache holds at most max_entries answers and lets go of expired ones only as newer ones
 * need the room, so its memory grows until it is full: the warm-up fills it (a sixth of the
 * requests are new random tokens), and growth is measured from there.
 *
 * Bounded: `--rate` requests per second overall, for `--minutes`, loopback only.
 */
import autocannon from 'autocannon';
import { randomBytes } from 'node:crypto';
import { json, startFakeProvider } from '../helpers/fake-provider.js';
import { providerEntry } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';
import { mib, numberArgs, startTollgateProcess, sum } from './bench-kit.js';
import type { ProcessStats } from './tollgate-process.js';

const args = numberArgs({ minutes: 10, rate: 300, connections: 16, warmupS: 60, maxEntries: 2000 });
const VALID = Array.from({ length: 200 }, (_, i) => `valid-soak-${i}`);
const UPLOAD = randomBytes(64 * 1024);

const provider = await startFakeProvider({ record: false });
provider.script((token, _req, res) => {
  const active = token.startsWith('valid-soak-');
  setTimeout(
    () =>
      json(
        res,
        200,
        active
          ? { active: true, sub: token, scope: 'orders:read', exp: Math.floor(Date.now() / 1000) + 7200 }
          : { active: false },
      ),
    2,
  );
});
const upstream = await startUpstream({ record: false });
upstream.handle((_req, res, body) => {
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, received: body.length }));
});
const gate = await startTollgateProcess({
  listen: '127.0.0.1:0',
  admin_listen: '127.0.0.1:0',
  upstream: { url: upstream.url },
  providers: [providerEntry('acme', provider.issuer, { introspection_endpoint: provider.introspectionEndpoint })],
  routes: [{ match: { path_prefix: '/admin' }, scopes: ['orders:admin'] }],
  cache: { max_entries: args.maxEntries },
});

const prefix = randomBytes(6).toString('base64url');
let n = 0;
const auth = (token: string) => ({ authorization: `Bearer ${token}` });
const valid = () => VALID[n++ % VALID.length]!;
const mix = [
  { path: '/orders', setupRequest: (r: object) => ({ ...r, headers: auth(valid()) }) }, // hit
  { path: '/orders', setupRequest: (r: object) => ({ ...r, headers: auth(valid()) }) }, // hit
  { path: '/orders', setupRequest: (r: object) => ({ ...r, headers: auth(`${prefix}.${(n++).toString(36)}`) }) }, // miss → 401
  { path: '/orders', setupRequest: (r: object) => ({ ...r, headers: {} }) }, // no token → 401
  { path: '/admin/x', setupRequest: (r: object) => ({ ...r, headers: auth(valid()) }) }, // scope → 403
  {
    path: '/upload',
    method: 'POST',
    setupRequest: (r: object) => ({
      ...r,
      method: 'POST',
      headers: { ...auth(valid()), 'content-type': 'application/octet-stream' },
      body: UPLOAD,
    }),
  },
];

const statuses: Record<string, number> = {};
let errors = 0;
let requests = 0;
const run = async (seconds: number) => {
  const result = await autocannon({
    url: gate.proxyUrl,
    connections: args.connections,
    overallRate: args.rate,
    duration: seconds,
    timeout: 10,
    requests: mix,
  });
  for (const [code, { count }] of Object.entries(result.statusCodeStats)) statuses[code] = (statuses[code] ?? 0) + Number(count);
  errors += result.errors;
  requests += result.requests.total;
  return result;
};
const settled = async (): Promise<ProcessStats> => {
  await new Promise((r) => setTimeout(r, 6000)); // past keep_alive_timeout_ms: idle sockets closed
  return gate.stats(true);
};

await run(args.warmupS);
const warm = await settled();
const samples: { minute: number; heap_after_gc: string; cache_entries: number }[] = [];
const totalS = args.minutes * 60;
const sliceS = Math.min(60, totalS);
for (let done = 0; done < totalS; done += sliceS) {
  const result = await run(Math.min(sliceS, totalS - done));
  const s = await gate.stats(true); // right after the slice's load, after GC
  samples.push({ minute: (done + sliceS) / 60, heap_after_gc: mib(s.heapUsedBytes), cache_entries: s.cacheEntries });
  process.stderr.write(
    `soak: ${(done + sliceS) / 60} min, ${Math.round(result.requests.average)} req/s, heap ${mib(s.heapUsedBytes)}\n`,
  );
}
const final = await settled();

const growthBytes = final.heapUsedBytes - warm.heapUsedBytes;
const report = {
  command: `npx tsx test/bench/soak.ts ${process.argv.slice(2).join(' ')}`.trim(),
  minutes: args.minutes,
  requests,
  statuses,
  connection_errors: errors,
  provider_calls: provider.callCount,
  heap_after_gc: { after_warmup: mib(warm.heapUsedBytes), end: mib(final.heapUsedBytes), growth: mib(growthBytes) },
  rss: { after_warmup: mib(warm.rssBytes), end: mib(final.rssBytes) },
  resources_after_gc: { after_warmup: warm.resources, end: final.resources },
  cache_entries: { after_warmup: warm.cacheEntries, end: final.cacheEntries },
  samples_each_minute: samples,
};
// "No growth": the heap within 5 MiB of where warm-up left it, no more handles or sockets.
const passed = errors === 0 && growthBytes < 5 * 1024 * 1024 && sum(final.resources) <= sum(warm.resources);
process.stdout.write(`${JSON.stringify({ ...report, passed }, null, 2)}\n`);
await gate.close();
await provider.close();
await upstream.close();
process.exit(passed ? 0 : 1);
