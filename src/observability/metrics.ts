/**
 * Every metric tollgate exports, in one place (SPEC §5). Label values are closed unions or
 * configured provider names, never a token, path or subject. Each app owns its registry, so
 * several instances (tests) never share counters.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Outcome } from '../errors.js';
import { HotCounter, HotHistogram } from './hot-metrics.js';

export type CacheResult = 'hit' | 'miss' | 'coalesced' | 'stale' | 'shared_hit';
/** What the shared cache (Redis / Valkey) was asked to do. */
export type SharedCacheOperation = 'read' | 'write' | 'lock';
export type IntrospectionResult = 'active' | 'inactive' | 'error';
export type ReloadResult = 'success' | 'failure';
export type JwtVerificationResult = 'valid' | 'invalid';
export type JwksFetchResult = 'success' | 'failure';

/**
 * Sidecar latencies (seconds): a cache hit costs a fraction of a millisecond on top of the API, a
 * provider call tens of milliseconds, a slow upstream seconds. 15 buckets from 250 µs to 10 s keep
 * every histogram at a bounded 18 series (buckets, +Inf, sum, count) per label set.
 */
export const LATENCY_BUCKETS_S = [0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface Metrics {
  readonly registry: Registry;
  // Recorded on every request: the hot-path implementations (hot-metrics.ts).
  readonly requests: HotCounter<'outcome' | 'provider'>;
  readonly requestDuration: HotHistogram<'outcome'>;
  readonly cacheLookups: HotCounter<'result'>;
  readonly upstreamDuration: HotHistogram<'status_class'>;
  // Recorded per provider call, reload or breaker change: prom-client's own.
  readonly introspections: Counter<'provider' | 'result'>;
  readonly introspectionDuration: Histogram<'provider'>;
  readonly cacheEntries: Gauge;
  readonly configReloads: Counter<'result'>;
  readonly circuitOpen: Gauge<'provider'>;
  // JWT access tokens verified locally, and the key fetches they need.
  readonly jwtVerifications: Counter<'provider' | 'result'>;
  readonly jwksFetches: Counter<'provider' | 'result'>;
  /** Shared-cache operations that failed: timeouts, connection errors, unreadable entries. */
  readonly sharedCacheErrors: Counter<'operation'>;
  /** Shared-cache operations not attempted: disconnected, or paused after failures (backoff). */
  readonly sharedCacheSkipped: Counter<'operation'>;
}

export interface MetricsOptions {
  /** Reads the cache's size when scraped, so the hot path never updates a gauge. */
  cacheSize?: () => number;
  /** Node process metrics (prefix `tollgate_`); default true. */
  processMetrics?: boolean;
  /**
   * With `cache.shared`: 1 while Redis is connected and asked, 0 while disconnected or paused.
   * Read when scraped; without a shared cache the gauge is not exported.
   */
  sharedCacheUp?: () => number;
}

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  const registers = [registry];
  const cacheSize = options.cacheSize;
  const metrics: Metrics = {
    registry,
    requests: new HotCounter({
      name: 'tollgate_requests_total',
      help: 'Requests handled, by outcome and by the provider that vouched (none where no provider was chosen)',
      labelNames: ['outcome', 'provider'],
      registry,
    }),
    requestDuration: new HotHistogram({
      name: 'tollgate_request_duration_seconds',
      help: 'Time from request to response headers sent, by outcome',
      labelNames: ['outcome'],
      buckets: LATENCY_BUCKETS_S,
      registry,
    }),
    introspections: new Counter({
      name: 'tollgate_introspection_requests_total',
      help: 'Introspection calls made to providers, by result',
      labelNames: ['provider', 'result'],
      registers,
    }),
    introspectionDuration: new Histogram({
      name: 'tollgate_introspection_duration_seconds',
      help: 'Duration of introspection calls',
      labelNames: ['provider'],
      buckets: LATENCY_BUCKETS_S,
      registers,
    }),
    cacheLookups: new HotCounter({
      name: 'tollgate_cache_lookups_total',
      help: 'Cache lookups, one per request that needs an answer',
      labelNames: ['result'],
      registry,
    }),
    cacheEntries: new Gauge({
      name: 'tollgate_cache_entries',
      help: 'Introspection answers held in the cache',
      registers,
      collect() {
        if (cacheSize) this.set(cacheSize());
      },
    }),
    upstreamDuration: new HotHistogram({
      name: 'tollgate_upstream_duration_seconds',
      help: 'Time until the upstream answered with headers, by status class',
      labelNames: ['status_class'],
      buckets: LATENCY_BUCKETS_S,
      registry,
    }),
    configReloads: new Counter({
      name: 'tollgate_config_reloads_total',
      help: 'Provider configuration reloads, by result',
      labelNames: ['result'],
      registers,
    }),
    circuitOpen: new Gauge({
      name: 'tollgate_provider_circuit_open',
      help: "1 while a provider's circuit breaker is open",
      labelNames: ['provider'],
      registers,
    }),
    jwtVerifications: new Counter({
      name: 'tollgate_jwt_verifications_total',
      help: 'JWT access tokens verified locally with the provider keys (cache misses only), by result',
      labelNames: ['provider', 'result'],
      registers,
    }),
    jwksFetches: new Counter({
      name: 'tollgate_jwks_fetches_total',
      help: "Fetches of a provider's JWK Set, by result",
      labelNames: ['provider', 'result'],
      registers,
    }),
    sharedCacheErrors: new Counter({
      name: 'tollgate_shared_cache_errors_total',
      help: 'Shared cache operations that failed (timeouts, connection errors, unreadable entries), by operation',
      labelNames: ['operation'],
      registers,
    }),
    sharedCacheSkipped: new Counter({
      name: 'tollgate_shared_cache_skipped_total',
      help: 'Shared cache operations not attempted (disconnected, or paused after failures), by operation',
      labelNames: ['operation'],
      registers,
    }),
  };
  const sharedCacheUp = options.sharedCacheUp;
  if (sharedCacheUp) {
    new Gauge({
      name: 'tollgate_shared_cache_up',
      help: '1 while the shared cache is connected and asked; 0 while disconnected or paused after failures',
      registers,
      collect() {
        this.set(sharedCacheUp());
      },
    });
    for (const operation of ['read', 'write', 'lock'] satisfies SharedCacheOperation[]) {
      metrics.sharedCacheErrors.inc({ operation }, 0);
      metrics.sharedCacheSkipped.inc({ operation }, 0);
    }
  }
  // Closed label sets start at 0, so rate() and absent-series alerts work before the first event.
  for (const result of ['hit', 'miss', 'coalesced', 'stale', 'shared_hit'] satisfies CacheResult[])
    metrics.cacheLookups.labels(result);
  for (const result of ['success', 'failure'] satisfies ReloadResult[]) metrics.configReloads.inc({ result }, 0);
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'tollgate_' });
  return metrics;
}

export type { Outcome };
