/**
 * `npm run bench:providers`: what 1,000 providers cost.
 *
 * 1. Start-up to ready with 1,000 providers, each a tenant of one local fake provider (its own
 *    issuer, discovery document and introspection endpoint): budget 5 s.
 * 2. Routing + provider selection (matchRoute + selectProvider, the per-request work that depends
 *    on the number of providers), 1 vs 1,000 providers, for each way a provider is chosen.
 * 3. The same over HTTP: requests with a cached token through tollgate with 1 and with 1,000
 *    providers (16 keep-alive connections, a few seconds each), so the whole hot path is compared.
 *
 * The fake provider runs in a child process, so tollgate's own costs are measured; start-up is
 * reported as wall time and as tollgate's CPU time (the latter does not depend on what else the
 * machine runs). Figures vary with the machine; the ratios are what matters. Runs from the
 * sources (tsx).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Pool } from 'undici';
import { pino } from 'pino';
import { startApp, type App } from '../../src/app.js';
import { validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import type { Provider } from '../../src/provider/providers.js';
import { matchRoute } from '../../src/proxy/routes.js';
import { selectProvider } from '../../src/proxy/select.js';
import { compileRuntime } from '../../src/runtime.js';
import { startFakeProvider } from '../helpers/fake-provider.js';
import { startUpstream } from '../helpers/upstream.js';

const N = 1000;
const STARTUP_BUDGET_MS = 5000;
const silent = pino({ level: 'silent' });
const tenant = (i: number) => `t${String(i).padStart(4, '0')}`;
const jwtFor = (iss: string) => {
  const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${part({ alg: 'RS256' })}.${part({ iss, sub: 'bench' })}.c2ln`;
};

/** What the bench needs of the fake provider (which runs in a child process). */
interface Tenants {
  tenantIssuer(name: string): string;
}

function configFor(fake: Tenants, upstreamUrl: string, count: number, hostRoutes: boolean): Config {
  const names = Array.from({ length: count }, (_, i) => tenant(i));
  const result = validateConfig({
    listen: '127.0.0.1:0',
    admin_listen: '127.0.0.1:0',
    upstream: { url: upstreamUrl },
    access_log: false,
    provider_header: 'X-Tenant',
    providers: names.map((name) => ({ name, issuer: fake.tenantIssuer(name), client_id: 'tollgate', client_secret: 's' })),
    routes: hostRoutes ? names.map((name) => ({ match: { host: `${name}.api.test` }, providers: [name] })) : [],
  });
  if (!result.ok) throw new Error(JSON.stringify(result.problems));
  return result.config;
}

async function startup(fake: Tenants, upstreamUrl: string): Promise<{ ms: number; cpuMs: number }> {
  const config = configFor(fake, upstreamUrl, N, true);
  const started = performance.now();
  const cpu = process.cpuUsage();
  const app = await startApp({ config, logger: silent, reload: { watch: false } });
  await app.whenReady();
  const ms = performance.now() - started;
  const used = process.cpuUsage(cpu);
  await app.close(0);
  return { ms, cpuMs: (used.user + used.system) / 1000 };
}

/** Nanoseconds per call of `fn`, best of 5 runs of `iterations` (after a warm-up). */
function perCallNs(fn: () => unknown, iterations = 200_000): number {
  let sink = 0;
  for (let i = 0; i < 20_000; i++) sink ^= fn() === undefined ? 0 : 1;
  let best = Infinity;
  for (let run = 0; run < 5; run++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) sink ^= fn() === undefined ? 0 : 1;
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / iterations);
  }
  if (sink === 42) process.stdout.write(''); // keep the result alive
  return best;
}

function microbench(fake: Tenants, upstreamUrl: string) {
  const rows: { scenario: string; one: number; many: number }[] = [];
  const runtimeFor = (count: number, hostRoutes: boolean) => {
    const config = configFor(fake, upstreamUrl, count, hostRoutes);
    // Stub providers: selection reads only name and issuer.
    const providers = new Map(config.providers.map((p) => [p.name, { name: p.name, issuer: p.issuer } as Provider]));
    return compileRuntime(config, providers);
  };
  const scenario = (
    name: string,
    hostRoutes: boolean,
    request: (count: number) => { host: string; token: string; named?: string },
  ) => {
    const [one, many] = [1, N].map((count) => {
      const runtime = runtimeFor(count, hostRoutes);
      const r = request(count);
      return perCallNs(() => {
        const route = matchRoute(runtime.routes, runtime.fallback, 'GET', r.host, '/orders/42');
        return selectProvider(route.providers, r.token, r.named);
      });
    });
    rows.push({ scenario: name, one: one!, many: many! });
  };
  const last = (count: number) => tenant(count - 1);
  scenario('JWT iss, no routes (all providers allowed)', false, (count) => ({
    host: 'api.test',
    token: jwtFor(fake.tenantIssuer(last(count))),
  }));
  scenario('provider_header, no routes', false, (count) => ({ host: 'api.test', token: 'opaque-token', named: last(count) }));
  scenario('host routes, one per provider (last one)', true, (count) => ({
    host: `${last(count)}.api.test`,
    token: 'opaque-token',
  }));
  return rows;
}

