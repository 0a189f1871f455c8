/**
 * One provider: discovery of its metadata (OIDC, then RFC 8414), retried with backoff while its
 * issuer is down, and the introspection call through openid-client (SPEC §3.4, §5).
 */
import * as oidc from 'openid-client';
import { TollgateError } from '../errors.js';
import type { Logger } from '../observability/log.js';
import type { Metrics } from '../observability/metrics.js';
import type { ProviderConfig } from '../config/schema.js';
import { createProviderFetch, ProviderHttpError, type ProviderFetch } from './provider-fetch.js';

export interface Provider {
  readonly name: string;
  readonly issuer: string;
  readonly audience: readonly string[] | undefined;
  readonly config: ProviderConfig;
  /** True once the introspection endpoint is known. */
  isReady(): boolean;
  /** Settles when the provider is ready; discovery retries until then (or until close). */
  readonly ready: Promise<void>;
  /** RFC 7662 introspection. Rejects with `temporarily_unavailable` on any failure. */
  introspect(token: string): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

export interface ProviderDeps {
  logger: Logger;
  metrics: Metrics;
  /** Discovery retry: first pause and longest pause (milliseconds). SPEC §5: 1 s doubling to 30 s. */
  retryMs?: { first: number; max: number };
  /** Told of each failed discovery attempt (a reload rejects on the first one); retries go on. */
  onDiscoveryFailure?: (err: unknown) => void;
  /**
   * Runs each discovery attempt through a limit shared by all providers, so a start with 1,000
   * providers does not open 1,000 connections at once. Default: no limit.
   */
  limitDiscovery?: <T>(attempt: () => Promise<T>) => Promise<T>;
}

const unavailable = (description: string, cause?: unknown) =>
  new TollgateError('temporarily_unavailable', description, cause === undefined ? {} : { cause });

export function createProvider(config: ProviderConfig, deps: ProviderDeps): Provider {
  const { logger, metrics } = deps;
  const log = logger.child({ provider: config.name });
  const http: ProviderFetch = createProviderFetch({ timeoutMs: config.timeout_ms, connections: config.max_concurrency });
  const clientAuth = clientAuthFor(config);
  const insecure = isInsecure(config);

  let configuration: oidc.Configuration | undefined;
  let closed = false;
  let retryTimer: NodeJS.Timeout | undefined;
  let resolveReady!: () => void;
  const ready = new Promise<void>((resolve) => (resolveReady = resolve));

  const finish = (c: oidc.Configuration) => {
    c[oidc.customFetch] = http.fetch;
    if (insecure) oidc.allowInsecureRequests(c);
    configuration = c;
    resolveReady();
  };

  const discover = () =>
    deps.limitDiscovery
      ? deps.limitDiscovery(() =>
          closed ? Promise.reject(new Error('closed')) : discoverConfiguration(config, http, clientAuth, insecure),
        )
      : discoverConfiguration(config, http, clientAuth, insecure);

  const retry = deps.retryMs ?? { first: 1000, max: 30_000 };
  const attempt = (pauseMs: number): void => {
    discover().then(
      (c) => {
        if (closed) return;
        finish(c);
        log.info({ introspection_endpoint: c.serverMetadata().introspection_endpoint }, 'provider ready');
      },
      (err: unknown) => {
        if (closed) return;
        deps.onDiscoveryFailure?.(err);
        if (closed) return;
        log.warn({ cause: describeFailure(err), retry_in_ms: pauseMs }, 'provider discovery failed');
        retryTimer = setTimeout(() => attempt(Math.min(pauseMs * 2, retry.max)), pauseMs);
        retryTimer.unref();
      },
    );
  };
  attempt(retry.first);

  const introspections = metrics.introspections;
  const duration = metrics.introspectionDuration.labels(config.name);
  const counted = {
    active: introspections.labels(config.name, 'active'),
    inactive: introspections.labels(config.name, 'inactive'),
    error: introspections.labels(config.name, 'error'),
  };

  return {
    name: config.name,
    issuer: config.issuer,
    audience: config.audience,
    config,
    isReady: () => configuration !== undefined,
    ready,
    async introspect(token: string): Promise<Record<string, unknown>> {
      if (configuration === undefined) throw unavailable('the provider is not ready yet');
      const stop = duration.startTimer();
      try {
        const claims = (await oidc.tokenIntrospection(configuration, token, { token_type_hint: 'access_token' })) as Record<
          string,
          unknown
        >;
        (claims.active === true ? counted.active : counted.inactive).inc();
        return claims;
      } catch (err) {
        counted.error.inc();
        log.warn({ cause: describeFailure(err) }, 'introspection failed');
        throw unavailable('the provider could not be asked', err);
      } finally {
        stop();
      }
    },
    async close() {
      closed = true;
      clearTimeout(retryTimer);
      await http.close();
    },
  };
}

/**
 * The provider's metadata as an openid-client Configuration: from its explicit endpoint, or
 * discovered (OIDC discovery first, then RFC 8414 for plain OAuth 2.0 servers).
 */
async function discoverConfiguration(
  config: ProviderConfig,
  http: ProviderFetch,
  clientAuth: oidc.ClientAuth,
  insecure: boolean,
): Promise<oidc.Configuration> {
  const clientMetadata = { client_secret: config.client_secret };
  if (config.introspection_endpoint !== undefined) {
    return new oidc.Configuration(
      { issuer: config.issuer, introspection_endpoint: config.introspection_endpoint },
      config.client_id,
      clientMetadata,
      clientAuth,
    );
  }
  const options = (algorithm: 'oidc' | 'oauth2'): oidc.DiscoveryRequestOptions => ({
    algorithm,
    [oidc.customFetch]: http.fetch,
    ...(insecure ? { execute: [oidc.allowInsecureRequests] } : {}),
  });
  const issuer = new URL(config.issuer);
  let found: oidc.Configuration;
  try {
    found = await oidc.discovery(issuer, config.client_id, clientMetadata, clientAuth, options('oidc'));
  } catch (oidcError) {
    // Plain OAuth 2.0 servers publish RFC 8414 metadata only.
    found = await oidc.discovery(issuer, config.client_id, clientMetadata, clientAuth, options('oauth2')).catch(() => {
      throw oidcError;
    });
  }
  if (found.serverMetadata().introspection_endpoint === undefined) {
    throw new Error('the provider metadata has no introspection_endpoint');
  }
  return found;
}

/** Discovers once, for `check-config --discover`: the introspection endpoint, or a failure said plainly. */
export async function discoverOnce(config: ProviderConfig): Promise<string> {
  const http = createProviderFetch({ timeoutMs: config.timeout_ms, connections: 1 });
  try {
    const c = await discoverConfiguration(config, http, clientAuthFor(config), isInsecure(config));
    return c.serverMetadata().introspection_endpoint!;
  } finally {
    await http.close();
  }
}

function isInsecure(config: ProviderConfig): boolean {
  return new URL(config.issuer).protocol === 'http:' || config.introspection_endpoint?.startsWith('http:') === true;
}

function clientAuthFor(config: ProviderConfig): oidc.ClientAuth {
  switch (config.auth_method) {
    case 'client_secret_basic':
      return oidc.ClientSecretBasic(config.client_secret);
    case 'client_secret_post':
      return oidc.ClientSecretPost(config.client_secret);
    case 'none':
      return oidc.None();
    default:
      throw new Error(`auth_method ${config.auth_method} is not supported yet`);
  }
}

/**
 * A failure, said so an operator can act on it: what went wrong and the provider's own error code,
 * never a request, a token or a whole answer.
 */
export function describeFailure(err: unknown): string {
  if (err instanceof ProviderHttpError) return err.message;
  if (!(err instanceof Error)) return String(err);
  const e = err as Error & { status?: number; error?: string; error_description?: string; code?: string; cause?: unknown };
  if (e instanceof oidc.ResponseBodyError || e instanceof oidc.WWWAuthenticateChallengeError) {
    const status = e.status;
    const body = e instanceof oidc.ResponseBodyError ? e : { error: undefined, error_description: undefined };
    const what = body.error === undefined ? '' : ` ${body.error}${body.error_description ? ` (${body.error_description})` : ''}`;
    const hint =
      status === 401 || status === 403
        ? ": the provider rejected tollgate's client credentials; check client_id and the secret"
        : '';
    return `HTTP ${status}${what}${hint}`;
  }
  const cause = e.cause as { status?: unknown; code?: unknown; message?: unknown } | undefined;
  if (e.code === 'OAUTH_RESPONSE_IS_NOT_CONFORM' && typeof cause?.status === 'number')
    return `unexpected HTTP status ${cause.status}`;
  if (cause instanceof ProviderHttpError) return cause.message;
  const causeCode = typeof cause?.code === 'string' ? ` (${cause.code})` : '';
  const causeMessage = cause instanceof Error && causeCode === '' ? `: ${cause.message}` : '';
  return `${e.message}${causeCode}${causeMessage}`;
}
