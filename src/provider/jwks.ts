/**
 * The signing keys of one provider (its JWK Set, RFC 7517 §5), fetched through that provider's own
 * HTTP client (fetch.ts: its CA, mutual TLS, deadline, 64 KiB cap, no redirects).
 *
 * Why not jose's createRemoteJWKSet: its clock is Date.now() and it forgets the keys when a
 * refresh fails. Here the clock is injected (tests move time instead of sleeping), the last good
 * keys always stay, and a fetch — whatever caused it — is never followed by another within
 * `minIntervalMs`, so a flood of tokens with made-up `kid`s costs the provider one call per 30 s.
 * Key selection itself (by `kid`, else the only key of the algorithm's type) is jose's
 * createLocalJWKSet.
 */
import { createLocalJWKSet, errors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import type { CustomFetch } from 'openid-client';
import type { Clock } from '../clock.js';
import type { JwksFetchResult } from '../observability/metrics.js';

export interface JwksOptions {
  /** Where the provider publishes its keys. */
  readonly uri: string;
  /** Keys in use are refetched in the background after this long (milliseconds; default 10 minutes). */
  readonly refreshMs?: number;
  /** Least time between two fetches, whatever caused them (milliseconds; default 30 s). */
  readonly minIntervalMs?: number;
}

export interface JwksDeps {
  /** The provider's HTTP client. */
  readonly fetch: CustomFetch;
  readonly clock: Clock;
  /** Told of every fetch (the metric), and of a failure's reason (the log). */
  onFetch(result: JwksFetchResult, failure?: string): void;
}

export interface Jwks {
  /** Fetches the keys now (start-up); resolves true once keys are held, false when the fetch failed. */
  load(): Promise<boolean>;
  /** True once some keys were fetched; they are kept through failed refreshes. */
  hasKeys(): boolean;
  /**
   * The key for a token's protected header (jose's resolver). An unknown `kid` fetches the set
   * again (one call shared by all, and never within `minIntervalMs` of the previous one), then
   * fails if still unknown.
   */
  readonly getKey: JWTVerifyGetKey;
}

export const JWKS_REFRESH_MS = 10 * 60_000;
export const JWKS_MIN_INTERVAL_MS = 30_000;

export function createJwks(options: JwksOptions, deps: JwksDeps): Jwks {
  const refreshMs = options.refreshMs ?? JWKS_REFRESH_MS;
  const minIntervalMs = options.minIntervalMs ?? JWKS_MIN_INTERVAL_MS;
  const { clock } = deps;
  let keys: ReturnType<typeof createLocalJWKSet> | undefined;
  let lastFetchMs = -Infinity;
  let lastSuccessMs = -Infinity;
  let inflight: Promise<boolean> | undefined;

  const fetchNow = (): Promise<boolean> => {
    if (inflight !== undefined) return inflight;
    lastFetchMs = clock.now();
    inflight = fetchKeySet(options.uri, deps.fetch)
      .then(
        (set) => {
          keys = set;
          lastSuccessMs = clock.now();
          deps.onFetch('success');
          return true;
        },
        (err: unknown) => {
          deps.onFetch('failure', err instanceof Error ? err.message : String(err));
          return false;
        },
      )
      .finally(() => {
        inflight = undefined;
      });
    return inflight;
  };

  /** A fetch unless one happened too recently; joins the one in flight. */
  const refetch = (): Promise<boolean> => {
    if (inflight !== undefined) return inflight;
    if (clock.now() - lastFetchMs < minIntervalMs) return Promise.resolve(false);
    return fetchNow();
  };

  return {
    load: fetchNow,
    hasKeys: () => keys !== undefined,
    async getKey(header, token) {
      const current = keys;
      if (current === undefined) throw new errors.JWKSNoMatchingKey();
      if (clock.now() - lastSuccessMs >= refreshMs) void refetch();
      try {
        return await current(header, token);
      } catch (err) {
        if (!(err instanceof errors.JWKSNoMatchingKey)) throw err;
        // A key rotated in since the last fetch, or a made-up kid: ask once, shared and rate-limited.
        if (!(await refetch()) || keys === current) throw err;
        return keys!(header, token);
      }
    },
  };
}

/** One GET of the key set; anything but a 200 with a JWK Set is a failure (the old keys stay). */
async function fetchKeySet(uri: string, fetch: CustomFetch): Promise<ReturnType<typeof createLocalJWKSet>> {
  const res = await fetch(uri, {
    method: 'GET',
    headers: { accept: 'application/json, application/jwk-set+json' },
    redirect: 'manual',
    body: undefined,
  });
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new Error(`the JWKS endpoint answered HTTP ${res.status}`);
  }
  let set: unknown;
  try {
    set = await res.json();
  } catch {
    throw new Error('the JWKS endpoint answered something that is not JSON');
  }
  try {
    // Refuses anything that is not {"keys": [objects…]}.
    return createLocalJWKSet(set as JSONWebKeySet);
  } catch {
    throw new Error('the JWKS endpoint answered something that is not a JWK Set');
  }
}
