/**
 * The request pipeline of SPEC §3, in order. This is the only file that calls the steps; each step
 * returns a value or throws a TollgateError, and every refusal is answered and logged here, once.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isTollgateError, TollgateError, type Outcome } from '../errors.js';
import type { Clock } from '../clock.js';
import { createAccessLog, type AccessLine, type Logger } from '../observability/log.js';
import type { Metrics } from '../observability/metrics.js';
import type { Runtime } from '../runtime.js';
import type { Answer } from '../provider/answer.js';
import { CLIENT_CLOSED, type ForwardDone, type ForwardResult, type Upstream } from './forward.js';
import { checkFraming, mustClose } from './framing.js';
import { buildUpstreamHeaders } from './headers.js';
import type { AnswerCache, Lookup } from '../cache/answers.js';
import { checkPolicy } from './policy.js';
import { answerMetadata, type Reply } from './resource-metadata.js';
import { matchRoute, normalizeTarget, requestHost } from './routes.js';
import { selectProvider } from './select.js';
import { extractToken, queryWithoutToken, type TokenSource } from './token.js';

export interface PipelineDeps {
  /** The current runtime; read once per request. */
  runtime(): Runtime;
  cache: AnswerCache;
  clock: Clock;
  metrics: Metrics;
  logger: Logger;
}

export interface HandlerDeps extends PipelineDeps {
  upstream: Upstream;
}

/** What the pipeline decided for an authorised request: where and with which headers it goes. */
export interface Decision {
  /** The normalised path (and query, without a query token), exactly as matched. */
  readonly path: string;
  /** The upstream request's headers: spoofed and hop-by-hop ones removed, identity added. */
  readonly headers: string[];
}

/** How one kind of exchange (a plain request, a WebSocket upgrade) answers the pipeline. */
export interface Exchange {
  /** Sends the authorised request upstream, relays its answer, and calls `done` once. */
  forward(decision: Decision, done: ForwardDone): void;
  /**
   * Writes an answer tollgate gives itself — a refusal (SPEC §4) or the resource metadata —
   * unless the answer has already started.
   */
  respond(reply: Reply): void;
}

/**
 * SPEC §3 steps 1–7 for one request, then `exchange.forward`; every refusal goes through
 * `exchange.respond`, and every request writes one access line. Plain requests and upgrades share
 * it, so an upgrade is authorised exactly like a request.
 */
export type Pipeline = (req: IncomingMessage, exchange: Exchange) => void;

export type Handler = (req: IncomingMessage, res: ServerResponse, expectContinue?: boolean) => void;

