/**
 * What a minted identity token costs (identity_jwt), measured on the minter itself so the figures
 * are the signature's and not the network's: for each algorithm (ES256, EdDSA, RS256 with a
 * 2048-bit key), the CPU time of a first use — a new token signed with jose — and of a reuse (a
 * cache hit: the token kept with its answer). CPU is the whole process's (user + system, every
 * thread: jose signs through WebCrypto, which Node runs on its thread pool). Beside each, the same
 * signature made directly with node:crypto in the same run, so jose's share shows as a ratio.
 * Then the request pipeline of a cache hit (route, token, cache, policy, headers; no network)
 * with identity_jwt off and on, in turns in one process: what tollgate itself adds to a hit.
 *
 *   npm run bench:identity          # about 20 s
 *
 * Prints medians of several runs; no budget (the hit path's budget is `npm run bench` row (h)).
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { pino } from 'pino';
import { createAnswerCache } from '../../src/cache/answers.js';
import { validateConfig } from '../../src/config/load.js';
import { createPipeline, type Exchange } from '../../src/proxy/handler.js';
import type { Provider } from '../../src/provider/providers.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { compileRuntime } from '../../src/runtime.js';
import { compileIdentity } from '../../src/identity/mint.js';
import type { IdentityAlg } from '../../src/identity/keys.js';
import { toAnswer } from '../../src/provider/answer.js';
import { median } from './proxy-processes.js';

const RUNS = 5;
const SIGNATURES_PER_RUN = 2_000;
const REUSES_PER_RUN = 200_000;
/** Signatures started together, so the thread pool is used as under load. */
const BATCH = 64;
const startMs = Date.UTC(2026, 0, 1);

const cpuUs = () => {
  const { user, system } = process.cpuUsage();
  return user + system;
};

const claims = (i: number) => ({
  active: true,
  sub: `user-${i}`,
  client_id: 'orders-app',
  scope: 'orders:read orders:write',
  exp: Math.floor(startMs / 1000) + 3600,
  iss: 'https://login.example',
});

async function measure(alg: IdentityAlg) {
  const identity = compileIdentity(
    { header: 'X-Auth-Token', issuer: 'https://tollgate.bench', audience: 'bench-api', ttl_s: 60, alg, key_file: undefined },
    { issuers: new Map([['acme', 'https://login.example']]), nowMs: startMs },
  );
  const minter = identity.minter!;
  const key = identity.keys.current!;
  const fresh: number[] = [];
  const reuse: number[] = [];
  const direct: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const answers = Array.from({ length: SIGNATURES_PER_RUN }, (_, i) => toAnswer(claims(run * SIGNATURES_PER_RUN + i), 'acme'));
    let before = cpuUs();
    for (let i = 0; i < answers.length; i += BATCH) {
      await Promise.all(answers.slice(i, i + BATCH).map((a) => minter.mint(a, startMs)));
    }
    fresh.push((cpuUs() - before) / answers.length);

    before = cpuUs();
    let length = 0;
    for (let i = 0; i < REUSES_PER_RUN; i++) length += (minter.mint(answers[i % answers.length]!, startMs) as string).length;
    reuse.push((cpuUs() - before) / REUSES_PER_RUN);
    if (length === 0) throw new Error('no token reused');

    // The same signing input, signed with node:crypto directly (synchronous, no JWT building).
    const input = Buffer.from('eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEiLCJpYXQiOjE3NjcyMjU2MDB9');
    const hash = alg === 'EdDSA' ? null : 'sha256';
    const options = alg === 'ES256' ? { key: key.privateKey, dsaEncoding: 'ieee-p1363' as const } : key.privateKey;
    before = cpuUs();
    for (let i = 0; i < answers.length; i++) sign(hash, input, options);
    direct.push((cpuUs() - before) / answers.length);
  }
  return { alg, fresh: median(fresh), reuse: median(reuse), direct: median(direct) };
}

// Warm-up: the first signatures of a process pay for JIT and key import.
generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
await measure('ES256');

