/**
 * SPEC §3.6, the introspection cache, rule by rule, on the cache itself: a fake AnswerSource that
 * counts calls and answers when the test says so, and a manual clock, so every lifetime is shown
 * to the millisecond without sleeping.
 */
import t from 'tap';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { inspect } from 'node:util';
import { cacheKey, createAnswerCache, type CacheSettings, type AnswerSource } from '../../src/cache/answers.js';
import { createMetrics, type CacheResult } from '../../src/observability/metrics.js';
import { captureLruCacheChannels } from '../helpers/lru-channels.js';
import { manualClock } from '../helpers/clock.js';

type Claims = Record<string, unknown>;

interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(err: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

interface FakeSource extends AnswerSource {
  /** Tokens asked about, in order. */
  readonly calls: string[];
  /** How the next calls are answered (default: active, no exp). */
  answer(fn: (token: string) => Claims | Promise<Claims>): void;
}

function fakeSource(name = 'acme'): FakeSource {
  const calls: string[] = [];
  let answer: (token: string) => Claims | Promise<Claims> = () => ({ active: true, sub: 'alice' });
  return {
    name,
    calls,
    fetchAnswer: async (token) => {
      calls.push(token);
      return answer(token);
    },
    answer(fn) {
      answer = fn;
    },
  };
}

const DEFAULTS: CacheSettings = { ttl_s: 60, negative_ttl_s: 5, max_entries: 100_000, stale_if_error_s: 0, refresh_ahead_s: 5 };

function setup(settings: Partial<CacheSettings> = {}) {
  const clock = manualClock();
  let size = () => 0;
  const metrics = createMetrics({ processMetrics: false, cacheSize: () => size() });
  const cache = createAnswerCache({ ...DEFAULTS, ...settings }, clock, metrics);
  size = cache.size;
  // Without a shared cache there is no shared_hit to count (shared.test.ts counts those).
  const lookups = async (): Promise<Record<Exclude<CacheResult, 'shared_hit'>, number>> => {
    const counts = { hit: 0, miss: 0, coalesced: 0, stale: 0 };
    for (const v of (await metrics.cacheLookups.get()).values) {
      const result = v.labels.result as CacheResult;
      if (result !== 'shared_hit') counts[result] = v.value;
    }
    return counts;
  };
  const entries = async () => (await metrics.registry.getSingleMetric('tollgate_cache_entries')!.get()).values[0]?.value;
  return { clock, cache, metrics, lookups, entries };
}

/** A lookup that settles within the current turn of the event loop, or 'waited' if it did not. */
async function settlesAtOnce<T>(p: T | Promise<T>): Promise<T | 'waited'> {
  return Promise.race([p, nextTurn().then(() => 'waited' as const)]);
}

t.test('20 sequential lookups of one token make one call', async (t) => {
  const { cache, lookups } = setup();
  const provider = fakeSource();
  for (let i = 0; i < 20; i++) await cache.lookup(provider, 'tok-1');
  t.equal(provider.calls.length, 1);
  t.same(await lookups(), { hit: 19, miss: 1, coalesced: 0, stale: 0 });
});

t.test('500 concurrent lookups of a fresh token share one call and one answer', async (t) => {
  const { cache, lookups, entries } = setup();
  const provider = fakeSource();
  const gate = deferred<Claims>();
  provider.answer(() => gate.promise);
  const pending = Array.from({ length: 500 }, () => cache.lookup(provider, 'tok-1'));
  t.equal(provider.calls.length, 1, 'all 500 are waiting on one call');
  gate.resolve({ active: true, sub: 'alice' });
  const results = await Promise.all(pending);
  t.equal(provider.calls.length, 1);
  t.equal(new Set(results.map((r) => r.answer)).size, 1, 'every request got the same answer');
  t.equal(results[0]!.answer.claims.sub, 'alice');
  t.same(await lookups(), { hit: 0, miss: 1, coalesced: 499, stale: 0 });
  t.equal(await entries(), 1);
});

t.test('500 concurrent lookups whose one call fails: 500 failures, still one call, nothing kept', async (t) => {
  const { cache, lookups, entries } = setup();
  const provider = fakeSource();
  const gate = deferred<Claims>();
  provider.answer(() => gate.promise);
  const pending = Array.from({ length: 500 }, () => cache.lookup(provider, 'tok-1'));
  const failure = new Error('provider down');
  gate.reject(failure);
  const results = await Promise.allSettled(pending);
  t.equal(provider.calls.length, 1);
  t.equal(results.filter((r) => r.status === 'rejected' && r.reason === failure).length, 500, 'all 500 see the failure');
  t.same(await lookups(), { hit: 0, miss: 1, coalesced: 499, stale: 0 });
  t.equal(await entries(), 0, 'the failure is not kept');

  provider.answer(() => ({ active: true }));
  await cache.lookup(provider, 'tok-1');
  t.equal(provider.calls.length, 2, 'the next lookup asks again');
});

t.test('metrics stay exact under concurrency over many tokens', async (t) => {
  const { cache, lookups, entries } = setup();
  const provider = fakeSource();
  const gates = new Map<string, Deferred<Claims>>();
  provider.answer((token) => {
    const gate = deferred<Claims>();
    gates.set(token, gate);
    return gate.promise;
  });
  const tokens = Array.from({ length: 10 }, (_, i) => `tok-${i}`);
  const pending = Array.from({ length: 100 }, (_, i) => cache.lookup(provider, tokens[i % 10]!));
  t.equal(provider.calls.length, 10, 'one call per token');
  t.equal(await entries(), 10, 'loads in flight count as entries');
  // Five succeed, five fail, in an order unlike the requests'.
  tokens.forEach((token, i) => {
    if (i % 2 === 0) gates.get(token)!.resolve({ active: true, sub: token });
    else gates.get(token)!.reject(new Error('down'));
  });
  const results = await Promise.allSettled(pending);
  t.equal(results.filter((r) => r.status === 'fulfilled').length, 50);
  t.same(await lookups(), { hit: 0, miss: 10, coalesced: 90, stale: 0 });
  t.equal(await entries(), 5, 'only the answers are kept');
  await Promise.all(Array.from({ length: 100 }, (_, i) => cache.lookup(provider, tokens[(i % 5) * 2]!)));
  t.same(await lookups(), { hit: 100, miss: 10, coalesced: 90, stale: 0 });
  t.equal(provider.calls.length, 10);
});

t.test('an active answer lives ttl_s, to the millisecond', async (t) => {
  const { cache, clock } = setup({ ttl_s: 60, refresh_ahead_s: 0 });
  const provider = fakeSource();
  await cache.lookup(provider, 'tok-1');
  clock.advance(60_000 - 1);
  t.equal((await cache.lookup(provider, 'tok-1')).cache, 'hit');
  clock.advance(1);
  t.equal((await cache.lookup(provider, 'tok-1')).cache, 'miss');
  t.equal(provider.calls.length, 2);
});

t.test('an inactive answer lives negative_ttl_s: one call within it, a second after', async (t) => {
  const { cache, clock } = setup({ negative_ttl_s: 5 });
  const provider = fakeSource();
  provider.answer(() => ({ active: false }));
  await cache.lookup(provider, 'bad');
  // A client that keeps sending a refused token, through the whole negative_ttl_s (the last
  // refresh_ahead_s included): no call of its own.
  for (let ms = 0; ms < 5_000; ms += 250) {
    t.equal((await cache.lookup(provider, 'bad')).answer.claims.active, false);
    clock.advance(250);
  }
  t.equal(provider.calls.length, 1, 'one call within negative_ttl_s');
  t.equal((await cache.lookup(provider, 'bad')).cache, 'miss');
  t.equal(provider.calls.length, 2, 'a second one once it ends');
});

t.test("an active answer never outlives the token's exp", async (t) => {
  const { cache, clock } = setup({ ttl_s: 60 });
  const provider = fakeSource();
  const exp = clock.nowS() + 2;
  provider.answer(() => ({ active: true, exp }));
  await cache.lookup(provider, 'tok-1');
  clock.advance(2_000 - 1);
  t.equal((await cache.lookup(provider, 'tok-1')).cache, 'hit');
  t.equal(provider.calls.length, 1);
  clock.advance(1);
  provider.answer(() => ({ active: false }));
  const after = await cache.lookup(provider, 'tok-1');
  t.equal(after.cache, 'miss', 'at exp the entry is gone');
  t.equal(after.answer.claims.active, false);
  t.equal(provider.calls.length, 2);
});

t.test('an active answer whose exp has passed is not reused', async (t) => {
  const { cache, clock } = setup({ ttl_s: 60 });
  const provider = fakeSource();
  provider.answer(() => ({ active: true, exp: clock.nowS() - 1 }));
  await cache.lookup(provider, 'tok-1');
  t.equal((await cache.lookup(provider, 'tok-1')).cache, 'miss');
  t.equal(provider.calls.length, 2);
});

t.test('a failure is not kept: the next lookup calls again', async (t) => {
  const { cache, lookups, entries } = setup();
  const provider = fakeSource();
  provider.answer(() => Promise.reject(new Error('HTTP 500')));
  await t.rejects(async () => cache.lookup(provider, 'tok-1'), { message: 'HTTP 500' });
  t.equal(await entries(), 0);
  provider.answer(() => ({ active: true }));
  t.equal((await cache.lookup(provider, 'tok-1')).cache, 'miss');
  t.equal(provider.calls.length, 2);
  t.same(await lookups(), { hit: 0, miss: 2, coalesced: 0, stale: 0 });
});

t.test('stale_if_error_s > 0: an expired answer serves while the provider fails', async (t) => {
  const { cache, clock, lookups } = setup({ ttl_s: 10, stale_if_error_s: 30 });
  const provider = fakeSource();
  await cache.lookup(provider, 'tok-1');
  provider.answer(() => Promise.reject(new Error('down')));

  clock.advance(10_000);
  const stale = await cache.lookup(provider, 'tok-1');
  t.equal(stale.cache, 'stale');
  t.equal(stale.answer.claims.sub, 'alice');
  t.equal(provider.calls.length, 2, 'the provider was asked first');
  clock.advance(30_000 - 1);
  t.equal((await cache.lookup(provider, 'tok-1')).cache, 'stale');
  clock.advance(1);
  await t.rejects(async () => cache.lookup(provider, 'tok-1'), { message: 'down' }, 'not past ttl_s + stale_if_error_s');
  t.same(await lookups(), { hit: 0, miss: 2, coalesced: 0, stale: 2 });

  t.test('a provider that answers again replaces the stale answer', async (t) => {
    provider.answer(() => ({ active: true, sub: 'alice-2' }));
    const fresh = await cache.lookup(provider, 'tok-1');
    t.equal(fresh.cache, 'miss');
    t.equal(fresh.answer.claims.sub, 'alice-2');
  });
});

t.test("stale_if_error_s > 0 never serves past the token's exp", async (t) => {
  const { cache, clock } = setup({ ttl_s: 10, stale_if_error_s: 30 });
  const provider = fakeSource();
  const exp = clock.nowS() + 15;
  provider.answer(() => ({ active: true, exp }));
  await cache.lookup(provider, 'tok-1');
  provider.answer(() => Promise.reject(new Error('down')));
  clock.advance(15_000 - 1);
  t.equal((await cache.lookup(provider, 'tok-1')).cache, 'stale');
  clock.advance(1);
  await t.rejects(async () => cache.lookup(provider, 'tok-1'), { message: 'down' });
});

t.test('stale_if_error_s > 0: requests waiting on the failed call all get the stale answer', async (t) => {
  const { cache, clock, lookups } = setup({ ttl_s: 10, stale_if_error_s: 30 });
  const provider = fakeSource();
  await cache.lookup(provider, 'tok-1');
  clock.advance(10_000);
  const gate = deferred<Claims>();
  provider.answer(() => gate.promise);
  const pending = Array.from({ length: 50 }, () => cache.lookup(provider, 'tok-1'));
  gate.reject(new Error('down'));
  const results = await Promise.all(pending);
  t.ok(results.every((r) => r.cache === 'stale' && r.answer.claims.sub === 'alice'));
  t.equal(provider.calls.length, 2);
  t.same(await lookups(), { hit: 0, miss: 1, coalesced: 0, stale: 50 });
});

t.test('stale_if_error_s = 0 (default): fail closed once the answer ends', async (t) => {
  const { cache, clock } = setup({ ttl_s: 10 });
  const provider = fakeSource();
  await cache.lookup(provider, 'tok-1');
  provider.answer(() => Promise.reject(new Error('down')));
  clock.advance(10_000);
  await t.rejects(async () => cache.lookup(provider, 'tok-1'), { message: 'down' });
});

t.test('refresh-ahead: a hot token in its last refresh_ahead_s is re-asked once, in the background', async (t) => {
  const { cache, clock, lookups } = setup({ ttl_s: 60, refresh_ahead_s: 5 });
  const provider = fakeSource();
  await cache.lookup(provider, 'tok-1');
  clock.advance(55_000 - 1);
  await cache.lookup(provider, 'tok-1');
  t.equal(provider.calls.length, 1, 'no refresh before the last refresh_ahead_s');

  clock.advance(1);
  const hang = deferred<Claims>();
  provider.answer(() => hang.promise);
  const first = await settlesAtOnce(cache.lookup(provider, 'tok-1'));
  t.not(first, 'waited', 'the request does not wait for the refresh');
  t.equal(first !== 'waited' && first.cache, 'hit');
  t.equal(provider.calls.length, 2, 'the refresh has started');
  for (let i = 0; i < 10; i++) {
    clock.advance(400);
    t.equal((await settlesAtOnce(cache.lookup(provider, 'tok-1'))) !== 'waited', true);
  }
  t.equal(provider.calls.length, 2, 'exactly one background call');

  hang.resolve({ active: false });
  await nextTurn();
  const after = await cache.lookup(provider, 'tok-1');
  t.equal(after.cache, 'hit');
  t.equal(after.answer.claims.active, false, 'the revoked token is now known as such');
  t.equal(provider.calls.length, 2);
  t.same(await lookups(), { hit: 13, miss: 1, coalesced: 0, stale: 0 });
});

t.test('refresh-ahead: the refreshed answer starts a new life, and is refreshed again in its own last seconds', async (t) => {
  const { cache, clock } = setup({ ttl_s: 60, refresh_ahead_s: 5 });
  const provider = fakeSource();
  await cache.lookup(provider, 'tok-1');
  clock.advance(56_000);
  await cache.lookup(provider, 'tok-1');
  await nextTurn();
  t.equal(provider.calls.length, 2);
  clock.advance(55_000 - 1); // 110.999 s: past the first answer's end, within the second's life
  t.equal((await cache.lookup(provider, 'tok-1')).cache, 'hit');
  await nextTurn();
  t.equal(provider.calls.length, 2);
  clock.advance(1); // 111 s: the second answer (56 s + 60 s) is in its last 5 s
  await cache.lookup(provider, 'tok-1');
  t.equal(provider.calls.length, 3);
});

t.test('refresh-ahead: a failed refresh keeps the answer until its end, then fails closed', async (t) => {
  const { cache, clock } = setup({ ttl_s: 60, refresh_ahead_s: 5 });
  const provider = fakeSource();
  await cache.lookup(provider, 'tok-1');
  provider.answer(() => Promise.reject(new Error('down')));
  clock.advance(56_000);
  t.equal((await cache.lookup(provider, 'tok-1')).cache, 'hit');
  await nextTurn();
  t.equal(provider.calls.length, 2);
  clock.advance(3_999);
  t.equal((await cache.lookup(provider, 'tok-1')).cache, 'hit', 'no second refresh of the same entry');
  t.equal(provider.calls.length, 2);
  clock.advance(1);
  await t.rejects(async () => cache.lookup(provider, 'tok-1'), { message: 'down' }, 'never past its ttl');
});

t.test('refresh-ahead never turns hits into calls', async (t) => {
  t.test('not for an inactive answer', async (t) => {
    const { cache, clock } = setup({ negative_ttl_s: 5, refresh_ahead_s: 5 });
    const provider = fakeSource();
    provider.answer(() => ({ active: false }));
    for (let i = 0; i < 20; i++) {
      await cache.lookup(provider, 'bad');
      await nextTurn();
      clock.advance(100);
    }
    t.equal(provider.calls.length, 1);
  });
  t.test("not for an answer that ends at the token's exp: a new one would end then too", async (t) => {
    const { cache, clock } = setup({ ttl_s: 60, refresh_ahead_s: 5 });
    const provider = fakeSource();
    const exp = clock.nowS() + 3;
    provider.answer(() => ({ active: true, exp }));
    for (let i = 0; i < 20; i++) {
      await cache.lookup(provider, 'tok-1');
      await nextTurn();
      clock.advance(100);
    }
    t.equal(provider.calls.length, 1);
  });
  t.test('refresh_ahead_s ≥ ttl_s: at most one refresh per half-life', async (t) => {
    const { cache, clock } = setup({ ttl_s: 4, refresh_ahead_s: 5 });
    const provider = fakeSource();
    for (let i = 0; i < 20; i++) {
      await cache.lookup(provider, 'tok-1');
      await nextTurn();
      clock.advance(100);
    }
    t.equal(provider.calls.length, 1, '2 s of hits within the first half of a 4 s life');
  });
});

t.test('the same token string at two providers is two entries', async (t) => {
  const { cache, entries } = setup();
  const acme = fakeSource('acme');
  const globex = fakeSource('globex');
  acme.answer(() => ({ active: true, sub: 'acme-user' }));
  globex.answer(() => ({ active: false }));
  for (let i = 0; i < 3; i++) {
    t.equal((await cache.lookup(acme, 'shared')).answer.claims.sub, 'acme-user');
    t.equal((await cache.lookup(globex, 'shared')).answer.claims.active, false);
  }
  t.equal(acme.calls.length, 1);
  t.equal(globex.calls.length, 1);
  t.equal(await entries(), 2);
  t.not(cacheKey('acme', 'shared'), cacheKey('globex', 'shared'));
});

t.test('at most max_entries; the least recently used goes first', async (t) => {
  const { cache, entries } = setup({ max_entries: 3 });
  const provider = fakeSource();
  for (const token of ['a', 'b', 'c']) await cache.lookup(provider, token);
  await cache.lookup(provider, 'a'); // b is now the least recently used
  await cache.lookup(provider, 'd');
  t.equal(await entries(), 3);
  t.same(provider.calls, ['a', 'b', 'c', 'd']);
  for (const token of ['a', 'c', 'd']) t.equal((await cache.lookup(provider, token)).cache, 'hit', `${token} kept`);
  t.equal((await cache.lookup(provider, 'b')).cache, 'miss', 'b was evicted');
  t.equal(await entries(), 3);
});

t.test('an entry evicted while its call is in flight still answers those waiting', async (t) => {
  const { cache } = setup({ max_entries: 1 });
  const provider = fakeSource();
  const gate = deferred<Claims>();
  provider.answer((token) => (token === 'a' ? gate.promise : { active: true, sub: token }));
  const waiting = [cache.lookup(provider, 'a'), cache.lookup(provider, 'a')];
  await cache.lookup(provider, 'b');
  gate.resolve({ active: true, sub: 'a' });
  const results = await Promise.all(waiting);
  t.ok(results.every((r) => r.answer.claims.sub === 'a'));
  t.equal(cache.size(), 1);
});

t.test('no key, and nothing lru-cache publishes, holds the raw token', async (t) => {
  const token = 'raw-token-Zq8vX1y2';
  // lru-cache publishes every operation's status (key, value, a fetch's context) to subscribers.
  const seen = captureLruCacheChannels(t);

  const { cache, clock } = setup({ ttl_s: 60, refresh_ahead_s: 5 });
  const provider = fakeSource();
  await Promise.all([cache.lookup(provider, token), cache.lookup(provider, token)]); // miss + coalesced
  await cache.lookup(provider, token); // hit
  clock.advance(56_000);
  await cache.lookup(provider, token); // refresh-ahead
  await nextTurn();
  clock.advance(60_000);
  provider.answer(() => Promise.reject(new Error('down')));
  await t.rejects(async () => cache.lookup(provider, token)); // a failed load
  t.equal(provider.calls.length, 3);

  const keys = seen.map((m) => (m as { key?: unknown }).key).filter((k) => k !== undefined);
  t.ok(keys.length > 0, 'lru-cache published the keys it saw');
  t.ok(
    keys.every((k) => k === cacheKey('acme', token)),
    'the key is the hash of (provider, token)',
  );
  const published = seen.map((m) => {
    const { cache: _cache, ...rest } = m as Record<string, unknown>;
    return inspect(rest, { depth: 8, showHidden: true, maxStringLength: Infinity, maxArrayLength: Infinity });
  });
  t.notOk(
    published.some((text) => text.includes(token)),
    'no key, value or context lru-cache publishes contains the token',
  );
  t.notMatch(cacheKey('acme', token), token);
  t.match(cacheKey('acme', token), /^[A-Za-z0-9_-]{43}$/, 'SHA-256, base64url');
});

t.test('dropProviders forgets one provider, answers being refreshed included', async (t) => {
  const { cache, clock } = setup({ ttl_s: 60, refresh_ahead_s: 5 });
  const acme = fakeSource('acme');
  const globex = fakeSource('globex');
  await cache.lookup(acme, 'x');
  await cache.lookup(acme, 'y');
  await cache.lookup(globex, 'x');
  clock.advance(56_000);
  const hang = deferred<Claims>();
  acme.answer(() => hang.promise);
  await cache.lookup(acme, 'y'); // its refresh hangs
  t.equal(acme.calls.length, 3);

  cache.dropProviders(new Set(['acme']));
  t.equal(cache.size(), 1);
  hang.resolve({ active: true, sub: 'late' });
  await nextTurn();
  t.equal(cache.size(), 1, 'a refresh that lands after the drop is not kept');
  t.equal((await cache.lookup(globex, 'x')).cache, 'hit');
  acme.answer(() => ({ active: true }));
  t.equal((await cache.lookup(acme, 'y')).cache, 'miss');
});
