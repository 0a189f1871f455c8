/**
 * SPEC §3.6: the cache of providers' answers, in front of whatever produces them (an introspection
 * call today). The pipeline asks it one question, "what does this token prove at this provider?",
 * and does not know how the answer was obtained.
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
import { scopesOf, type Answer, type AnswerNeed, type Check } from '../provider/answer.js';
import type { SharedCache, SharedLoad, SharedSource } from './shared.js';

export interface CacheSettings {
  /** Longest life of an active answer (seconds; default 60). It never outlives the token's `exp`. */
  readonly ttl_s: number;
  /** Life of an inactive answer (seconds; default 5). */
  readonly negative_ttl_s: number;
  /** Most answers held (default 100,000); the least recently used go first. */
  readonly max_entries: number;
  /**
   * How long past its life an answer may serve while its provider fails (seconds; default 0:
   * fail closed). Never past the token's own `exp`.
   */
  readonly stale_if_error_s: number;
  /**
   * An active answer used this close to the end of its life is refreshed once in the background
   * (seconds; default 5). At most half the answer's life, and not for an answer that ends with
   * the token's `exp` (a new one would end then too).
   */
  readonly refresh_ahead_s: number;
}

/**
 * What the cache needs of a provider: its name (part of the key) and a way to obtain an answer;
 * with a shared cache also what binds a shared entry to it (issuer, audience) and its timeout.
 */
export interface AnswerSource extends SharedSource {
  readonly name: string;
  /**
   * The claims this provider vouches for (an RFC 7662 answer, or a verified JWT's claims in that
   * shape); `need` is the route's (SPEC §9). Rejects with a TollgateError.
   */
  fetchAnswer(token: string, need?: AnswerNeed): Promise<Record<string, unknown>>;
  /** How this token would be checked, for the access line (default: introspection). */
  checkOf?(token: string, need: AnswerNeed): Check | null;
}

export interface Lookup {
  readonly answer: Answer;
  readonly cache: CacheResult;
}

/** Where a lookup says how it went, failed ones too (the access line's `cache`, SPEC §6). */
export interface LookupStatus {
  cache: CacheResult | null;
  /** How the answer was obtained (the access line's `check`), set with `cache`. */
  check?: Check | null;
}

export interface AnswerCache {
  /**
   * The provider's answer for this token, from the cache or from one shared call. `status.cache`
   * is set as the lookup is counted, also when it then fails. A fresh answer in the cache comes
   * back as is, not in a promise: a cache hit makes no promise hop.
   */
  lookup(provider: AnswerSource, token: string, status?: LookupStatus, need?: AnswerNeed): Lookup | Promise<Lookup>;
  /** Entries held now (in-flight loads included). */
  size(): number;
  /** Forgets every answer of these providers (removed or changed by a reload). */
  dropProviders(names: ReadonlySet<string>): void;
}

/**
 * An answer with its lifetimes: one object per entry (the cache holds up to `max_entries`), handed
 * to the request as its Answer.
 */
interface Entry extends Answer {
  /** Until then the answer is used as is (epoch milliseconds). */
  readonly freshUntilMs: number;
  /** From then on a use triggers one background refresh (Infinity: never). */
  readonly refreshFromMs: number;
  /** Until then an expired answer may stand in while the provider fails. */
  readonly staleUntilMs: number;
  /** Set once a background refresh of this entry has started: refresh-ahead runs once per entry. */
  refreshing: boolean;
  /** Read from the shared cache (another pod's call): its first use counts a `shared_hit`. */
  readonly shared: boolean;
  readonly check: Check | null;
}

/**
 * What a load needs. The token is only inside the closure: lru-cache publishes a fetch's context
 * on its diagnostics channels (`lru-cache`, `lru-cache:metrics`) to whoever subscribes (APM
 * agents), and a raw token must not be readable there.
 */
