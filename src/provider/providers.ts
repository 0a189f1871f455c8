/**
 * One provider: discovery of its metadata (OIDC, then RFC 8414), retried with backoff while its
 * issuer is down, and what it vouches for about a token: a JWT access token verified locally with
 * its keys (jwt.ts, jwks.ts), or the introspection call through openid-client (SPEC §3.4, §5, §9).
 */
import * as oidc from 'openid-client';
import { systemClock, type Clock } from '../clock.js';
import { TollgateError } from '../errors.js';
import type { Logger } from '../observability/log.js';
import type { Metrics } from '../observability/metrics.js';
import { keyFilesDigest, readProviderKeysOrThrow } from '../config/keys.js';
import type { AuthMethod, ProviderConfig } from '../config/schema.js';
import { createBreaker } from './breaker.js';
import { sameIssuer } from './issuer.js';
import {
  applyAnswerChecks,
  clientAuthFor,
  clientMetadataFor,
  introspectionEndpointOf,
  requireSignedAnswers,
} from './client-auth.js';
import { createLimiter } from './limiter.js';
import { credentialsRejected, isCredentialsRejection, probeCredentials, rejectsCredentials, type ProbeOutcome } from './probe.js';
import { createProviderFetch, ProviderHttpError, type ProviderFetch } from './fetch.js';
import { hasIntrospection } from '../config/jwt-schema.js';
import type { AnswerNeed, Check } from './answer.js';
import { createJwks, type Jwks } from './jwks.js';
import { createJwtVerifier, isJwtShaped, type JwtVerifier } from './jwt.js';

export interface Provider {
  readonly name: string;
  readonly issuer: string;
  readonly audience: readonly string[] | undefined;
  readonly config: ProviderConfig;
  /** The key files as this provider read them (keys.ts keyFilesDigest): a reload rebuilds it when they change. */
  readonly keyFilesDigest: string;
  /** True once the introspection endpoint (and, with jwt, the keys) are known. */
  isReady(): boolean;
  /** Settles when the provider is ready; discovery retries until then (or until close). */
  readonly ready: Promise<void>;
  /**
   * What this provider vouches for about the token — the one question the answer cache asks
   * (cache/answers.ts): a JWT access token verified locally when the provider has `jwt`, else (or
   * also, for `introspection`) RFC 7662 introspection. Rejects with `invalid_token` for a JWT that
   * does not verify or a token the provider has no way to check (no provider call is made), and
   * with `temporarily_unavailable` on any failure to ask.
   */
  fetchAnswer(token: string, need?: AnswerNeed): Promise<Record<string, unknown>>;
  /** How `fetchAnswer` would check this token; null when it has no way to (it refuses it unchecked). */
  checkOf(token: string, need: AnswerNeed): Check | null;
  close(): Promise<void>;
}

export interface ProviderDeps {
  logger: Logger;
  metrics: Metrics;
  /** Measures the circuit breaker's pause and the queue deadline; the system clock by default. */
  clock?: Clock;
  /** Discovery retry: first pause and longest pause (milliseconds). SPEC §5: 1 s doubling to 30 s. */
  retryMs?: { first: number; max: number };
  /** Told of each failed discovery attempt (a reload rejects on the first one); retries go on. */
  onDiscoveryFailure?: (err: unknown) => void;
  /**
   * Runs each discovery attempt through a limit shared by all providers, so a start with 1,000
   * providers does not open 1,000 connections at once. Default: no limit.
   */
  limitDiscovery?: <T>(attempt: () => Promise<T>) => Promise<T>;
  /** Tolerance for a JWT's `exp` and `nbf` (seconds; the configuration's clock_skew_s, default 30). */
  clockSkewS?: number;
  /** JWK Set refresh and least interval between fetches (milliseconds; 10 minutes and 30 s). */
  jwks?: { refreshMs?: number; minIntervalMs?: number };
}

/** Stands in for the client_id openid-client needs of a provider that has no introspection (never sent). */
const NO_CLIENT = 'tollgate-no-introspection';