export function createPipeline(deps: PipelineDeps): Pipeline {
  const { cache, clock, metrics, logger } = deps;
  const accessLog = createAccessLog(logger);
  const { requests, requestDuration, upstreamDuration } = metrics;

  /**
   * Steps 1–7. Synchronous when the answer is in the cache (the common case, kept free of promise
   * hops); a promise only when a provider must be asked.
   */
  const decide = (req: IncomingMessage, runtime: Runtime, line: AccessLine): Decision | Promise<Decision> => {
    checkFraming(req);
    const target = normalizeTarget(req.url ?? '');
    line.path = target.path;
    const host = requestHost(req.rawHeaders);
    const route = matchRoute(runtime.routes, runtime.fallback, req.method ?? '', host, target.path);
    line.route = route.index;
    const decision = (answer: Answer | null, source: TokenSource | undefined, identityToken?: string): Decision => ({
      path: source?.kind === 'query' ? target.path + queryWithoutToken(target.query) : target.path + target.query,
      headers: buildUpstreamHeaders(req, runtime.headerPlan, {
        clientAddress: req.socket.remoteAddress,
        host,
        answer,
        tokenCookie: source?.kind === 'cookie' ? source.name : undefined,
        identityToken,
      }),
    });
    if (route.public) {
      line.outcome = 'public';
      return decision(null, undefined);
    }

    const extracted = extractToken(req, runtime.tokenSources, target.query);
    if (extracted === undefined) throw new TollgateError('missing_token', 'the request carries no bearer token');
    const named = runtime.providerHeader === null ? undefined : (req.headers[runtime.providerHeader] as string | undefined);
    const provider = selectProvider(route.providers, extracted.token, named);
    line.provider = provider.name;
    const authorized = ({ answer }: Lookup): Decision | Promise<Decision> => {
      const now = clock.now();
      checkPolicy(answer, provider, route, now / 1000, runtime.config.clock_skew_s, runtime.resourceAudience);
      // identity_jwt: a token reused with its answer comes back as is; only a new one is awaited.
      const minted = runtime.identity.minter?.mint(answer, now);
      if (minted instanceof Promise) return minted.then((identityToken) => decision(answer, extracted.source, identityToken));
      return decision(answer, extracted.source, minted);
    };
    // The lookup sets line.cache as it counts it, so a failed lookup is logged as it was counted.
    const found = cache.lookup(provider, extracted.token, line, route.introspect);
    return found instanceof Promise ? found.then(authorized) : authorized(found);
  };

  return function run(req, exchange) {
    const started = performance.now();
    const runtime = deps.runtime();
    const line: AccessLine = {
      method: req.method!, // always set on a request the HTTP server parsed
      path: null,
      route: null,
      status: 0,
      outcome: 'allowed',
      code: null,
      provider: null,
      cache: null,
      check: null,
      duration_ms: 0,
      upstream_ms: null,
    };
    // Callbacks rather than awaits: a cache hit goes from the request to the upstream and back
    // without a promise (issue 6). Each path below ends in `finish` exactly once.
    const finish = () => {
      const seconds = (performance.now() - started) / 1000;
      line.duration_ms = round(seconds * 1000);
      requests.labels(line.outcome, line.provider ?? 'none').inc();
      requestDuration.labels(line.outcome).observe(seconds);
      // Last use of the line: it may be formatted later, when its batch is written (log.ts).
      if (runtime.config.access_log) accessLog(line);
    };
    const refuse = (err: unknown) => {
      const refusal = isTollgateError(err) ? err : unexpected(err, logger);
      line.code = refusal.code;
      line.outcome = refusal.kind.outcome;
      line.status = refusal.kind.status;
      exchange.respond(runtime.render(refusal));
      finish();
    };
    const forwarded = (outcome: ForwardResult | Error) => {
      if (outcome instanceof Error) return refuse(outcome);
      line.status = outcome.status;
      line.upstream_ms = round(outcome.upstreamMs);
      if (outcome.status !== CLIENT_CLOSED) {
        upstreamDuration.labels(statusClass(outcome.status)).observe(outcome.upstreamMs / 1000);
      }
      finish();
    };
    const forward = (decision: Decision) => {
      try {
        exchange.forward(decision, forwarded);
      } catch (err) {
        // A bug before the upstream was asked: forwarded was not called.
        refuse(err);
      }
    };
    // RFC 9728: the resource metadata is tollgate's own answer, before any step of the pipeline.
    const metadata = runtime.resourceMetadata === null ? undefined : answerMetadata(runtime.resourceMetadata, req);
    if (metadata !== undefined) {
      line.path = metadata.path;
      line.status = metadata.reply.status;
      line.outcome = metadata.reply.status === 200 ? 'public' : 'bad_request';
      exchange.respond(metadata.reply);
      return finish();
    }
    let decided: Decision | Promise<Decision>;
    try {
      decided = decide(req, runtime, line);
    } catch (err) {
      return refuse(err);
    }
    if (decided instanceof Promise) decided.then(forward, refuse);
    else forward(decided);
  };
}

export function createHandler(deps: HandlerDeps): Handler {
  const run = createPipeline(deps);
  return (req, res, expectContinue = false) =>
    run(req, {
      forward(decision, done) {
        const go = () => {
          // SPEC §3.8: the client sends its body only once the request is authorised.
          if (expectContinue) res.writeContinue();
          deps.upstream.forward(req, res, decision.path, decision.headers, done);
        };
        // A pipelined request is dispatched by Node while the one before it is still unanswered;
        // it is forwarded only in its turn. If that earlier answer closes the connection (a refused
        // request whose body was never read), its turn never comes and nothing of it goes upstream.
        if (res.socket !== null) return go();
        const socket = req.socket;
        const gone = () => {
          res.off('socket', turn);
          done({ status: CLIENT_CLOSED, upstreamMs: 0 });
        };
        const turn = () => {
          socket.off('close', gone);
          go();
        };
        res.once('socket', turn);
        socket.once('close', gone);
      },
      respond({ status, headers, body }) {
        if (res.headersSent) return;
        // A body that was never read (or cannot be delimited) must not be parsed as a next request.
        res.writeHead(status, mustClose(req) ? { ...headers, connection: 'close' } : headers).end(body);
      },
    });
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