interface LoadContext {
  readonly provider: string;
  readonly check: Check | null;
  readonly load: () => Promise<SharedLoad>;
}

/**
 * SHA-256 of (provider name, token), base64url. Provider names are `[a-z0-9-]`, so the NUL
 * separator makes the pair unambiguous. crypto.hash: one call, about half the cost of createHash.
 */
export function cacheKey(providerName: string, token: string, need: AnswerNeed = 'any'): string {
  // SPEC §9: a route that needs the provider's own answer must not be served a JWT's verification
  // of the same token; a token never holds a NUL, so the extra field cannot be forged.
  return need === 'any'
    ? hash('sha256', `${providerName}\0${token}`, 'base64url')
    : hash('sha256', `${providerName}\0${need}\0${token}`, 'base64url');
}

/**
 * @param shared the cache shared by every replica (`cache.shared`): asked between this cache and
 *   the provider, so whatever the provider vouches for (introspected or verified) is shared alike.
 */
export function createAnswerCache(settings: CacheSettings, clock: Clock, metrics: Metrics, shared?: SharedCache): AnswerCache {
  const lookups = {
    hit: metrics.cacheLookups.labels('hit'),
    miss: metrics.cacheLookups.labels('miss'),
    coalesced: metrics.cacheLookups.labels('coalesced'),
    stale: metrics.cacheLookups.labels('stale'),
    shared_hit: metrics.cacheLookups.labels('shared_hit'),
  };
  const ttlMs = settings.ttl_s * 1000;
  const negativeTtlMs = settings.negative_ttl_s * 1000;
  const staleIfErrorMs = settings.stale_if_error_s * 1000;
  const refreshAheadMs = settings.refresh_ahead_s * 1000;

  const expMsOf = (claims: Record<string, unknown>): number => {
    const exp = Object.hasOwn(claims, 'exp') ? claims.exp : undefined;
    return claims.active === true && typeof exp === 'number' ? exp * 1000 : Infinity;
  };
  /** SPEC §3.6: min(ttl, exp − now) when active, negative_ttl otherwise (milliseconds from now). */
  const lifeOf = (claims: Record<string, unknown>): number =>
    claims.active === true ? Math.min(ttlMs, expMsOf(claims) - clock.now()) : negativeTtlMs;

  /**
   * Lifetimes of a new answer: its life from now, and never past `untilMs` (a shared entry's end,
   * so an answer read from the shared cache lives no longer here than there).
   */
  const toEntry = (loaded: SharedLoad, provider: string, check: Check | null): Entry => {
    const { claims } = loaded;
    const now = clock.now();
    const active = claims.active === true;
    const expMs = expMsOf(claims);
    const lifeMs = Math.min(lifeOf(claims), loaded.untilMs - now);
    const freshUntilMs = now + Math.max(0, lifeMs);
    // A refresh can only lengthen an active answer cut short by ttl_s. An inactive token is refused
    // either way, and re-asking about one a client keeps sending would turn a refused token into a
    // call per request. The half-life cap keeps refresh_ahead_s ≥ ttl_s from doing the same.
    const refreshFromMs = active && freshUntilMs < expMs ? freshUntilMs - Math.min(refreshAheadMs, lifeMs / 2) : Infinity;
    return {
      claims,
      scopes: scopesOf(claims),
      provider,
      freshUntilMs,
      refreshFromMs,
      // stale-if-error never outlives the token itself
      staleUntilMs: Math.min(freshUntilMs + staleIfErrorMs, Math.max(freshUntilMs, expMs)),
      refreshing: false,
      shared: loaded.shared,
      check,
    };
  };

  const cache = new LRUCache<string, Entry, LoadContext>({
    max: settings.max_entries,
    // A failed load keeps the previous answer in place, for stale-if-error; failures themselves
    // are never stored (with nothing to keep, the key is deleted).
    noDeleteOnFetchRejection: true,
    // An entry evicted while its load is in flight still delivers the answer to those waiting.
    ignoreFetchAbort: true,
    fetchMethod: async (_key, _previous, { context }) => toEntry(await context.load(), context.provider, context.check),
  });

  /** `usableAfterMs`: a refresh takes a shared entry only if it outlives the one it replaces. */
  const contextFor = (provider: AnswerSource, token: string, need: AnswerNeed, usableAfterMs?: number): LoadContext => {
    const fetch = need === 'any' ? () => provider.fetchAnswer(token) : () => provider.fetchAnswer(token, need);
    return {
      provider: provider.name,
      check: provider.checkOf === undefined ? 'introspection' : provider.checkOf(token, need),
      load:
        shared === undefined
          ? async () => ({ claims: await fetch(), shared: false, untilMs: Infinity })
          : () =>
              shared.load(provider, token, {
                fetch,
                lifeMs: lifeOf,
                // Kept apart in the shared cache too, as in cacheKey: a route that needs the
                // provider's own answer is never served another pod's JWT verification.
                need,
                ...(usableAfterMs === undefined ? {} : { usableAfterMs }),
              }),
    };
  };

  const refreshInBackground = (key: string, entry: Entry, context: LoadContext): void => {
    entry.refreshing = true;
    // allowStale: the current answer keeps serving and nobody awaits the load, so its failure is
    // swallowed by lru-cache (the provider's own metrics and log record it).
    void cache.fetch(key, { forceRefresh: true, allowStale: true, context });
  };

  const count = (result: CacheResult, out: LookupStatus | undefined, check: Check | null) => {
    lookups[result].inc();
    if (out) {
      out.cache = result;
      out.check = check;
    }
  };

  /** Asks the provider (or joins the call in flight); a failure may fall back to the stale entry. */
  const load = async (
    key: string,
    entry: Entry | undefined,
    provider: AnswerSource,
    token: string,
    out: LookupStatus | undefined,
    need: AnswerNeed,
  ): Promise<Lookup> => {
    const status: LRUCache.Status<string, Entry, LoadContext> = {};
    const context = contextFor(provider, token, need);
    try {
      // forceRefresh: lru-cache keeps no lifetimes of its own, so without it an expired entry
      // would come back as a hit. A load already in flight is joined, not repeated.
      const loaded = await cache.fetch(key, { forceRefresh: true, context, status });
      if (loaded === undefined) throw new TollgateError('temporarily_unavailable', 'the answer was lost before it arrived');
      const result: CacheResult = status.fetch === 'inflight' ? 'coalesced' : loaded.shared ? 'shared_hit' : 'miss';
      count(result, out, loaded.check);
      return { answer: loaded, cache: result };
    } catch (err) {
      if (entry !== undefined && clock.now() < entry.staleUntilMs) {
        count('stale', out, entry.check);
        return { answer: entry, cache: 'stale' };
      }
      count(status.fetch === 'inflight' ? 'coalesced' : 'miss', out, context.check);
      throw err;
    }
  };

  return {
    lookup(provider, token, out, need = 'any') {
      const key = cacheKey(provider.name, token, need);
      const now = clock.now();
      // allowStale returns the current entry while a background refresh of it is in flight.
      const entry = cache.get(key, { allowStale: true });
      if (entry === undefined || now >= entry.freshUntilMs) return load(key, entry, provider, token, out, need);
      if (now >= entry.refreshFromMs && !entry.refreshing)
        refreshInBackground(key, entry, contextFor(provider, token, need, entry.freshUntilMs));
      count('hit', out, entry.check);
      return { answer: entry, cache: 'hit' };
    },
    size: () => cache.size,
    dropProviders(names) {
      const dropped: string[] = [];
      // forEach also visits answers whose background refresh is in flight (entries() skips them).
      cache.forEach((entry, key) => {
        if (names.has(entry.provider)) dropped.push(key);
      });
      for (const key of dropped) cache.delete(key);
    },
  };
}