const rows = [];
for (const alg of ['ES256', 'EdDSA', 'RS256'] as const) rows.push(await measure(alg));

/** A pipeline over one cached answer, as a cache hit sees it; the exchange forwards nowhere. */
function hitPipeline(identity: boolean) {
  const result = validateConfig({
    upstream: { url: 'http://127.0.0.1:9' },
    access_log: false,
    providers: [{ name: 'bench', issuer: 'http://127.0.0.1:9', client_id: 'tollgate', client_secret: 'bench' }],
    ...(identity ? { headers: { identity_jwt: { issuer: 'https://tollgate.bench', audience: 'bench-api' } } } : {}),
  });
  if (!result.ok) throw new Error(JSON.stringify(result.problems));
  const config = result.config;
  const provider = {
    name: 'bench',
    issuer: 'http://127.0.0.1:9',
    audience: undefined,
    config: config.providers[0]!,
    keyFilesDigest: '',
    isReady: () => true,
    ready: Promise.resolve(),
    fetchAnswer: async () => ({ ...claims(0), iss: 'http://127.0.0.1:9' }),
    checkOf: () => 'introspection' as const,
    close: async () => {},
  } satisfies Provider;
  const clock = { now: () => startMs };
  const metrics = createMetrics({ processMetrics: false });
  const runtime = compileRuntime(config, new Map([['bench', provider]]), { nowMs: startMs });
  return createPipeline({
    runtime: () => runtime,
    cache: createAnswerCache(config.cache, clock, metrics),
    clock,
    metrics,
    logger: pino({ level: 'silent' }),
  });
}
const hitRequest = {
  url: '/api/orders?limit=10',
  method: 'GET',
  rawHeaders: ['Host', 'api.example', 'Authorization', 'Bearer bench-token', 'Accept', '*/*'],
  headers: { host: 'api.example', authorization: 'Bearer bench-token', accept: '*/*' },
  socket: { remoteAddress: '127.0.0.1' },
} as unknown as IncomingMessage;
let forwarded = 0;
const exchange: Exchange = {
  forward: (decision, done) => {
    forwarded += decision.headers.length;
    done({ status: 200, upstreamMs: 0 });
  },
  respond: () => {
    throw new Error('the benchmark request was refused');
  },
};
const pipelines = { off: hitPipeline(false), on: hitPipeline(true) };
// The first request of each is the miss (and, with identity_jwt, the signature); then only hits.
for (const run of Object.values(pipelines)) run(hitRequest, exchange);
await new Promise((resolve) => setTimeout(resolve, 100));
const hit: Record<'off' | 'on', number[]> = { off: [], on: [] };
for (let round = 0; round < 10; round++) {
  for (const side of ['off', 'on'] as const) {
    const before = cpuUs();
    for (let i = 0; i < 100_000; i++) pipelines[side](hitRequest, exchange);
    hit[side].push((cpuUs() - before) / 100_000);
  }
}
if (forwarded === 0) throw new Error('nothing was forwarded');
process.stdout.write(
  [
    '',
    `identity_jwt: CPU per minted token (µs, user + system, all threads), medians of ${RUNS} runs of ${SIGNATURES_PER_RUN} signatures`,
    '| alg   | first use (jose sign) | node:crypto sign alone | jose ÷ node:crypto | reuse (cache hit) |',
    '|-------|-----------------------|------------------------|--------------------|-------------------|',
    ...rows.map(
      (r) =>
        `| ${r.alg.padEnd(5)} | ${r.fresh.toFixed(1).padStart(21)} | ${r.direct.toFixed(1).padStart(22)} | ${(r.fresh / r.direct)
          .toFixed(2)
          .padStart(18)} | ${r.reuse.toFixed(3).padStart(17)} |`,
    ),
    `a cache hit through the pipeline (no network), medians of 10 turns of 100,000: identity_jwt off ` +
      `${median(hit.off).toFixed(2)} µs, on ${median(hit.on).toFixed(2)} µs (on ÷ off ${(median(hit.on) / median(hit.off)).toFixed(3)})`,
    `node ${process.version}`,
    '',
  ].join('\n'),
);
