/**
 * `npm run bench`: tollgate against a bare pass-through proxy, on 127.0.0.1, in turns.
 *
 * Processes: this one (the harness and autocannon), the backends (upstream + introspection
 * provider), the bare proxy, and tollgate as `node dist/cli.js` — two of them, the second with 100
 * providers and 50 routes for scenario (g), a third with identity_jwt on for (l). Each proxy has its own event loop, so neither shares
 * one with the load generator. Each scenario runs bare, tollgate, bare, tollgate … (BENCH_PAIRS
 * pairs of BENCH_DURATION_S seconds, BENCH_CONNECTIONS connections), after an unmeasured warm-up
 * of each; the table shows the medians of the pairs and the verdict of the budget (issue 6).
 *
 * Rows h–k: JWT access tokens verified locally (a third tollgate process whose `jwt` provider
 * publishes the harness's RS256 and ES256 keys through the backends): a repeated JWT against an
 * introspection cache hit in the same process, the CPU cost of a JWT's first sight, and 10,000
 * distinct JWTs rotating.
 *
 * Environment (all optional): BENCH_DURATION_S (4), BENCH_PAIRS (3), BENCH_CONNECTIONS (50),
 * BENCH_WARMUP_S (1), BENCH_BODY_CONNECTIONS (8), BENCH_PROVIDER_LATENCY_MS (2),
 * BENCH_ONLY (e.g. `a,g`), BENCH_CPU_PROF (a directory: tollgate runs with --cpu-prof into it),
 * BENCH_JSON (a file: the raw measurements as JSON), BENCH_RATE (a fixed request rate instead of
 * as many as possible: then compare the CPU time per request, which noise disturbs least),
 * BENCH_TOLLGATE_CONFIG (JSON merged into tollgate's configuration, e.g. `{"access_log":false}`).
 * Exits 1 when a row misses its budget.
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createHistogram } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import autocannon, { type Options } from 'autocannon';
import { cpuMs, forkTs, median, rotatingTokens, startTollgateCli, stopAll } from './proxy-processes.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = resolve(here, '../..');

const num = (name: string, fallback: number): number => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`expected ${name} to be a positive number, got ${raw}`);
  return value;
};

const settings = {
  durationS: num('BENCH_DURATION_S', 4),
  pairs: Math.max(1, Math.round(num('BENCH_PAIRS', 3))),
  connections: Math.round(num('BENCH_CONNECTIONS', 50)),
  warmupS: num('BENCH_WARMUP_S', 1),
  bodyConnections: Math.round(num('BENCH_BODY_CONNECTIONS', 8)),
  providerLatencyMs: num('BENCH_PROVIDER_LATENCY_MS', 2),
  only: process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').map((s) => s.trim())) : null,
  cpuProfDir: process.env.BENCH_CPU_PROF || null,
  jsonFile: process.env.BENCH_JSON || null,
  /** Requests per second for the whole run instead of as many as possible (0: unlimited). */
  rate: process.env.BENCH_RATE ? num('BENCH_RATE', 0) : 0,
  /** JSON merged into every tollgate configuration, e.g. `{"access_log":false}`. */
  tollgateConfig: JSON.parse(process.env.BENCH_TOLLGATE_CONFIG || '{}') as Record<string, unknown>,
};

const PATH = '/api/orders?limit=10';
const BODY_BYTES = 1024 * 1024;
const ROTATING_TOKENS = 10_000;
const BURST = 1000;

// ---------------------------------------------------------------------------------------------
// Processes

interface Target {
  readonly name: string;
  readonly url: string;
  readonly pid: number;
  readonly adminUrl?: string;
  /** Where the process writes its memory use after a full GC, on SIGUSR2 (gc-probe.cjs). */
  readonly memoryFile: string;
}

const GC_PROBE = ['--expose-gc', '--require', join(here, 'gc-probe.cjs')];

let tmp = '';

async function startTollgate(name: string, config: Record<string, unknown>): Promise<Target> {
  const probe = join(tmp, `${name}.memory.json`);
  const started = await startTollgateCli({
    name,
    cli: join(root, 'dist/cli.js'),
    config: { shutdown: { drain_delay_s: 0, timeout_s: 5 }, ...config, ...settings.tollgateConfig },
    dir: tmp,
    nodeArgs: [
      ...(settings.cpuProfDir
        ? ['--cpu-prof', `--cpu-prof-dir=${settings.cpuProfDir}`, `--cpu-prof-name=${name}.cpuprofile`]
        : []),
      ...GC_PROBE,
    ],
    env: { BENCH_GC_PROBE_FILE: probe },
  });
  return { name, ...started, memoryFile: probe };
}