const unavailable = (description: string, cause?: unknown) =>
  new TollgateError('temporarily_unavailable', description, cause === undefined ? {} : { cause });

export function createProvider(config: ProviderConfig, deps: ProviderDeps): Provider {
  const { logger, metrics } = deps;
  const log = logger.child({ provider: config.name });
  // Key files are read anew for every provider built. The digest first: a file rotated between the
  // two reads leaves a digest older than the keys, and the next reload builds the provider again.
  const keyFiles = keyFilesDigest(config);
  const keys = readProviderKeysOrThrow(config);
  const http: ProviderFetch = createProviderFetch({
    timeoutMs: config.timeout_ms,
    connections: config.max_concurrency,
    tls: keys.tls,
  });
  const clientAuth = clientAuthFor(config, keys);
  const insecure = isInsecure(config);
  const clock = deps.clock ?? systemClock;
  const introspects = hasIntrospection(config);
  /** Set with the configuration, once the keys are known: the JWT verification of a `jwt` provider. */
  let verifyJwt: JwtVerifier | undefined;

  let configuration: oidc.Configuration | undefined;
  let closed = false;
  let retryTimer: NodeJS.Timeout | undefined;
  let resolveReady!: () => void;
  const ready = new Promise<void>((resolve) => (resolveReady = resolve));

  const finish = (c: oidc.Configuration) => {
    configuration = c;
    resolveReady();
  };

  const jwtChecks = {
    valid: metrics.jwtVerifications.labels(config.name, 'valid'),
    invalid: metrics.jwtVerifications.labels(config.name, 'invalid'),
  };
  const jwksFetches = {
    success: metrics.jwksFetches.labels(config.name, 'success'),
    failure: metrics.jwksFetches.labels(config.name, 'failure'),
  };
  /** SPEC §9: a `jwt` provider is ready once its keys are known, fetched with the metadata. */
  const loadKeys = async (c: oidc.Configuration): Promise<JwtVerifier | undefined> => {
    const jwt = config.jwt;
    if (jwt === undefined) return undefined;
    const uri = jwt.jwks_uri ?? c.serverMetadata().jwks_uri;
    if (uri === undefined) throw new Error('the provider metadata has no jwks_uri (set jwt.jwks_uri)');
    // The keys decide what is trusted: fetched over plain HTTP only where the issuer itself is.
    if (!/^https:/i.test(uri) && !insecure && !config.allow_http) throw new Error(`the jwks_uri ${uri} is not https://`);
    let lastFailure = '';
    const jwks: Jwks = createJwks(
      { uri, ...deps.jwks },
      {
        fetch: http.fetch,
        clock,
        onFetch(result, failure) {
          jwksFetches[result].inc();
          if (failure === undefined) return;
          lastFailure = failure;
          // At start the discovery retry logs it; later the last good keys keep serving.
          if (verifyJwt !== undefined)
            log.warn({ jwks_uri: uri, cause: failure }, 'JWKS fetch failed: the last good keys stay in use');
        },
      },
    );
    if (!(await jwks.load())) throw new Error(`the JWKS could not be fetched from ${uri}: ${lastFailure}`);
    return createJwtVerifier(
      { issuer: config.issuer, audience: config.audience ?? [], jwt, clockSkewS: deps.clockSkewS ?? 30 },
      { getKey: jwks.getKey, clock },
    );
  };

  const discoverAll = async () => {
    const { configuration: c, probe } = await discoverAndProbe(config, http, clientAuth, insecure);
    return { c, probe, verifier: await loadKeys(c) };
  };
  const discover = () =>
    deps.limitDiscovery
      ? deps.limitDiscovery(() => (closed ? Promise.reject(new Error('closed')) : discoverAll()))
      : discoverAll();

  const retry = deps.retryMs ?? { first: 1000, max: 30_000 };
  const attempt = (pauseMs: number): void => {
    discover().then(
      ({ c, verifier, probe }) => {
        if (closed) return;
        if (probe?.result === 'unexpected') {
          log.warn(
            { cause: describeFailure(probe.error, config.auth_method) },
            'credential probe answered unexpectedly; readiness not held back',
          );
        }
        verifyJwt = verifier;
        finish(c);
        log.info(
          { introspection_endpoint: introspects ? introspectionEndpointOf(config, c) : null, jwt: verifier !== undefined },
          'provider ready',
        );
      },
      (err: unknown) => {
        if (closed) return;
        deps.onDiscoveryFailure?.(err);
        if (closed) return;
        if (isCredentialsRejection(err)) {
          // Not ready until the credentials are fixed: every request would get 503 anyway.
          log.error(
            { cause: (err as Error).message, retry_in_ms: pauseMs },
            "provider not ready: it rejects tollgate's credentials",
          );
        } else {
          log.warn({ cause: describeFailure(err, config.auth_method), retry_in_ms: pauseMs }, 'provider discovery failed');
        }
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

  // SPEC §3.4: the breaker refuses first (no queueing behind a provider known to fail), then the
  // limiter bounds the calls in flight. A refusal by either makes no call, so it is not counted as
  // an introspection request; the request itself is counted as provider_unavailable.
  const limiter = createLimiter({ maxConcurrency: config.max_concurrency, queueTimeoutMs: config.queue_timeout_ms }, { clock });
  const circuitOpen = metrics.circuitOpen.labels(config.name);
  circuitOpen.set(0);
  const breaker = createBreaker(
    { failures: config.circuit_breaker.failures, maxPauseS: config.circuit_breaker.max_pause_s },
    clock,
    {
      onOpen(pauseMs, failures) {
        circuitOpen.set(1);
        log.warn({ pause_ms: pauseMs, consecutive_failures: failures }, 'circuit breaker open: introspection calls paused');
      },
      onClose() {
        circuitOpen.set(0);
        log.info('circuit breaker closed: the provider answers again');
      },
    },
  );

  const call = async (c: oidc.Configuration, token: string): Promise<Record<string, unknown>> => {
    const stop = duration.startTimer();
    try {
      const claims = (await oidc.tokenIntrospection(c, token, { token_type_hint: 'access_token' })) as Record<string, unknown>;
      (claims.active === true ? counted.active : counted.inactive).inc();
      return claims;
    } catch (err) {
      counted.error.inc();
      // A provider's error text may echo the token it was asked about.
      const cause = withoutToken(describeFailure(err, config.auth_method), token, config.client_secret);
      if (rejectsCredentials(err)) log.error({ cause }, 'introspection failed: configuration error');
      else log.warn({ cause }, 'introspection failed');
      throw unavailable('the provider could not be asked', err);
    } finally {
      stop();
    }
  };

  /** A refused JWT is counted and refused here: no provider call, no breaker, never cached. */
  const verified = async (verify: JwtVerifier, token: string): Promise<Record<string, unknown>> => {
    try {
      const claims = await verify(token);
      jwtChecks.valid.inc();
      return claims;
    } catch (err) {
      jwtChecks.invalid.inc();
      throw err;
    }
  };

  const introspect = async (c: oidc.Configuration, token: string): Promise<Record<string, unknown>> => {
    const ticket = breaker.admit();
    let called = false;
    try {
      const claims = await limiter.run(() => {
        called = true;
        return call(c, token);
      });
      ticket.success();
      return claims;
    } catch (err) {
      // No slot in time: the provider was not asked, so this says nothing about its health.
      if (called) ticket.failure();
      else ticket.cancel();
      throw err;
    }
  };

  const shapedForJwt = (token: string) => config.jwt !== undefined && isJwtShaped(token);

  return {
    name: config.name,
    issuer: config.issuer,
    audience: config.audience,
    config,
    keyFilesDigest: keyFiles,
    isReady: () => configuration !== undefined,
    ready,
    async fetchAnswer(token: string, need: AnswerNeed = 'any'): Promise<Record<string, unknown>> {
      const c = configuration;
      if (c === undefined) throw unavailable('the provider is not ready yet');
      // SPEC §9: a JWT-shaped token of a jwt provider must verify first, whatever the route needs.
      if (verifyJwt !== undefined && isJwtShaped(token)) {
        const claims = await verified(verifyJwt, token);
        if (need === 'any') return claims;
      }
      if (!introspects) throw new TollgateError('invalid_token', 'the provider of this token has no introspection');
      return introspect(c, token);
    },
    checkOf: (token, need) => (need === 'any' && shapedForJwt(token) ? 'jwt' : introspects ? 'introspection' : null),
    async close() {
      closed = true;
      metrics.circuitOpen.remove(config.name);
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
  const clientMetadata = clientMetadataFor(config);
  const clientId = config.client_id ?? NO_CLIENT;
  const introspects = hasIntrospection(config);
  // Discovery is skipped only when every endpoint tollgate needs is configured.
  const jwksUri = config.jwt === undefined ? undefined : (config.jwt.jwks_uri ?? null);
  if ((!introspects || config.introspection_endpoint !== undefined) && jwksUri !== null) {
    return new oidc.Configuration(
      {
        issuer: config.issuer,
        ...(config.introspection_endpoint === undefined ? {} : { introspection_endpoint: config.introspection_endpoint }),
        ...(jwksUri === undefined ? {} : { jwks_uri: jwksUri }),
      },
      clientId,
      clientMetadata,
      clientAuth,
    );
  }
  const options = (algorithm: 'oidc' | 'oauth2'): oidc.DiscoveryRequestOptions => ({
    algorithm,
    [oidc.customFetch]: http.fetch,
    ...(insecure ? { execute: [oidc.allowInsecureRequests] } : {}),
  });
  let found: oidc.Configuration;
  try {
    found = await oidc.discovery(metadataUrl(config.issuer, 'oidc'), clientId, clientMetadata, clientAuth, options('oidc'));
  } catch (oidcError) {
    // Plain OAuth 2.0 servers publish RFC 8414 metadata only.
    found = await oidc
      .discovery(metadataUrl(config.issuer, 'oauth2'), clientId, clientMetadata, clientAuth, options('oauth2'))
      .catch(() => {
        throw oidcError;
      });
  }
  const discovered = found.serverMetadata().issuer;
  if (!sameIssuer(discovered, config.issuer)) {
    throw new Error(`the provider's metadata names issuer ${discovered}, not the configured ${config.issuer}`);
  }
  if (introspects && config.introspection_endpoint === undefined && found.serverMetadata().introspection_endpoint === undefined) {
    throw new Error('the provider metadata has no introspection_endpoint');
  }
  // Discovered for the keys only: the configured introspection endpoint still wins.
  if (config.introspection_endpoint !== undefined) {
    return new oidc.Configuration(
      { ...(found.serverMetadata() as unknown as oidc.ServerMetadata), introspection_endpoint: config.introspection_endpoint },
      clientId,
      clientMetadata,
      clientAuth,
    );
  }
  return found;
}

/**
 * The metadata document's URL, built as openid-client builds it (OIDC Discovery §4: appended to
 * the issuer; RFC 8414 §3.1: inserted before its path). Given a `/.well-known/` URL, openid-client
 * fetches it without comparing the issuer itself, so the comparison above can forgive one trailing
 * `/` (issuer.ts) and say both values when they differ otherwise.
 */
export function metadataUrl(issuer: string, algorithm: 'oidc' | 'oauth2'): URL {
  const url = new URL(issuer);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  url.pathname =
    algorithm === 'oidc' ? `${path}/.well-known/openid-configuration` : `/.well-known/oauth-authorization-server${path}`;
  return url;
}

/**
 * The provider's configuration, made ready for introspection calls, and the credential probe's
 * outcome (probe.ts). A refused probe fails the discovery: the provider stays unready and retries.
 */
async function discoverAndProbe(
  config: ProviderConfig,
  http: ProviderFetch,
  clientAuth: oidc.ClientAuth,
  insecure: boolean,
): Promise<{ configuration: oidc.Configuration; probe: ProbeOutcome | undefined }> {
  const c = await discoverConfiguration(config, http, clientAuth, insecure);
  c[oidc.customFetch] = guardedFetch(config, http);
  // The provider fetch bounds each exchange itself (`timeout_ms`, one timer for head and body).
  // openid-client's own timeout would add an AbortSignal.timeout() to every introspection call,
  // with its timer and listener: about 2 % of a cache miss's CPU time (issue 6, scenario c).
  c.timeout = 0;
  if (insecure) oidc.allowInsecureRequests(c);
  applyAnswerChecks(config, c);
  // A provider without introspection (jwt only) has no credentials to probe.
  if (!hasIntrospection(config)) return { configuration: c, probe: undefined };
  const probe = await probeCredentials(c);
  if (probe.result === 'rejected') {
    throw credentialsRejected(`credential probe: ${describeFailure(probe.error, config.auth_method)}`);
  }
  return { configuration: c, probe };
}

/**
 * Discovers once, for `check-config --discover`: the introspection endpoint and what the
 * credential probe found, or a failure said plainly (a refused probe is one).
 */
export async function discoverOnce(config: ProviderConfig): Promise<{ endpoint: string; probe: string }> {
  const keys = readProviderKeysOrThrow(config);
  const http = createProviderFetch({ timeoutMs: config.timeout_ms, connections: 1, tls: keys.tls });
  try {
    const { configuration, probe } = await discoverAndProbe(config, http, clientAuthFor(config, keys), isInsecure(config));
    const introspection = hasIntrospection(config) ? introspectionEndpointOf(config, configuration)! : 'none';
    let endpoint = introspection;
    if (config.jwt !== undefined) {
      const jwksUri = config.jwt.jwks_uri ?? configuration.serverMetadata().jwks_uri;
      if (jwksUri === undefined) throw new Error('the provider metadata has no jwks_uri (set jwt.jwks_uri)');
      endpoint = `${introspection} (JWT keys at ${jwksUri})`;
    }
    return {
      endpoint,
      probe:
        probe === undefined
          ? 'no introspection, no credentials to probe'
          : probe.result === 'accepted'
            ? 'credentials accepted'
            : `credential probe answered unexpectedly: ${describeFailure(probe.error, config.auth_method)}`,
    };
  } finally {
    await http.close();
  }
}

function isInsecure(config: ProviderConfig): boolean {
  return new URL(config.issuer).protocol === 'http:' || config.introspection_endpoint?.startsWith('http:') === true;
}

/** The provider's fetch, refusing unsigned introspection answers where signed ones are required. */
function guardedFetch(config: ProviderConfig, http: ProviderFetch): oidc.CustomFetch {
  return config.introspection_response === 'jwt' ? requireSignedAnswers(http.fetch) : http.fetch;
}

/**
 * A provider's error text is its own free text and may echo what it was sent (in
 * `error_description`, say): every copy of the token, raw or percent-encoded, is masked, and so are
 * tollgate's own credentials: the client secret the same way, and any HTTP Basic credentials
 * (whatever encoding the client library gave the id and secret inside them).
 */
export function withoutToken(text: string, token: string, clientSecret?: string): string {
  let out = text.replace(BASIC_CREDENTIALS, 'Basic [credentials]');
  for (const [secret, mask] of [
    [token, '[token]'],
    [clientSecret ?? '', '[secret]'],
  ] as const) {
    if (secret === '') continue;
    out = out.split(secret).join(mask);
    const encoded = encodeURIComponent(secret);
    if (encoded !== secret) out = out.split(encoded).join(mask);
  }
  return out;
}

/** RFC 7617 credentials as an Authorization header carries them: `Basic` and base64. */
const BASIC_CREDENTIALS = /\bBasic +[A-Za-z0-9+/]+=*/gi;

/**
 * A failure, said so an operator can act on it: what went wrong and the provider's own error code,
 * never a request, a token or a whole answer.
 */
export function describeFailure(err: unknown, authMethod?: AuthMethod): string {
  if (err instanceof ProviderHttpError || isCredentialsRejection(err)) return (err as Error).message;
  if (!(err instanceof Error)) return String(err);
  const e = err as Error & { status?: number; error?: string; error_description?: string; code?: string; cause?: unknown };
  if (e instanceof oidc.ResponseBodyError || e instanceof oidc.WWWAuthenticateChallengeError) {
    const status = e.status;
    const body = e instanceof oidc.ResponseBodyError ? e : { error: undefined, error_description: undefined };
    const what = body.error === undefined ? '' : ` ${body.error}${body.error_description ? ` (${body.error_description})` : ''}`;
    return `HTTP ${status}${what}${whatToCheck(status, authMethod)}`;
  }
  const cause = e.cause as { status?: unknown; code?: unknown; message?: unknown } | undefined;
  // An error status whose body is no JSON error (Glewlwyd's bare 401): openid-client reports the
  // body's content type, but the status is what the operator must hear.
  const status = typeof cause?.status === 'number' ? cause.status : undefined;
  if (
    status !== undefined &&
    (e.code === 'OAUTH_RESPONSE_IS_NOT_CONFORM' || (e.code === 'OAUTH_RESPONSE_IS_NOT_JSON' && status !== 200))
  )
    return `unexpected HTTP status ${status}${whatToCheck(status, authMethod)}`;
  if (cause instanceof ProviderHttpError) return cause.message;
  // openid-client's own checks of the answer (not JSON, `active` not a boolean…) say what failed.
  if (typeof cause?.code === 'string' && cause.code.startsWith('OAUTH_') && typeof cause.message === 'string')
    return `${e.message}: ${cause.message} (${cause.code})`;
  const causeCode = typeof cause?.code === 'string' ? ` (${cause.code})` : '';
  // openid-client's own checks (a signed answer's signature, alg, iss, aud) say what failed in the
  // cause's message, a fixed sentence of theirs that never quotes the answer.
  const oauthCheck = typeof cause?.code === 'string' && cause.code.startsWith('OAUTH_') && cause.message !== e.message;
  const causeMessage = cause instanceof Error && (causeCode === '' || oauthCheck) ? `: ${cause.message}` : '';
  const tlsHint =
    typeof cause?.code === 'string' && UNTRUSTED_CERTIFICATE.has(cause.code)
      ? ": the provider's TLS certificate is not trusted (a private CA goes in the provider's ca_file)"
      : '';
  return `${e.message}${causeCode}${causeMessage}${tlsHint}`;
}

/** What an operator should check after an error status from the provider. */
function whatToCheck(status: number, authMethod: AuthMethod | undefined): string {
  if (status === 401 || status === 403)
    return `: the provider rejected tollgate's client credentials; check client_id and ${CREDENTIALS[authMethod ?? 'client_secret_basic']}`;
  if (status === 404 || status === 405)
    return ': check the introspection endpoint (introspection_endpoint, or the issuer whose metadata names it)';
  if (status >= 500) return ': the provider failed; its own logs say why';
  return '';
}

/** What to check when a provider rejects tollgate's credentials, per auth_method. */
const CREDENTIALS: Record<AuthMethod, string> = {
  client_secret_basic: 'the secret',
  client_secret_post: 'the secret',
  private_key_jwt: 'that the provider has the public key of private_key_file (and its kid)',
  tls_client_auth: 'the client certificate (its subject, and its CA at the provider)',
  self_signed_tls_client_auth: 'that the provider has the certificate of tls_cert_file',
  none: 'that the provider lets this client introspect without credentials',
};

/** node:tls verification codes that mean "this server's certificate does not chain to a trusted CA". */
const UNTRUSTED_CERTIFICATE = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
]);
