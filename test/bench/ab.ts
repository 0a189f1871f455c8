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
 *   npx tsx test/bench/ab.ts --baseline dist-baseline/cli.js [--starts 4] [--rounds 4] [--seconds 4]
 *
 * Both processes are started `--starts` times, each time measured for `--rounds` rounds after a
 * warm-up: a process's own JIT decisions set its speed by a few per cent for its whole life (one
 * pair of processes measured 0.950 for a change that three other pairs put at 1.006–1.027), so a
 * single start cannot tell a 2 % change from its compilation luck. `--tokens 10000` rotates that
 * many tokens, all cached, as scenario (b) does; `--no-token` measures 401s, as scenario (e)
 * does (against another build: the bare proxy forwards them). `--baseline bare` puts the
 * benchmark's bare proxy in the baseline's place: the CPU ratio that `npm run bench`'s throughput
 * ratio approaches on a quiet machine (the proxy is what saturates).
 * `--current-config '{"access_log":false}'` measures what a setting costs instead (one build, two
 * configurations). Prints each round, the median of
 * every round and the median of each start (current ÷ baseline: below 1 is cheaper). Read a median
 * within ±1.5 % as no difference unless the starts agree. Loopback only; every round is bounded
 * in time.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { children, cpuMs, forkTs, median, rotatingTokens, startTollgateCli, stopAll } from './proxy-processes.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const { values: args } = parseArgs({
  options: {
    baseline: { type: 'string' },
    current: { type: 'string', default: resolve(here, '../../dist/cli.js') },
    /** Fresh process pairs: a process's own JIT decisions move its speed by a few per cent for its whole life. */
    starts: { type: 'string', default: '4' },
    /** Rounds per start. */
    rounds: { type: 'string', default: '4' },
    seconds: { type: 'string', default: '4' },
    /** Requests per second to each build; the default is more than either can serve (saturated). */
    rate: { type: 'string', default: '100000' },
    connections: { type: 'string', default: '25' },
    /** Rotate this many distinct tokens, as scenario (b) does (0: one token, scenario (a)). */
    tokens: { type: 'string', default: '0' },
    /** Send no token and measure CPU per 401, as scenario (e) does. */
    'no-token': { type: 'boolean', default: false },
    /** JSON merged into the current build's configuration: what a setting costs, e.g. `{"access_log":false}`. */
    'current-config': { type: 'string', default: '{}' },
  },
});
const baseline = args.baseline;
if (baseline === undefined) throw new Error('usage: ab.ts --baseline dist-baseline/cli.js [--current dist/cli.js]');
const starts = Number(args.starts);
const rounds = Number(args.rounds);
const seconds = Number(args.seconds);
const rate = Number(args.rate);
const connections = Number(args.connections);
const tokens = rotatingTokens(Number(args.tokens));
const noToken = args['no-token'];
/** The responses counted: 2xx of cache hits, or the 401s of requests without a token. */
const counted = noToken ? '401' : '200';
/** One rotation per load generator, so each build sees every token in turn. */
const rotation = () => {
  let next = 0;
  return (req: { headers?: Record<string, string> }) => {
    req.headers = { ...req.headers, authorization: `Bearer ${tokens[next++ % tokens.length]}` };
    return req;
  };
};

/** Both builds under the same load at once; CPU µs per counted response of each. */
async function round(builds: readonly { url: string; pid: number }[], durationS: number): Promise<number[]> {
  const before = builds.map((b) => cpuMs(b.pid));
  const results = await Promise.all(
    builds.map((b) =>
      autocannon({
        url: `${b.url}/api/orders?limit=10`,
        headers: noToken ? {} : { authorization: 'Bearer bench-ab-token' },
        // Scenario (b) with --tokens N: each request the next of N tokens, all cached in the warm-up.
        ...(tokens.length > 0 ? { requests: [{ setupRequest: rotation() }] } : {}),
        connections,
        overallRate: rate,
        duration: durationS,
        timeout: 30,
      }),
    ),
  );
  return builds.map(
    (b, i) => ((cpuMs(b.pid) - before[i]!) * 1000) / Math.max(1, results[i]!.statusCodeStats[counted]?.count ?? 0),
  );
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
/** Both processes, started afresh: each start compiles its hot code its own way. */
const start = () =>
  Promise.all([
    baseline === 'bare'
      ? forkTs<{ url: string }>('bare-proxy.ts', { env: { BENCH_UPSTREAM_URL: upstream } }).then(({ child, message }) => ({
          url: message.url,
          pid: child.pid!,
        }))
      : startTollgateCli({ name: 'baseline', cli: resolve(baseline), config, dir }),
    startTollgateCli({ name: 'current', cli: resolve(args.current), config: currentConfig, dir }),
  ]);

const ratios: number[] = [];
const startMedians: number[] = [];
for (let s = 1; s <= starts; s++) {
  const builds = await start();
  await round(builds, 5); // warm-up: the JIT, the pools, the cache entry
  const own: number[] = [];
  for (let r = 1; r <= rounds; r++) {
    const [baseline, current] = await round(builds, seconds);
    own.push(current! / baseline!);
    process.stdout.write(
      `start ${s} round ${r}: baseline ${baseline!.toFixed(1)} µs/req, current ${current!.toFixed(1)} µs/req, ratio ${(current! / baseline!).toFixed(3)}\n`,
    );
  }
  ratios.push(...own);
  startMedians.push(median(own));
  await stopAll(builds.map((b) => b.pid));
}
process.stdout.write(
  `median ratio current ÷ baseline: ${median(ratios).toFixed(3)} (${rate} req/s each, ${starts} starts × ${rounds} × ${seconds} s; ` +
    `per start ${startMedians.map((m) => m.toFixed(3)).join(', ')})\n`,
);
process.exit(0);