// ---------------------------------------------------------------------------------------------
// Measuring

interface Run {
  readonly target: string;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly responses: number;
  readonly statuses: Record<number, number>;
  readonly errors: number;
  /** CPU time of the proxy process per response (user + system, microseconds): steadier than req/s on a busy machine. */
  readonly cpuUs: number;
}

type Load = Omit<Options, 'url'>;

async function measure(target: Target, load: Load): Promise<Run> {
  const latency = createHistogram();
  const statuses: Record<number, number> = {};
  let responses = 0;
  const cpuBefore = cpuMs(target.pid);
  const started = performance.now();
  // autocannon takes the path from the URL, not from `path`.
  const instance = autocannon({
    connections: settings.connections,
    timeout: 30,
    ...(settings.rate > 0 && load.amount === undefined ? { overallRate: settings.rate } : {}),
    ...load,
    url: target.url + (load.path ?? '/'),
  });
  instance.on('response', (_client, status, _bytes, ms) => {
    responses++;
    statuses[status] = (statuses[status] ?? 0) + 1;
    latency.record(Math.max(1, Math.round(ms * 1000))); // microseconds
  });
  const result = await instance;
  const elapsedS = (performance.now() - started) / 1000;
  const cpu = cpuMs(target.pid) - cpuBefore;
  return {
    target: target.name,
    rps: responses / (load.amount === undefined ? result.duration || elapsedS : elapsedS),
    p50Ms: latency.percentile(50) / 1000,
    p99Ms: latency.percentile(99) / 1000,
    responses,
    statuses,
    errors: result.errors + result.timeouts,
    cpuUs: (cpu * 1000) / Math.max(1, responses),
  };
}

async function providerCalls(providerUrl: string): Promise<number> {
  const body = (await (await fetch(`${providerUrl}/__stats`)).json()) as { calls: number };
  return body.calls;
}

async function metricValue(target: Target, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${target.adminUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) * 1024 : NaN;
}

