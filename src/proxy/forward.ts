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
   * Sends the request and streams the answer to `res`. Rejects with bad_gateway or
   * gateway_timeout when no answer arrives; once the answer has started, a failure can only cut
   * the client's connection.
   */
  forward(req: IncomingMessage, res: ServerResponse, path: string, headers: string[]): Promise<ForwardResult>;
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
    async forward(req, res, path, headers) {
      // The client left while its token was checked: nothing to forward, nobody to answer.
      if (req.socket.destroyed) return { status: CLIENT_CLOSED, upstreamMs: 0 };
      const abort = new AbortController();
      const onClose = () => {
        if (!res.writableFinished) abort.abort();
      };
      res.once('close', onClose);
      const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
      const started = performance.now();
      let answer: Awaited<ReturnType<Pool['request']>>;
      try {
        answer = await pool.request({
          path: prefix + path,
          method: req.method as 'GET',
          headers,
          body: hasBody ? req : null,
          signal: abort.signal,
        });
      } catch (err) {
        res.off('close', onClose);
        if (abort.signal.aborted) return { status: CLIENT_CLOSED, upstreamMs: performance.now() - started };
        if (err instanceof undiciErrors.HeadersTimeoutError) {
          throw new TollgateError('gateway_timeout', 'the upstream did not answer in time', { cause: err });
        }
        throw new TollgateError('bad_gateway', 'the upstream could not be reached', { cause: err });
      }
      const upstreamMs = performance.now() - started;
      if (answer.statusCode === 431) {
        // The head the upstream refused is the one tollgate wrote, identity headers included (a
        // claim may be large; SPEC §3.7 sends values whole, never truncated): the gateway failed,
        // not the client, whose own head already passed tollgate's parser.
        res.off('close', onClose);
        answer.body.resume();
        throw new TollgateError('bad_gateway', 'the upstream refused the request tollgate sent');
      }
      res.writeHead(answer.statusCode, responseHeaders(answer.headers));
      await new Promise<void>((resolve) => {
        pipeline(answer.body, res, (err) => {
          res.off('close', onClose);
          // Past the headers nothing can be said to the client: cut its connection instead.
          if (err) res.destroy();
          resolve();
        });
      });
      return { status: answer.statusCode, upstreamMs };
    },
    close: () => pool.close(),
  };
}