/** A running tollgate with `count` providers and a warm cache for the last one's token. */
async function warmApp(fake: Tenants, upstreamUrl: string, count: number, hostRoutes: boolean) {
  const app: App = await startApp({
    config: configFor(fake, upstreamUrl, count, hostRoutes),
    logger: silent,
    reload: { watch: false },
  });
  await app.whenReady();
  const name = tenant(count - 1);
  const headers = { authorization: 'Bearer bench-token', 'x-tenant': name, host: `${name}.api.test` };
  const first = await fetch(`${app.proxyUrl}/orders`, { headers });
  if (first.status !== 200) throw new Error(`warm-up request got ${first.status}`);
  return { app, headers };
}

/**
 * Requests/s for each set-up: rounds that alternate between them, the median per set-up, so a
 * neighbour's burst on a shared machine does not land on one set-up only.
 */
async function http(fake: Tenants, upstreamUrl: string, setups: [number, boolean][], rounds: number, ms: number) {
  const apps = await Promise.all(setups.map(([count, hostRoutes]) => warmApp(fake, upstreamUrl, count, hostRoutes)));
  const samples: number[][] = setups.map(() => []);
  for (let round = 0; round < rounds; round++) {
    for (const [i, { app, headers }] of apps.entries()) samples[i]!.push(await load(app.proxyUrl, headers, 16, ms));
  }
  await Promise.all(apps.map(({ app }) => app.close(0)));
  return samples.map((s) => s.sort((a, b) => a - b)[Math.floor(s.length / 2)]!);
}

/** Requests per second over `durationMs`: `connections` loops, each sending one request at a time. */
async function load(url: string, headers: Record<string, string>, connections: number, durationMs: number): Promise<number> {
  const pool = new Pool(url, { connections });
  let done = 0;
  const end = performance.now() + durationMs;
  const loop = async () => {
    while (performance.now() < end) {
      const res = await pool.request({ method: 'GET', path: '/orders', headers });
      await res.body.dump();
      if (res.statusCode !== 200) throw new Error(`got ${res.statusCode}`);
      done++;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: connections }, loop));
  const elapsed = performance.now() - started;
  await pool.close();
  return (done / elapsed) * 1000;
}

if (process.argv[2] === 'fake-provider') {
  // The child: one fake provider with a tenant per provider, answering every token as active.
  const fake = await startFakeProvider();
  fake.answer(() => ({ active: true, sub: 'bench', exp: Math.floor(Date.now() / 1000) + 3600 }));
  process.stdout.write(`${fake.issuer}\n`);
  process.on('disconnect', () => void fake.close().then(() => process.exit(0)));
} else {
  const child = spawn(process.execPath, [...process.execArgv, import.meta.filename, 'fake-provider'], {
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  const [line] = (await once(child.stdout!.setEncoding('utf8'), 'data')) as [string];
  const root = line.trim();
  const fake: Tenants = { tenantIssuer: (name) => `${root}/t/${name}` };
  const upstream = await startUpstream();
  try {
    const start = await startup(fake, upstream.url);
    const verdict = start.ms <= STARTUP_BUDGET_MS ? 'OK' : 'OVER BUDGET';
    console.log(`\n1. start-up to ready, ${N} providers, one local fake provider (own process)`);
    console.log(
      `   wall ${start.ms.toFixed(0)} ms (budget ${STARTUP_BUDGET_MS} ms: ${verdict}); tollgate CPU ${start.cpuMs.toFixed(0)} ms`,
    );

    console.log('\n2. routing + selection per request (matchRoute + selectProvider), ns per call, best of 5');
    console.log(
      `   ${'scenario'.padEnd(46)} ${'1 provider'.padStart(11)} ${`${N} providers`.padStart(15)} ${'ratio'.padStart(7)}`,
    );
    for (const row of microbench(fake, upstream.url)) {
      console.log(
        `   ${row.scenario.padEnd(46)} ${row.one.toFixed(0).padStart(11)} ${row.many.toFixed(0).padStart(15)} ${(row.many / row.one).toFixed(2).padStart(7)}`,
      );
    }

    console.log('\n3. HTTP, cached token, 16 connections: requests/s, median of 5 alternating 2 s rounds');
    const [oneRps, manyRps, manyHostRps] = (await http(
      fake,
      upstream.url,
      [
        [1, false],
        [N, false],
        [N, true],
      ],
      5,
      2000,
    )) as [number, number, number];
    console.log(`   1 provider:                          ${oneRps.toFixed(0)}`);
    console.log(`   ${N} providers, provider_header:     ${manyRps.toFixed(0)} (${((manyRps / oneRps) * 100).toFixed(0)} %)`);
    console.log(
      `   ${N} providers, ${N} host routes:    ${manyHostRps.toFixed(0)} (${((manyHostRps / oneRps) * 100).toFixed(0)} %)`,
    );
    process.exitCode = start.ms <= STARTUP_BUDGET_MS ? 0 : 1;
  } finally {
    child.disconnect();
    await upstream.close();
  }
}
