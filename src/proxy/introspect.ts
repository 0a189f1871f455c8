/**
 * SPEC §3.6: the cache of providers' answers, in front of the introspection call.
 *
 * lru-cache bounds the entries (least recently used go first) and coalesces concurrent loads of
 * one key into one call (`fetch()`); the lifetimes are ours, read from the injected clock, because
 * they depend on the answer (`exp`, active or not) and on what happens at the provider
 * (stale-if-error, refresh-ahead). The key is a hash of (provider name, token): the raw token is
 * never stored, and the same token string at two providers is two entries.
 */
import { hash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { TollgateError } from '../errors.js';
import type { Clock } from '../clock.js';
import type { CacheResult, Metrics } from '../observability/metrics.js';
import { toAnswer, type Answer } from './answer.js';

export interface CacheSettings {
  /** Longest life of an active answer (seconds). */
  readonly ttl_s: number;
  /** Life of an inactive answer (seconds). */
  readonly negative_ttl_s: number;
  readonly max_entries: number;
  /** How long past its life an answer may serve while its provider fails (seconds). */
  readonly stale_if_error_s: number;
  /** An answer used this close to the end of its life is refreshed in the background (seconds). */
  readonly refresh_ahead_s: number;
}

/** What the cache needs of a provider. */
export interface Introspector {
  readonly name: string;
  introspect(token: string): Promise<Record<string, unknown>>;
}

export interface Lookup {
  readonly answer: Answer;
  readonly cache: CacheResult;
}

export interface IntrospectionCache {
  /** The provider's answer for this token, from the cache or from one shared call. */
  lookup(provider: Introspector, token: string): Promise<Lookup>;
  /** Entries held now (in-flight loads included). */
  size(): number;
  /** Forgets every answer of these providers (removed or changed by a reload). */
  dropProviders(names: ReadonlySet<string>): void;
}

interface Entry {
  readonly answer: Answer;
  /** Until then the answer is used as is (epoch milliseconds). */
  readonly freshUntilMs: number;
  /** From then on a use triggers one background refresh. */
  readonly refreshFromMs: number;
  /** Until then an expired answer may stand in while the provider fails. */
  readonly staleUntilMs: number;
  /** Set once a background refresh of this entry has started: refresh-ahead runs once per entry. */
  refreshing: boolean;
}

interface LoadContext {
  readonly provider: Introspector;
  readonly token: string;
}

export function cacheKey(providerName: string, token: string): string {
  // One-shot hash (Node 20.12+): no Hash object per request; the same digest as
  // createHash().update(name).update('\0').update(token), at a quarter of its cost.
  return hash('sha256', `${providerName}\0${token}`, 'base64url');
}

export function createIntrospectionCache(settings: CacheSettings, clock: Clock, metrics: Metrics): IntrospectionCache {
  const lookups = {
    hit: metrics.cacheLookups.labels('hit'),
    miss: metrics.cacheLookups.labels('miss'),
    coalesced: metrics.cacheLookups.labels('coalesced'),
    stale: metrics.cacheLookups.labels('stale'),
  };

  /** Lifetimes of a new answer, SPEC §3.6: min(ttl, exp − now) when active, negative_ttl otherwise. */
  const toEntry = (claims: Record<string, unknown>, providerName: string): Entry => {
    const now = clock.now();
    const answer = toAnswer(claims, providerName);
    let lifeMs: number;
    let staleLimitMs = Infinity;
    if (claims.active === true) {
      lifeMs = settings.ttl_s * 1000;
      const exp = Object.hasOwn(claims, 'exp') ? claims.exp : undefined;
      if (typeof exp === 'number') {
        lifeMs = Math.min(lifeMs, exp * 1000 - now);
        staleLimitMs = exp * 1000; // stale-if-error never outlives the token itself
      }
    } else {
      lifeMs = settings.negative_ttl_s * 1000;
    }
    const freshUntilMs = now + Math.max(0, lifeMs);
    return {
      answer,
      freshUntilMs,
      refreshFromMs: freshUntilMs - settings.refresh_ahead_s * 1000,
      staleUntilMs: Math.min(freshUntilMs + settings.stale_if_error_s * 1000, Math.max(freshUntilMs, staleLimitMs)),
      refreshing: false,
    };
  };

  const cache = new LRUCache<string, Entry, LoadContext>({
    max: settings.max_entries,
    // A failed load keeps the previous answer in place, for stale-if-error; failures themselves
    // are never stored.
    noDeleteOnFetchRejection: true,
    // An entry evicted while its load is in flight still delivers the answer to those waiting.
    ignoreFetchAbort: true,
    fetchMethod: async (_key, _previous, { context }) =>
      toEntry(await context.provider.introspect(context.token), context.provider.name),
  });

  const refreshInBackground = (key: string, entry: Entry, context: LoadContext): void => {
    entry.refreshing = true;
    // allowStale: the current answer keeps serving; the load's failure is swallowed by lru-cache
    // (nobody awaits it), and the provider's own metrics and log record it.
    void cache.fetch(key, { forceRefresh: true, allowStale: true, context });
  };

  return {
    async lookup(provider, token) {
      const key = cacheKey(provider.name, token);
      const now = clock.now();
      // allowStale returns the current entry while a background refresh of it is in flight.
      const entry = cache.get(key, { allowStale: true });
      if (entry !== undefined && now < entry.freshUntilMs) {
        if (now >= entry.refreshFromMs && !entry.refreshing) refreshInBackground(key, entry, { provider, token });
        lookups.hit.inc();
        return { answer: entry.answer, cache: 'hit' };
      }
      const status: LRUCache.Status<string, Entry, LoadContext> = {};
      try {
        const loaded = await cache.fetch(key, { forceRefresh: true, context: { provider, token }, status });
        if (loaded === undefined) throw new TollgateError('temporarily_unavailable', 'the answer was lost before it arrived');
        const result: CacheResult = status.fetch === 'inflight' ? 'coalesced' : 'miss';
        lookups[result].inc();
        return { answer: loaded.answer, cache: result };
      } catch (err) {
        if (entry !== undefined && clock.now() < entry.staleUntilMs) {
          lookups.stale.inc();
          return { answer: entry.answer, cache: 'stale' };
        }
        lookups[status.fetch === 'inflight' ? 'coalesced' : 'miss'].inc();
        throw err;
      }
    },
    size: () => cache.size,
    dropProviders(names) {
      for (const [key, entry] of cache.entries()) {
        if (names.has(entry.answer.provider)) cache.delete(key);
      }
    },
  };
}
