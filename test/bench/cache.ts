/**
 * The introspection cache's budgets (issue 3), measured on the cache itself with an in-memory
 * provider, so the figures are the cache's and not the network's:
 *
 * 1. heap held by 100,000 cached active answers with typical claims (budget ≤ 120 MB), with one
 *    scope string for all answers (a), and with a scope string per answer (b, the worst case);
 * 2. a flood of 1,000,000 random inactive tokens: the entry count stays at max_entries and the
 *    heap stays flat;
 * 3. the cost a cache hit adds to a request: lookup() on a hit, median of several runs
 *    (budget ≤ 5 µs of CPU time; wall time is printed too).
 *
 * Run with `npm run bench:cache` (node --expose-gc, so the heap is measured after a full GC).
 * Exits 1 when a budget is missed.
 */
import { randomBytes } from 'node:crypto';
import { createAnswerCache, type AnswerSource } from '../../src/cache/answers.js';
import { createMetrics } from '../../src/observability/metrics.js';
import type { Clock } from '../../src/clock.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  process.stderr.write('run with node --expose-gc (npm run bench:cache)\n');
  process.exit(2);
}

const MB = 1024 * 1024;
const ACTIVE_ENTRIES = 100_000;
const FLOOD_TOKENS = 1_000_000;
const HEAP_BUDGET_MB = 120;
const HIT_BUDGET_US = 5;
const HIT_RUNS = 7;
const HIT_LOOKUPS_PER_RUN = 200_000;
/** Lookups started together: enough to keep the event loop busy, few enough to stay realistic. */
const BATCH = 1_000;

const settings = { ttl_s: 60, negative_ttl_s: 5, max_entries: 100_000, stale_if_error_s: 0, refresh_ahead_s: 5 };
const startMs = Date.UTC(2026, 0, 1);
const clock: Clock = { now: () => startMs };
const nowS = Math.floor(startMs / 1000);

/** A random opaque token, as a provider would mint it (43 base64url characters). */
const randomToken = () => randomBytes(32).toString('base64url');

/**
 * What a typical provider answers for an active client or user token (RFC 7662 §2.2), as JSON text
 * parsed the way openid-client parses it: every answer a distinct object with its own strings.
 */
function typicalAnswer(i: number, scopePerAnswer = false): string {
  return JSON.stringify({
    active: true,
    iss: 'https://login.acme.example/realms/orders',
    sub: `user-${i.toString(36)}-${randomBytes(8).toString('hex')}`,
    client_id: i % 2 === 0 ? 'orders-web' : 'orders-mobile',
    username: `user${i}@acme.example`,
    scope: `openid profile orders:read orders:write${scopePerAnswer ? ` tenant:${i}` : ''}`,
    aud: ['orders-api', 'billing-api'],
    token_type: 'Bearer',
    exp: nowS + 3600,
    iat: nowS - 60,
    nbf: nowS - 60,
    jti: randomBytes(16).toString('base64url'),
  });
}

const heapMB = () => {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed / MB;
};

const fmt = (n: number, digits = 1) => n.toFixed(digits);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

let failed = false;
const report = (line: string, ok = true) => {
  if (!ok) failed = true;
  process.stdout.write(`${ok ? '  ' : '✗ '}${line}\n`);
};

/**
 * `scopePerAnswer`: every answer has a scope string of its own, the worst case for the shared
 * scope sets (a provider that adds a per-user scope).
 */
async function activeAnswers(scopePerAnswer: boolean): Promise<void> {
  // Each answer is made when asked for, so the heap holds the cache and nothing of the test's.
  let minted = 0;
  const provider: AnswerSource = {
    name: 'acme',
    fetchAnswer: async () => JSON.parse(typicalAnswer(minted++, scopePerAnswer)) as Record<string, unknown>,
  };
  const before = heapMB();
  const cache = createAnswerCache(settings, clock, createMetrics({ processMetrics: false }));
  const empty = heapMB();
  for (let i = 0; i < ACTIVE_ENTRIES; i += BATCH) {
    await Promise.all(Array.from({ length: BATCH }, () => cache.lookup(provider, randomToken())));
  }
  const after = heapMB();
  const held = after - empty;
  process.stdout.write(
    `\n1${scopePerAnswer ? 'b' : 'a'}. ${ACTIVE_ENTRIES.toLocaleString('en')} cached active answers (typical claims, ${typicalAnswer(0, scopePerAnswer).length} bytes of JSON each; ${scopePerAnswer ? 'a scope string per answer' : 'one scope string for all'})\n`,
  );
  report(`entries: ${cache.size().toLocaleString('en')}`, cache.size() === ACTIVE_ENTRIES);
  report(`heap before: ${fmt(before)} MB; the empty cache: +${fmt(empty - before)} MB (its index arrays for max_entries)`);
  report(`held by the answers: ${fmt(held)} MB (${fmt((held * MB) / ACTIVE_ENTRIES, 0)} bytes per entry)`);
  report(`heap used in all: ${fmt(after)} MB (budget ≤ ${HEAP_BUDGET_MB} MB)`, after <= HEAP_BUDGET_MB);
}

