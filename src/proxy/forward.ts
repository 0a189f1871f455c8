/**
 * SPEC §3.8: the request goes to the upstream through an undici keep-alive pool, bodies streamed
 * both ways, never buffered whole. A client that goes away aborts the upstream request.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream';
import { Pool, errors as undiciErrors } from 'undici';
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
 * Called once a forward is over. A callback, not a promise: on the cache-hit path the promise
 * chain of an async forward cost about as much as routing (issue 6).
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
      const abort = new AbortController();
      const onClose = () => {
        if (!res.writableFinished) abort.abort();
      };
      res.once('close', onClose);
      const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
      const started = performance.now();
      const options = {
        path: prefix + path,
        method: req.method as 'GET',
        headers,
        body: hasBody ? req : null,
        signal: abort.signal,
      };
      pool.request(options, (err, answer) => {
        const upstreamMs = performance.now() - started;
        if (err !== null) {
          res.off('close', onClose);
          if (abort.signal.aborted) return done({ status: CLIENT_CLOSED, upstreamMs });
          if (err instanceof undiciErrors.HeadersTimeoutError) {
            return done(new TollgateError('gateway_timeout', 'the upstream did not answer in time', { cause: err }));
          }
          return done(new TollgateError('bad_gateway', 'the upstream could not be reached', { cause: err }));
        }
        if (answer.statusCode === 431) {
          // The head the upstream refused is the one tollgate wrote, identity headers included (a
          // claim may be large; SPEC §3.7 sends values whole, never truncated): the gateway failed,
          // not the client, whose own head already passed tollgate's parser.
          res.off('close', onClose);
          answer.body.resume();
          return done(new TollgateError('bad_gateway', 'the upstream refused the request tollgate sent'));
        }
        try {
          res.writeHead(answer.statusCode, responseHeaders(answer.headers));
        } catch (err) {
          // Thrown inside undici's callback it would be lost, and the client never answered.
          res.off('close', onClose);
          answer.body.destroy();
          return done(err as Error);
        }
        pipeline(answer.body, res, (err) => {
          res.off('close', onClose);
          // Past the headers nothing can be said to the client: cut its connection instead.
          if (err) res.destroy();
          done({ status: answer.statusCode, upstreamMs });
        });
      });
    },
    close: () => pool.close(),
  };
}
