/**
 * The request pipeline of SPEC §3, in order. This is the only file that calls the steps; each step
 * returns a value or throws a TollgateError, and every refusal is answered and logged here, once.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isTollgateError, renderError, TollgateError, type Outcome } from '../errors.js';
import type { Clock } from '../clock.js';
import { createAccessLogger, type Logger } from '../observability/log.js';
import { cachedLabels, cachedLabels2, type CacheResult, type Metrics } from '../observability/metrics.js';
import type { Runtime } from '../runtime.js';
import type { Answer } from './answer.js';
import type { Upstream } from './forward.js';
import { buildUpstreamHeaders } from './headers.js';
import type { IntrospectionCache } from './introspect.js';
import { checkPolicy } from './policy.js';
import { hostOf, matchRoute, normalizeTarget } from './routes.js';
import { selectProvider } from './select.js';
import { extractToken, queryWithoutToken } from './token.js';

export interface HandlerDeps {
  /** The current runtime; read once per request. */
  runtime(): Runtime;
  cache: IntrospectionCache;
  upstream: Upstream;
  clock: Clock;
  metrics: Metrics;
  logger: Logger;
}

/** The access line of SPEC §6: every field at the top level, null where it does not apply. */
interface AccessLine {
  method: string | undefined;
  path: string | null;
  route: number | null;
  status: number;
  outcome: Outcome;
  code: string | null;
  provider: string | null;
  cache: CacheResult | null;
  duration_ms: number;
  upstream_ms: number | null;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, expectContinue?: boolean) => Promise<void>;

export function createHandler(deps: HandlerDeps): Handler {
  const { cache, upstream, clock, metrics, logger } = deps;
  const accessLog = createAccessLogger(logger);
  const requestsBy = cachedLabels2(metrics.requests);
  const requestDurationBy = cachedLabels(metrics.requestDuration);
  const upstreamDurationBy = cachedLabels(metrics.upstreamDuration);

  const authorize = async (
    req: IncomingMessage,
    runtime: Runtime,
    line: AccessLine,
    query: string,
    route: Runtime['fallback'],
  ) => {
    const extracted = extractToken(req, runtime.tokenSources, query);
    if (extracted === undefined) throw new TollgateError('missing_token', 'the request carries no bearer token');
    const named = runtime.providerHeader === null ? undefined : (req.headers[runtime.providerHeader] as string | undefined);
    const provider = selectProvider(route.providers, extracted.token, named);
    line.provider = provider.name;
    const { answer, cache: result } = await cache.lookup(provider, extracted.token);
    line.cache = result;
    checkPolicy(answer, provider, route, clock.now() / 1000, runtime.config.clock_skew_s);
    return { answer, source: extracted.source };
  };

  return async function handle(req, res, expectContinue = false) {
    const started = performance.now();
    const runtime = deps.runtime();
    const line: AccessLine = {
      method: req.method,
      path: null,
      route: null,
      status: 0,
      outcome: 'allowed',
      code: null,
      provider: null,
      cache: null,
      duration_ms: 0,
      upstream_ms: null,
    };
    try {
      const target = normalizeTarget(req.url ?? '');
      line.path = target.path;
      const route = matchRoute(runtime.routes, runtime.fallback, req.method ?? '', hostOf(req.headers.host), target.path);
      line.route = route.index;

      let answer: Answer | null = null;
      let forwardPath = target.path + target.query;
      let tokenCookie: string | undefined;
      if (route.public) {
        line.outcome = 'public';
      } else {
        const authorized = await authorize(req, runtime, line, target.query, route);
        answer = authorized.answer;
        const source = authorized.source;
        if (source.kind === 'query') forwardPath = target.path + queryWithoutToken(target.query);
        else if (source.kind === 'cookie') tokenCookie = source.name;
      }

      const headers = buildUpstreamHeaders(req, runtime.headerPlan, {
        clientAddress: req.socket.remoteAddress,
        answer,
        tokenCookie,
      });
      if (expectContinue) res.writeContinue();
      const result = await upstream.forward(req, res, forwardPath, headers);
      line.status = result.status;
      line.upstream_ms = round(result.upstreamMs);
      upstreamDurationBy(statusClass(result.status)).observe(result.upstreamMs / 1000);
    } catch (err) {
      const refusal = isTollgateError(err) ? err : unexpected(err, logger);
      line.code = refusal.code;
      line.outcome = refusal.kind.outcome;
      line.status = refusal.kind.status;
      if (!res.headersSent) {
        const { status, headers, body } = renderError(refusal);
        // The client still holds a body it was told to wait with: the connection cannot be reused.
        if (expectContinue) headers.connection = 'close';
        res.writeHead(status, headers).end(body);
      }
    } finally {
      const seconds = (performance.now() - started) / 1000;
      line.duration_ms = round(seconds * 1000);
      requestsBy(line.outcome, line.provider ?? 'none').inc();
      requestDurationBy(line.outcome).observe(seconds);
      if (runtime.config.access_log) accessLog.info(line, 'request');
    }
  };
}

/** A bug, not a refusal: logged in full (no token is ever in an error tollgate builds), answered closed. */
function unexpected(err: unknown, logger: Logger): TollgateError {
  logger.error({ err }, 'unexpected error while handling a request');
  return new TollgateError('temporarily_unavailable', 'tollgate could not handle the request', { cause: err });
}

const round = (ms: number) => Math.round(ms * 1000) / 1000;

const STATUS_CLASSES = ['0xx', '1xx', '2xx', '3xx', '4xx', '5xx'];

function statusClass(status: number): string {
  return STATUS_CLASSES[Math.floor(status / 100)] ?? `${Math.floor(status / 100)}xx`;
}