async function flood(): Promise<void> {
  const provider: AnswerSource = { name: 'acme', fetchAnswer: async () => ({ active: false }) };
  const cache = createAnswerCache(settings, clock, createMetrics({ processMetrics: false }));
  const baseline = heapMB();
  const fill = async (count: number) => {
    for (let i = 0; i < count; i += BATCH) {
      await Promise.all(Array.from({ length: BATCH }, () => cache.lookup(provider, randomToken())));
    }
  };
  await fill(settings.max_entries);
  const full = heapMB();
  const fullSize = cache.size();
  // One more round of max_entries, so every first entry has been evicted once: that first round
  // grows the heap once by a few MB (hash-table growth, optimised code); from then on it must
  // stay where it is however many tokens come.
  await fill(settings.max_entries);
  const settled = heapMB();
  await fill(FLOOD_TOKENS - 2 * settings.max_entries);
  const end = heapMB();
  const n = (x: number) => x.toLocaleString('en');
  process.stdout.write(`\n2. a flood of ${n(FLOOD_TOKENS)} random inactive tokens (max_entries ${n(settings.max_entries)})\n`);
  report(
    `entries: ${n(fullSize)} after ${n(settings.max_entries)} tokens, ${n(cache.size())} after ${n(FLOOD_TOKENS)}`,
    cache.size() === settings.max_entries,
  );
  report(
    `heap: ${fmt(baseline)} MB empty, ${fmt(full)} MB after ${n(settings.max_entries)} tokens, ${fmt(settled)} MB after ${n(2 * settings.max_entries)}, ${fmt(end)} MB after ${n(FLOOD_TOKENS)} (${end - settled >= 0 ? '+' : ''}${fmt(end - settled)} MB over the last ${n(FLOOD_TOKENS - 2 * settings.max_entries)})`,
    end - settled < 2,
  );
}

async function hitCost(): Promise<void> {
  const provider: AnswerSource = {
    name: 'acme',
    fetchAnswer: async () => JSON.parse(typicalAnswer(0)) as Record<string, unknown>,
  };
  const cache = createAnswerCache(settings, clock, createMetrics({ processMetrics: false }));
  // A thousand hot tokens, so the measure is not one key forever in the CPU's cache.
  const tokens = Array.from({ length: 1_000 }, randomToken);
  await Promise.all(tokens.map((token) => cache.lookup(provider, token)));
  // CPU time is the budget's measure: on a shared machine wall time also counts the time this
  // process waited for a core. Both are printed.
  const run = async () => {
    const cpu = process.cpuUsage();
    const started = process.hrtime.bigint();
    for (let i = 0; i < HIT_LOOKUPS_PER_RUN; i++) {
      const found = await cache.lookup(provider, tokens[i % tokens.length]!);
      if (found.cache !== 'hit') throw new Error(`expected a hit, got ${found.cache}`);
    }
    const wallUs = Number(process.hrtime.bigint() - started) / 1000;
    const used = process.cpuUsage(cpu);
    return { cpu: (used.user + used.system) / HIT_LOOKUPS_PER_RUN, wall: wallUs / HIT_LOOKUPS_PER_RUN };
  };
  await run(); // warm-up: let the JIT settle
  const runs: { cpu: number; wall: number }[] = [];
  for (let r = 0; r < HIT_RUNS; r++) runs.push(await run());
  const cpu = median(runs.map((r) => r.cpu));
  const wall = median(runs.map((r) => r.wall));
  process.stdout.write(
    `\n3. the cost of a cache hit: await lookup() on a hit, ${HIT_RUNS} runs of ${HIT_LOOKUPS_PER_RUN.toLocaleString('en')} over 1,000 hot tokens\n`,
  );
  report(`CPU µs per lookup: ${runs.map((r) => fmt(r.cpu, 2)).join(', ')}`);
  report(`wall µs per lookup: ${runs.map((r) => fmt(r.wall, 2)).join(', ')}`);
  report(
    `median: ${fmt(cpu, 2)} µs CPU, ${fmt(wall, 2)} µs wall per lookup (budget ≤ ${HIT_BUDGET_US} µs CPU)`,
    cpu <= HIT_BUDGET_US,
  );
}

process.stdout.write(`tollgate cache benchmark — Node.js ${process.version}, ${process.platform}/${process.arch}\n`);
await activeAnswers(false);
await activeAnswers(true);
await flood();
await hitCost();
process.stdout.write(failed ? '\nA budget was missed.\n' : '\nEvery budget met.\n');
process.exitCode = failed ? 1 : 0;
