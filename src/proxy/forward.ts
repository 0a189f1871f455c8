/**
 * SPEC §3.8: the request goes to the upstream through an undici keep-alive pool, bodies streamed
 * both ways, never buffered whole. A client that goes away aborts the upstream request.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
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
      let status = 0;
      let upstreamMs = 0;
      let refused: TollgateError | undefined;
      // `stream`: undici writes the answer straight into `res`, with back-pressure. `request` and
      // `stream.pipeline` made a Readable per answer, and pipeline aborts an AbortController of its
      // own at the end of every call, building a DOMException with a stack trace: a third of a
      // cache hit's CPU time (issue 6).
      pool.stream(
        options,
        // The answer's head: where its body goes.
        ({ statusCode, headers: answerHeaders }) => {
          upstreamMs = performance.now() - started;
          status = statusCode;
          if (statusCode === 431) {
            refused = new TollgateError('bad_gateway', 'the upstream refused the request tollgate sent');
            return discard();
          }
          res.writeHead(statusCode, responseHeaders(answerHeaders));
          return res;
        },
        // The end: the body written (or cut: undici has then destroyed `res`, and with it the
        // client's connection), or no answer at all.
        (err) => {
          res.off('close', onClose);
          if (refused !== undefined) return done(refused);
          if (err === null || res.headersSent) return done({ status, upstreamMs });
          if (abort.signal.aborted) return done({ status: CLIENT_CLOSED, upstreamMs: performance.now() - started });
          // The answer arrived but its head could not be written (writeHead threw).
          if (status !== 0) return done(err);
          if (err instanceof undiciErrors.HeadersTimeoutError) {
            return done(new TollgateError('gateway_timeout', 'the upstream did not answer in time', { cause: err }));
          }
          return done(new TollgateError('bad_gateway', 'the upstream could not be reached', { cause: err }));
        },
      );
    },
    close: () => pool.close(),
  };
}

/** Where the body of an answer that is not relayed goes. */
const discard = () =>
  new Writable({
    write(_chunk, _encoding, callback) {
      callback();
    },
  });
