/**
 * Two builds of tollgate side by side: how a tuning change is measured. `npm run bench` compares
 * tollgate with the bare proxy in turns, and on a shared machine the speed of the machine moves
 * between turns by more than a change of a few microseconds per request. Here both builds serve
 * scenario (a) — one token, cache hits — at the same time, each with its own load generator, so
 * whatever slows the machine slows both; each round compares the CPU time per request of the two
 * processes (/proc, user + system).
 *
 *   npm run build && rm -rf dist-baseline && cp -r dist dist-baseline   # the build to compare with
 *   … change, npm run build …
 *   npx tsx test/bench/ab.ts --baseline dist-baseline/cli.js [--rounds 14] [--seconds 4]
 *
 * `--baseline bare` puts the benchmark's bare proxy in the baseline's place: the CPU ratio that
 * `npm run bench`'s throughput ratio approaches on a quiet machine (the proxy is what saturates).
 * `--current-config '{"access_log":false}'` measures what a setting costs instead (one build, two
 * configurations). Prints each round and the median ratio (current ÷ baseline: below 1 is cheaper).
 * Two copies of one build measured 0.991 and 1.009 here (2 cores, shared): read a median within
 * ±1.5 % as no difference (a change without effect measured 0.978, 1.003 and 1.011), and repeat
 * a run before believing a small one. Loopback only; every round is bounded in time.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { children, cpuMs, forkTs, median, startTollgateCli } from './proxy-processes.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const { values: args } = parseArgs({
  options: {
    baseline: { type: 'string' },
    current: { type: 'string', default: resolve(here, '../../dist/cli.js') },
    rounds: { type: 'string', default: '14' },
    seconds: { type: 'string', default: '4' },
    /** Requests per second to each build; the default is more than either can serve (saturated). */
    rate: { type: 'string', default: '100000' },
    connections: { type: 'string', default: '25' },
    /** JSON merged into the current build's configuration: what a setting costs, e.g. `{"access_log":false}`. */
    'current-config': { type: 'string', default: '{}' },
  },
});
if (args.baseline === undefined) throw new Error('usage: ab.ts --baseline dist-baseline/cli.js [--current dist/cli.js]');
const rounds = Number(args.rounds);
const seconds = Number(args.seconds);
const rate = Number(args.rate);
const connections = Number(args.connections);

/** Both builds under the same load at once; CPU µs per 2xx response of each. */
async function round(builds: readonly { url: string; pid: number }[], durationS: number): Promise<number[]> {
  const before = builds.map((b) => cpuMs(b.pid));
  const results = await Promise.all(
    builds.map((b) =>
      autocannon({
        url: `${b.url}/api/orders?limit=10`,
        headers: { authorization: 'Bearer bench-ab-token' },
        connections,
        overallRate: rate,
        duration: durationS,
        timeout: 30,
      }),
    ),
  );
  return builds.map((b, i) => ((cpuMs(b.pid) - before[i]!) * 1000) / Math.max(1, results[i]!.statusCodeStats['200']?.count ?? 0));
}

// However this script ends (done, failed, Ctrl-C), its children end with it.
process.once('exit', () => children.forEach((child) => child.kill('SIGKILL')));
process.once('SIGINT', () => process.exit(130));

const dir = mkdtempSync(join(tmpdir(), 'tollgate-ab-'));
const { upstream, provider } = (await forkTs<{ upstream: string; provider: string }>('backends.ts')).message;
const config = {
  upstream: { url: upstream },
  providers: [{ name: 'bench', issuer: provider, client_id: 'tollgate', client_secret: 'bench-secret' }],
  cache: { ttl_s: 3600 },
  shutdown: { drain_delay_s: 0, timeout_s: 1 },
};
const currentConfig = { ...config, ...(JSON.parse(args['current-config']) as Record<string, unknown>) };
const builds = await Promise.all([
  args.baseline === 'bare'
    ? forkTs<{ url: string }>('bare-proxy.ts', { env: { BENCH_UPSTREAM_URL: upstream } }).then(({ child, message }) => ({
        url: message.url,
        pid: child.pid!,
      }))
    : startTollgateCli({ name: 'baseline', cli: resolve(args.baseline), config, dir }),
  startTollgateCli({ name: 'current', cli: resolve(args.current), config: currentConfig, dir }),
]);
await round(builds, 5); // warm-up: the JIT, the pools, the cache entry
const ratios: number[] = [];
for (let r = 1; r <= rounds; r++) {
  const [baseline, current] = await round(builds, seconds);
  ratios.push(current! / baseline!);
  process.stdout.write(
    `round ${r}: baseline ${baseline!.toFixed(1)} µs/req, current ${current!.toFixed(1)} µs/req, ratio ${(current! / baseline!).toFixed(3)}\n`,
  );
}
process.stdout.write(
  `median ratio current ÷ baseline: ${median(ratios).toFixed(3)} (${rate} req/s each, ${rounds} × ${seconds} s)\n`,
);
process.exit(0);
