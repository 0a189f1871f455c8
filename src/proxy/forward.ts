/**
 * SPEC §3.8: the request goes to the upstream through an undici keep-alive pool, bodies streamed
 * both ways, never buffered whole. A client that goes away aborts the upstream request.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Pool, errors as undiciErrors, util as undiciUtil, type Dispatcher } from 'undici';
import { TollgateError } from '../errors.js';
import { responseHeaders } from './headers.js';

export interface UpstreamOptions {
  url: string;
  /** Until the upstream's response headers (milliseconds). */
  timeoutMs: number;
}

export interface Upstream {
  /**
   * Sends the request and streams the answer to `res`, then calls `done` once: with the result,
   * or with a bad_gateway or gateway_timeout error when no answer arrived (once the answer has
   * started, a failure can only cut the client's connection).
   */
  forward(req: IncomingMessage, res: ServerResponse, path: string, headers: string[], done: ForwardDone): void;
  close(): Promise<void>;
}

/**
 * The status logged when the client went away before the upstream's answer reached it (nginx's
 * 499): the request was authorised, so it is no refusal, and no upstream fault either.
 */
export const CLIENT_CLOSED = 499;

export interface ForwardResult {
  /** The upstream's status, or CLIENT_CLOSED. */
  readonly status: number;
  /** Until the upstream's response headers (milliseconds). */
  readonly upstreamMs: number;
}

/**
 * Called once a forward is over. A callback, not a promise: the promise chain of an async forward
 * and pipeline cost about 3 % of a cache hit's CPU time (issue 6).
 */
export type ForwardDone = (outcome: ForwardResult | Error) => void;

/** The pool settings, shared with the benchmark's bare proxy so both are measured alike. */
export function createUpstreamPool(url: string, timeoutMs: number): Pool {
  return new Pool(new URL(url).origin, {
    keepAliveTimeout: 60_000,
    headersTimeout: timeoutMs,
    bodyTimeout: 0,
    pipelining: 1,
  });
}

export function createUpstream(options: UpstreamOptions): Upstream {
  const base = new URL(options.url);
  // An upstream URL with a path (`http://api:8080/v1`) prefixes every forwarded path.
  const prefix = base.pathname === '/' ? '' : base.pathname.replace(/\/$/, '');
  const pool = createUpstreamPool(options.url, options.timeoutMs);

  return {
    forward(req, res, path, headers, done) {
      // The client left while its token was checked: nothing to forward, nobody to answer.
      if (req.socket.destroyed) return done({ status: CLIENT_CLOSED, upstreamMs: 0 });
      relay(pool, req, res, prefix + path, headers, done);
    },
    close: () => pool.close(),
  };
}

/**
 * Sends `req` (its body streamed) through `pool` and writes the answer into `res`; `done` is
 * called once. Shared with the benchmark's bare proxy, which forwards exactly this way.
 */
export function relay(
  pool: Dispatcher,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  headers: string[],
  done: ForwardDone,
): void {
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  pool.dispatch({ path, method: req.method as Dispatcher.HttpMethod, headers, body: hasBody ? req : null }, new Relay(res, done));
}

/**
 * One forwarded exchange as an undici dispatch handler: the answer's head and body go straight
 * into `res`, with back-pressure (undici's parser pauses while `res` is full), and a client that
 * leaves aborts the upstream request through the abort function undici hands over. These are the
 * handler methods undici 7's own request() and stream() implement, so undici calls them as they
 * are, without an adapter in between (its documentation describes the newer onRequestStart …
 * methods, which undici 7 wraps into these; nodejs/undici#4780).
 *
 * Hand-written because it is most of a cache hit's work (issue 6, ab.ts against the previous
 * build): request() + stream.pipeline made a Readable per answer and an AbortController that
 * pipeline aborts at the end of every call, building a DOMException with a stack trace; stream()
 * instead cost 0.643 of that, and still made an AsyncResource, an AbortController for the client's
 * departure and `finished()` listeners per request; this costs 0.747 of stream().
 */
class Relay implements Dispatcher.DispatchHandler {
  private abortUpstream: ((err: Error) => void) | undefined;
  private resume: (() => void) | undefined;
  private readonly started = performance.now();
  private upstreamMs = 0;
  private status = 0;
  /** Set when the answer is not relayed (431): its body is read and dropped. */
  private refused: TollgateError | undefined;
  private clientGone = false;
  private over = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly done: ForwardDone,
  ) {
    res.once('close', this.onResponseClose);
  }

  /**
   * `res` closed while this exchange was on (`finish` removes the listener): the client left, or
   * its connection broke, before the answer was all written.
   */
  private readonly onResponseClose = () => {
    this.clientGone = true;
    // Not yet connected: onConnect aborts as soon as undici gets that far.
    this.abortUpstream?.(new undiciErrors.RequestAbortedError());
  };

  onConnect(abort: (err?: Error) => void): void {
    this.abortUpstream = abort;
    if (this.clientGone) abort(new undiciErrors.RequestAbortedError());
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) return true; // informational: not relayed
    this.upstreamMs = performance.now() - this.started;
    this.status = statusCode;
    if (statusCode === 431) {
      // The head the upstream refused is the one tollgate wrote, identity headers included (a
      // claim may be large; SPEC §3.7 sends values whole, never truncated): the gateway failed,
      // not the client, whose own head already passed tollgate's parser.
      this.refused = new TollgateError('bad_gateway', 'the upstream refused the request tollgate sent');
      return true;
    }
    this.resume = resume;
    try {
      this.res.writeHead(statusCode, responseHeaders(undiciUtil.parseHeaders(rawHeaders)));
    } catch (err) {
      // Thrown into undici's parser it would end the request without a word to the client.
      this.finish(err as Error);
      this.abortUpstream?.(err as Error);
      return false;
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.refused !== undefined || this.res.write(chunk)) return true;
    this.res.once('drain', this.resume!);
    return false;
  }

  onComplete(): void {
    if (this.refused !== undefined) return this.finish(this.refused);
    this.res.end();
    this.finish({ status: this.status, upstreamMs: this.upstreamMs });
  }

  onError(err: Error): void {
    if (this.refused !== undefined) return this.finish(this.refused);
    if (this.res.headersSent) {
      // Past the head nothing can be said to the client: cut its connection instead.
      this.res.destroy();
      return this.finish({ status: this.status, upstreamMs: this.upstreamMs });
    }
    if (this.clientGone) return this.finish({ status: CLIENT_CLOSED, upstreamMs: performance.now() - this.started });
    if (err instanceof undiciErrors.HeadersTimeoutError) {
      return this.finish(new TollgateError('gateway_timeout', 'the upstream did not answer in time', { cause: err }));
    }
    this.finish(new TollgateError('bad_gateway', 'the upstream could not be reached', { cause: err }));
  }

  private finish(outcome: ForwardResult | Error): void {
    if (this.over) return;
    this.over = true;
    this.res.off('close', this.onResponseClose);
    this.done(outcome);
  }
}