/** Memory use after a full garbage collection: what the process keeps (gc-probe.cjs). */
async function settledMemory(target: Target): Promise<NodeJS.MemoryUsage> {
  rmSync(target.memoryFile, { force: true });
  process.kill(target.pid, 'SIGUSR2');
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return JSON.parse(readFileSync(target.memoryFile, 'utf8')) as NodeJS.MemoryUsage;
    } catch {
      if (Date.now() > deadline) throw new Error(`${target.name} did not report its memory within 10 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Samples a process's RSS every 50 ms until stopped; returns the peak. */
function sampleRss(pid: number): () => number {
  let peak = rssBytes(pid);
  const timer = setInterval(() => (peak = Math.max(peak, rssBytes(pid))), 50);
  return () => {
    clearInterval(timer);
    return Math.max(peak, rssBytes(pid));
  };
}

// ---------------------------------------------------------------------------------------------
// Scenarios

interface Row {
  readonly id: string;
  readonly title: string;
  readonly bare: Run[];
  readonly tollgate: Run[];
  /** Extra figures for the row (introspection calls, RSS growth, …). */
  readonly note: string;
  readonly verdict: { ok: boolean; text: string };
}

interface Side {
  readonly target: Target;
  /** The HTTP status every response must have. */
  readonly status: number;
}

const authorization = (token: string) => ({ authorization: `Bearer ${token}` });

/**
 * Runs `load(side, pair)` on each side in turn, BENCH_PAIRS times, after a warm-up of each. A
 * response with another status than the side expects, or a transport error, fails the row.
 */
async function alternate(
  sides: readonly Side[],
  load: (side: Side, phase: 'warmup' | number) => Load,
  hooks: { before?: (side: Side) => Promise<void> | void; after?: (side: Side, run: Run) => Promise<void> | void } = {},
): Promise<{ runs: Run[][]; problems: string[] }> {
  const runs: Run[][] = sides.map(() => []);
  const problems: string[] = [];
  for (const side of sides) await probe(side, load(side, 'warmup'));
  for (const side of sides) await measure(side.target, { duration: settings.warmupS, ...load(side, 'warmup') });
  for (let pair = 0; pair < settings.pairs; pair++) {
    for (const [i, side] of sides.entries()) {
      await hooks.before?.(side);
      const run = await measure(side.target, { duration: settings.durationS, ...load(side, pair) });
      await hooks.after?.(side, run);
      for (const [status, count] of Object.entries(run.statuses)) {
        if (Number(status) !== side.status) problems.push(`${side.target.name}: ${count} × ${status}`);
      }
      if (run.errors > 0) problems.push(`${side.target.name}: ${run.errors} errors`);
      runs[i]!.push(run);
    }
  }
  return { runs, problems };
}

/** One request before the load, so that a wrong answer is explained instead of counted. */
async function probe(side: Side, load: Load): Promise<void> {
  if (load.requests !== undefined) return;
  const res = await fetch(side.target.url + (load.path ?? '/'), {
    method: load.method ?? 'GET',
    headers: load.headers ?? {},
    ...(load.body === undefined ? {} : { body: load.body }),
  });
  const text = await res.text();
  if (res.status !== side.status) {
    throw new Error(
      `${side.target.name} answered ${res.status} instead of ${side.status}: ${text} ${res.headers.get('www-authenticate') ?? ''}`,
    );
  }
}

interface Budget {
  /** tollgate ÷ bare throughput must be at least this. */
  minRatio?: number;
  /** tollgate ÷ bare p99 must be at most this. */
  maxP99Ratio?: number;
}

function judge(bare: Run[], tollgate: Run[], budget: Budget, problems: string[], extra: { ok: boolean; text: string }[] = []) {
  const ratio = median(tollgate.map((r) => r.rps)) / median(bare.map((r) => r.rps));
  const p99Ratio = median(tollgate.map((r) => r.p99Ms)) / median(bare.map((r) => r.p99Ms));
  const checks: { ok: boolean; text: string }[] = [];
  if (budget.minRatio !== undefined) checks.push({ ok: ratio >= budget.minRatio, text: `thr ≥ ${budget.minRatio.toFixed(2)}` });
  if (budget.maxP99Ratio !== undefined) {
    checks.push({ ok: p99Ratio <= budget.maxP99Ratio, text: `p99 ≤ ${budget.maxP99Ratio.toFixed(2)}` });
  }
  checks.push(...extra);
  if (problems.length > 0) checks.push({ ok: false, text: `unexpected: ${[...new Set(problems)].slice(0, 3).join('; ')}` });
  const ok = checks.every((c) => c.ok);
  const text = checks.length === 0 ? 'no budget' : checks.map((c) => `${c.ok ? 'ok' : 'FAIL'} ${c.text}`).join(', ');
  return { ok, text };
}

// ---------------------------------------------------------------------------------------------
// JWT access tokens (rows h–k)

const JWT_AUDIENCE = 'bench-api';
const JWT_KEYS = {
  RS256: generateKeyPairSync('rsa', { modulusLength: 2048 }),
  ES256: generateKeyPairSync('ec', { namedCurve: 'P-256' }),
};
const JWKS = {
  keys: Object.entries(JWT_KEYS).map(([alg, k]) => ({ ...k.publicKey.export({ format: 'jwk' }), kid: alg, alg, use: 'sig' })),
};
let jwtSerial = 0;

/** A JWT access token of the bench's `jwt` provider, signed with node:crypto (faster than jose's async sign). */
function signJwt(alg: keyof typeof JWT_KEYS, issuer: string): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64({ alg, kid: alg, typ: 'at+jwt' })}.${b64({
    iss: issuer,
    aud: JWT_AUDIENCE,
    sub: 'bench-user',
    client_id: 'bench-client',
    scope: 'orders:read orders:write',
    iat: now,
    exp: now + 3600,
    jti: `${(jwtSerial++).toString(36)}-${process.pid}`,
  })}`;
  const key: KeyObject = JWT_KEYS[alg].privateKey;
  const signature = sign('sha256', Buffer.from(input), alg === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : key);
  return `${input}.${signature.toString('base64url')}`;
}

/** Requests that each carry the next of `tokens`. */
function cycling(tokens: readonly string[], path: string): Load {
  let next = 0;
  return {
    path,
    requests: [
      {
        setupRequest: (req) => {
          req.headers.authorization = `Bearer ${tokens[next++ % tokens.length]}`;
          return req;
        },
      },
    ],
  };
}

async function main(): Promise<number> {
  const startedAt = Date.now();
  tmp = mkdtempSync(join(tmpdir(), 'tollgate-bench-'));
  const { message: backends } = await forkTs<Record<string, string>>('backends.ts', {
    env: { BENCH_PROVIDER_LATENCY_MS: String(settings.providerLatencyMs), BENCH_JWKS: JSON.stringify(JWKS) },
  });
  const upstreamUrl = backends.upstream!;
  const providerUrl = backends.provider!;

  const cache = { ttl_s: 3600, negative_ttl_s: 5, max_entries: 100_000, stale_if_error_s: 0, refresh_ahead_s: 5 };
  const provider = (name: string, issuer: string) => ({ name, issuer, client_id: 'tollgate', client_secret: 'bench-secret' });
  const wanted = (id: string) => settings.only === null || settings.only.has(id);

  const jwtIssuer = `${providerUrl}/t/jwt`;
  const jwtRows = ['h', 'i', 'j', 'k'].some(wanted);
  const [bareStart, tollgate, big, tollgateJwt, identity] = await Promise.all([
    forkTs<{ url: string }>('bare-proxy.ts', {
      env: { BENCH_UPSTREAM_URL: upstreamUrl, BENCH_GC_PROBE_FILE: join(tmp, 'bare.memory.json') },
      execArgv: [...GC_PROBE, ...(settings.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${settings.cpuProfDir}/bare`] : [])],
    }),
    startTollgate('tollgate', { upstream: { url: upstreamUrl }, providers: [provider('bench', providerUrl)], cache }),
    wanted('g')
      ? startTollgate('tollgate-g', {
          upstream: { url: upstreamUrl },
          providers: Array.from({ length: 100 }, (_, i) => provider(`t-${i}`, `${providerUrl}/t/t-${i}`)),
          routes: [
            { match: { path_prefix: '/health' }, public: true },
            // 48 routes that the benchmark's requests pass over: other paths, hosts and methods
            // (distinct, since a route an earlier one shadows is a configuration error).
            ...Array.from({ length: 48 }, (_, i) =>
              i % 3 === 0
                ? { match: { path_prefix: `/svc-${i}/` }, providers: [`t-${i}`] }
                : i % 3 === 1
                  ? { match: { host: `tenant-${i}.example`, path_prefix: '/api' }, providers: [`t-${i}`, `t-${i + 50}`] }
                  : {
                      match: { path_prefix: `/api/admin-${i}/`, methods: ['DELETE'] },
                      scopes: ['orders:admin'],
                      providers: [`t-${i}`],
                    },
            ),
            { match: { path_prefix: '/api' }, scopes: ['orders:read'], providers: ['t-42'] },
          ],
          cache,
        })
      : Promise.resolve(null),
    // Opaque tokens of `bench` under /api, JWTs of `jwt` under /j/: both kinds in one process.
    jwtRows
      ? startTollgate('tollgate-jwt', {
          upstream: { url: upstreamUrl },
          providers: [
            provider('bench', providerUrl),
            { name: 'jwt', issuer: jwtIssuer, audience: JWT_AUDIENCE, jwt: { algorithms: ['RS256', 'ES256'], typ: 'at+jwt' } },
          ],
          routes: [
            { match: { path_prefix: '/j/' }, providers: ['jwt'] },
            { match: { path_prefix: '/api' }, providers: ['bench'] },
          ],
          cache,
        })
      : Promise.resolve(null),
    // (l): the same as (a), and a minted identity token for the API on each request (reused with
    // its cached answer: a hit signs nothing). The key is generated at start.
    wanted('l')
      ? startTollgate('tollgate-h', {
          upstream: { url: upstreamUrl },
          providers: [provider('bench', providerUrl)],
          cache,
          headers: { identity_jwt: { issuer: 'https://tollgate.bench', audience: 'bench-api' } },
        })
      : Promise.resolve(null),
  ]);
  const bare: Target = {
    name: 'bare',
    url: bareStart.message.url!,
    pid: bareStart.child.pid!,
    memoryFile: join(tmp, 'bare.memory.json'),
  };
  const B: Side = { target: bare, status: 200 };
  const T: Side = { target: tollgate, status: 200 };
  const setupS = (Date.now() - startedAt) / 1000;
  if (process.env.BENCH_HOLD) {
    process.stdout.write(`${JSON.stringify({ bare, tollgate, big })}\n`);
    await new Promise((r) => setTimeout(r, Number(process.env.BENCH_HOLD) * 1000));
  }

  const rows: Row[] = [];
  const token = 'bench-token-a-0123456789abcdefghijklmnopqrstuvwxyz';

  if (wanted('a')) {
    const { runs, problems } = await alternate([B, T], () => ({ path: PATH, headers: authorization(token) }));
    rows.push({
      id: 'a',
      title: 'one token, cache hit',
      bare: runs[0]!,
      tollgate: runs[1]!,
      note: '',
      verdict: judge(runs[0]!, runs[1]!, { minRatio: 0.9, maxP99Ratio: 1.25 }, problems),
    });
  }

  if (wanted('b')) {
    const tokens = rotatingTokens(ROTATING_TOKENS);
    let next = 0;
    const rotating: Load = {
      path: PATH,
      requests: [
        {
          setupRequest: (req) => {
            req.headers.authorization = `Bearer ${tokens[next++ % tokens.length]}`;
            return req;
          },
        },
      ],
    };
    // Warm the cache: every token once, then count the calls the measured runs make (none).
    next = 0;
    await measure(tollgate, { ...rotating, amount: ROTATING_TOKENS });
    const callsBefore = await providerCalls(providerUrl);
    const { runs, problems } = await alternate([B, T], () => rotating);
    const calls = (await providerCalls(providerUrl)) - callsBefore;
    rows.push({
      id: 'b',
      title: `${ROTATING_TOKENS.toLocaleString('en')} tokens rotating, cache warm`,
      bare: runs[0]!,
      tollgate: runs[1]!,
      note: `${calls} introspection calls`,
      verdict: judge(runs[0]!, runs[1]!, { minRatio: 0.9, maxP99Ratio: 1.25 }, problems, [{ ok: calls === 0, text: 'all hits' }]),
    });
  }

  if (wanted('c')) {
    let serial = 0;
    const fresh: Load = {
      path: PATH,
      requests: [
        {
          setupRequest: (req) => {
            req.headers.authorization = `Bearer bench-miss-${(serial++).toString(36)}-${startedAt.toString(36)}`;
            return req;
          },
        },
      ],
    };
    // Requests cut at the end of a run were still introspected: count what tollgate handled.
    let before = { calls: 0, requests: 0 };
    const counts = async () => ({
      calls: await providerCalls(providerUrl),
      requests: await metricValue(tollgate, 'tollgate_requests_total', 'outcome="allowed",provider="bench"'),
    });
    const perRequest: number[] = [];
    const { runs, problems } = await alternate([B, T], () => fresh, {
      before: async (side) => {
        if (side === T) before = await counts();
      },
      after: async (side) => {
        if (side !== T) return;
        await new Promise((r) => setTimeout(r, 500)); // let cut requests finish
        const after = await counts();
        perRequest.push((after.calls - before.calls) / (after.requests - before.requests));
      },
    });
    const calls = median(perRequest);
    rows.push({
      id: 'c',
      title: `new token every request (miss, provider ${settings.providerLatencyMs} ms)`,
      bare: runs[0]!,
      tollgate: runs[1]!,
      note: `${calls.toFixed(3)} introspection calls/request`,
      verdict: judge(runs[0]!, runs[1]!, {}, problems, [{ ok: Math.abs(calls - 1) < 0.01, text: '1 call/request' }]),
    });
  }

  if (wanted('d')) {
    // BURST connections, one request each, all with one token the cache has never seen; the
    // provider holds its answer to `slow-` tokens long enough for every request to arrive.
    const bareRuns: Run[] = [];
    const tollgateRuns: Run[] = [];
    const calls: number[] = [];
    const coalesced: number[] = [];
    const problems: string[] = [];
    for (let pair = 0; pair < settings.pairs; pair++) {
      const burst = (t: string): Load => ({ path: PATH, connections: BURST, amount: BURST, headers: authorization(t) });
      bareRuns.push(await measure(bare, burst('unused')));
      const callsBefore = await providerCalls(providerUrl);
      const coalescedBefore = await metricValue(tollgate, 'tollgate_cache_lookups_total', 'result="coalesced"');
      const run = await measure(tollgate, burst(`slow-burst-${pair}-${startedAt.toString(36)}`));
      tollgateRuns.push(run);
      calls.push((await providerCalls(providerUrl)) - callsBefore);
      coalesced.push((await metricValue(tollgate, 'tollgate_cache_lookups_total', 'result="coalesced"')) - coalescedBefore);
      if (run.responses !== BURST || run.statuses[200] !== BURST) problems.push(`tollgate: ${JSON.stringify(run.statuses)}`);
    }
    rows.push({
      id: 'd',
      title: `${BURST.toLocaleString('en')} concurrent requests, one fresh token`,
      bare: bareRuns,
      tollgate: tollgateRuns,
      note: `calls per burst: ${calls.join(', ')}; coalesced: ${coalesced.join(', ')}`,
      verdict: judge(bareRuns, tollgateRuns, {}, problems, [{ ok: calls.every((c) => c === 1), text: '1 call' }]),
    });
  }

  if (wanted('e')) {
    const { runs, problems } = await alternate([B, { target: tollgate, status: 401 }], () => ({ path: PATH }));
    rows.push({
      id: 'e',
      title: 'no token (401)',
      bare: runs[0]!,
      tollgate: runs[1]!,
      note: '',
      verdict: judge(runs[0]!, runs[1]!, { minRatio: 1.0 }, problems),
    });
  }

  if (wanted('f')) {
    const body = Buffer.alloc(BODY_BYTES, 'x');
    const upload: Load = {
      method: 'POST',
      path: PATH,
      connections: settings.bodyConnections,
      headers: { ...authorization(token), 'content-type': 'application/octet-stream' },
      body,
    };
    // Memory of each proxy after a full GC, before its first measured run (after the warm-up) and
    // after its last: what it keeps, which must not grow with the bodies streamed through. The
    // peak RSS during the runs is shown beside it: it includes garbage not yet collected.
    type Memory = NodeJS.MemoryUsage;
    const memory = new Map<Side, { first: Memory; last: Memory; peak: number }>();
    let stop: (() => number) | undefined;
    const { runs, problems } = await alternate([B, T], () => upload, {
      before: async (side) => {
        if (!memory.has(side)) {
          const first = await settledMemory(side.target);
          memory.set(side, { first, last: first, peak: 0 });
        }
        stop = sampleRss(side.target.pid);
      },
      after: (side) => {
        const m = memory.get(side)!;
        m.peak = Math.max(m.peak, stop?.() ?? 0);
      },
    });
    for (const [side, m] of memory) m.last = await settledMemory(side.target);
    const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;
    const signed = (n: number) => `${n >= 0 ? '+' : '−'}${mb(Math.abs(n))}`;
    /** What a buffered body would show in: the JS heap and the memory of Buffers. */
    const kept = (m: Memory) => m.heapUsed + m.external;
    const describe = (side: Side) => {
      const { first, last, peak } = memory.get(side)!;
      return (
        `${side.target.name}: RSS after GC ${mb(first.rss)} → ${mb(last.rss)} (${signed(last.rss - first.rss)}), ` +
        `heap+external ${signed(kept(last) - kept(first))}, peak RSS during runs ${signed(peak - first.rss)}`
      );
    };
    // The budget reads "RSS grows by less than 2 × the body". RSS after GC is shown, but it also
    // holds memory the allocator keeps after Buffers are freed (glibc arenas: the bare proxy's
    // grows as much or more), so the verdict reads what the process itself keeps: heap + external.
    const t = memory.get(T)!;
    const growth = kept(t.last) - kept(t.first);
    rows.push({
      id: 'f',
      title: '1 MB request body streamed',
      bare: runs[0]!,
      tollgate: runs[1]!,
      note: `${describe(T)}; ${describe(B)}`,
      verdict: judge(runs[0]!, runs[1]!, {}, problems, [{ ok: growth < 2 * BODY_BYTES, text: 'kept < 2 MB' }]),
    });
  }

  if (big !== null) {
    // Three sides in turn: bare, tollgate as in (a), tollgate with 100 providers and 50 routes.
    const G: Side = { target: big, status: 200 };
    const { runs, problems } = await alternate([B, T, G], () => ({ path: PATH, headers: authorization(token) }));
    const vsA = median(runs[2]!.map((r) => r.rps)) / median(runs[1]!.map((r) => r.rps));
    rows.push({
      id: 'g',
      title: '100 providers, 50 routes, cache hit',
      bare: runs[0]!,
      tollgate: runs[2]!,
      note:
        `÷ (a) in the same turns: ${vsA.toFixed(3)} ` +
        `(a: ${Math.round(median(runs[1]!.map((r) => r.rps)))} req/s, ${Math.round(median(runs[1]!.map((r) => r.cpuUs)))} µs CPU/req)`,
      verdict: judge(runs[0]!, runs[2]!, {}, problems, [{ ok: vsA >= 0.95, text: 'within 5 % of (a)' }]),
    });
  }

  if (tollgateJwt !== null) rows.push(...(await jwtScenarios(B, tollgateJwt, jwtIssuer, token, wanted)));
  if (identity !== null) {
    // Three sides in turn, as (g): bare, tollgate as in (a), tollgate with identity_jwt on.
    const H: Side = { target: identity, status: 200 };
    const { runs, problems } = await alternate([B, T, H], () => ({ path: PATH, headers: authorization(token) }));
    const vsA = median(runs[2]!.map((r) => r.rps)) / median(runs[1]!.map((r) => r.rps));
    const cpuVsA = median(runs[2]!.map((r) => r.cpuUs)) / median(runs[1]!.map((r) => r.cpuUs));
    rows.push({
      id: 'l',
      title: 'identity_jwt on, one token, cache hit',
      bare: runs[0]!,
      tollgate: runs[2]!,
      note:
        `÷ (a) in the same turns: ${vsA.toFixed(3)} req/s, ${cpuVsA.toFixed(3)} CPU/req ` +
        `(a: ${Math.round(median(runs[1]!.map((r) => r.rps)))} req/s, ${Math.round(median(runs[1]!.map((r) => r.cpuUs)))} µs CPU/req)`,
      verdict: judge(runs[0]!, runs[2]!, {}, problems, [{ ok: vsA >= 0.95, text: '≥ 0.95 × (a)' }]),
    });
  }

  await stopAll();
  const totalS = (Date.now() - startedAt) / 1000;
  printTable(rows, setupS, totalS);
  if (settings.jsonFile) writeFileSync(settings.jsonFile, JSON.stringify({ settings, rows }, null, 2));
  rmSync(tmp, { recursive: true, force: true });
  return rows.every((r) => r.verdict.ok) ? 0 : 1;
}

/** Rows h–k: one tollgate with an introspection provider and a jwt provider. */
async function jwtScenarios(
  B: Side,
  target: Target,
  issuer: string,
  opaqueToken: string,
  wanted: (id: string) => boolean,
): Promise<Row[]> {
  const rows: Row[] = [];
  const JWT_PATH = `/j${PATH}`;
  const rps = (runs: Run[]) => median(runs.map((r) => r.rps));
  const cpu = (runs: Run[]) => median(runs.map((r) => r.cpuUs));
  const introspected: Side = { target, status: 200 };
  const verified: Side = { target, status: 200 };
  const oneJwt = signJwt('ES256', issuer);
  let hit: { jwt: Run[]; introspection: Run[] } | undefined;

  if (wanted('h') || wanted('k')) {
    // Three sides in turn: bare, an introspection cache hit, a JWT cache hit (same process).
    const { runs, problems } = await alternate([B, introspected, verified], (side) =>
      side === verified
        ? { path: JWT_PATH, headers: authorization(oneJwt) }
        : { path: PATH, headers: authorization(opaqueToken) },
    );
    hit = { introspection: runs[1]!, jwt: runs[2]! };
    const ratio = rps(runs[2]!) / rps(runs[1]!);
    rows.push({
      id: 'h',
      title: 'one JWT, cache hit',
      bare: runs[0]!,
      tollgate: runs[2]!,
      note:
        `÷ an introspection cache hit in the same turns: ${ratio.toFixed(3)} ` +
        `(${Math.round(rps(runs[1]!))} req/s, ${Math.round(cpu(runs[1]!))} µs CPU/req)`,
      verdict: judge(runs[0]!, runs[2]!, {}, problems, [{ ok: ratio >= 0.97, text: 'JWT hit ≥ 0.97 × introspection hit' }]),
    });
  }

  // First sight: every request a JWT never seen, so each is verified (no cache hit).
  const FIRST_SIGHT = 3000;
  for (const [id, alg] of [
    ['i', 'RS256'],
    ['j', 'ES256'],
  ] as const) {
    if (!wanted(id)) continue;
    const bareRuns: Run[] = [];
    const tgRuns: Run[] = [];
    const problems: string[] = [];
    const before = await metricValue(target, 'tollgate_jwt_verifications_total', 'provider="jwt",result="valid"');
    for (let pair = 0; pair < settings.pairs; pair++) {
      const tokens = Array.from({ length: FIRST_SIGHT }, () => signJwt(alg, issuer));
      bareRuns.push(await measure(B.target, { ...cycling(tokens, PATH), amount: FIRST_SIGHT }));
      const run = await measure(target, { ...cycling(tokens, JWT_PATH), amount: FIRST_SIGHT });
      if (run.statuses[200] !== FIRST_SIGHT) problems.push(`tollgate: ${JSON.stringify(run.statuses)}`);
      tgRuns.push(run);
    }
    const verifications =
      (await metricValue(target, 'tollgate_jwt_verifications_total', 'provider="jwt",result="valid"')) - before;
    rows.push({
      id,
      title: `new ${alg} JWT every request (verified, no cache hit)`,
      bare: bareRuns,
      tollgate: tgRuns,
      note: `${Math.round(cpu(tgRuns))} µs CPU/req in tollgate (${verifications} verifications)${hit ? `; a JWT cache hit: ${Math.round(cpu(hit.jwt))} µs` : ''}`,
      verdict: judge(bareRuns, tgRuns, {}, problems, [
        { ok: verifications === settings.pairs * FIRST_SIGHT, text: '1 verification/request' },
      ]),
    });
  }

  if (wanted('k')) {
    const tokens = Array.from({ length: ROTATING_TOKENS }, () => signJwt('ES256', issuer));
    const rotating = cycling(tokens, JWT_PATH);
    await measure(target, { ...rotating, amount: ROTATING_TOKENS }); // verify each once: the cache is warm
    const before = await metricValue(target, 'tollgate_jwt_verifications_total', 'provider="jwt",result="valid"');
    const { runs, problems } = await alternate([B, verified], (side) =>
      side === B ? { path: PATH, headers: authorization(oneJwt) } : rotating,
    );
    const verifications =
      (await metricValue(target, 'tollgate_jwt_verifications_total', 'provider="jwt",result="valid"')) - before;
    const vsOne = hit ? rps(runs[1]!) / rps(hit.jwt) : NaN;
    rows.push({
      id: 'k',
      title: `${ROTATING_TOKENS.toLocaleString('en')} JWTs rotating, cache warm`,
      bare: runs[0]!,
      tollgate: runs[1]!,
      note: `÷ (h) one JWT: ${vsOne.toFixed(3)} (not in the same turns); ${verifications} verifications`,
      verdict: judge(runs[0]!, runs[1]!, {}, problems, [{ ok: verifications === 0, text: 'all hits' }]),
    });
  }
  return rows;
}

function printTable(rows: readonly Row[], setupS: number, totalS: number): void {
  const header = [
    '',
    'scenario',
    'bare req/s',
    'tollgate req/s',
    'ratio',
    'p50 bare',
    'p50 tg',
    'p99 bare',
    'p99 tg',
    'p99 ratio',
    'CPU µs/req',
    'budget',
  ];
  const ms = (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(2));
  const lines = rows.map((r) => {
    const m = (runs: Run[], f: (r: Run) => number) => median(runs.map(f));
    const bRps = m(r.bare, (x) => x.rps);
    const tRps = m(r.tollgate, (x) => x.rps);
    const bP99 = m(r.bare, (x) => x.p99Ms);
    const tP99 = m(r.tollgate, (x) => x.p99Ms);
    return [
      `(${r.id})`,
      r.title,
      Math.round(bRps).toString(),
      Math.round(tRps).toString(),
      (tRps / bRps).toFixed(2),
      ms(m(r.bare, (x) => x.p50Ms)),
      ms(m(r.tollgate, (x) => x.p50Ms)),
      ms(bP99),
      ms(tP99),
      (tP99 / bP99).toFixed(2),
      `${Math.round(m(r.bare, (x) => x.cpuUs))} / ${Math.round(m(r.tollgate, (x) => x.cpuUs))}`,
      r.verdict.text,
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  const out = [fmt(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(fmt)];
  const notes = rows.filter((r) => r.note !== '').map((r) => `(${r.id}) ${r.note}`);
  process.stdout.write(
    [
      '',
      `tollgate vs bare proxy — medians of ${settings.pairs} pairs, ${settings.durationS} s each, ${settings.connections} connections ` +
        `(f: ${settings.bodyConnections}; d: ${BURST} × 1 request), provider latency ${settings.providerLatencyMs} ms, latencies in ms`,
      ...out,
      ...notes,
      `node ${process.version}; setup ${setupS.toFixed(1)} s, total ${totalS.toFixed(1)} s`,
      '',
    ].join('\n'),
  );
}

// Ctrl-C: stop the proxies and backends too (tollgate children would outlive the harness).
process.once('SIGINT', () => void stopAll().finally(() => process.exit(130)));

main().then(
  (code) => process.exit(code),
  async (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    await stopAll().catch(() => {});
    process.exit(2);
  },
);
