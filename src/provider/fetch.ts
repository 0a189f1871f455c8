/**
 * The HTTP client openid-client uses to talk to one provider (its `customFetch`): undici with a
 * connection pool of its own, a deadline for the whole exchange, no redirects, and an answer
 * capped at 64 KiB (SPEC §3.4). A provider can be slow, wrong or hostile; none of that may cost
 * tollgate more than this.
 *
 * It speaks undici's `request` and hands openid-client a Response built from the capped bytes,
 * rather than going through WHATWG `fetch` (its Request, web streams and composed AbortSignals):
 * measured on the benchmark's miss path (issue 6, row c), 340–395 µs of CPU per introspected
 * request against 720. Content decoding (gzip, deflate, br) is done here as fetch did it.
 */
import { lookup as dnsLookup } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { createSecureContext } from 'node:tls';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import { Agent, type Dispatcher } from 'undici';
import type { CustomFetch, CustomFetchOptions } from 'openid-client';

/** Statuses whose Response may carry no body (the Response constructor refuses one). */
const NULL_BODY_STATUSES = new Set([101, 204, 205, 304]);

/** SPEC §3.4: larger answers are failures, measured after transfer decoding. */
export const MAX_ANSWER_BYTES = 65_536;

export class ProviderHttpError extends Error {
  readonly code: 'answer_too_large' | 'timeout' | 'unsigned_answer';
  constructor(code: ProviderHttpError['code'], message: string) {
    super(message);
    this.name = 'ProviderHttpError';
    this.code = code;
  }
}

export interface ProviderFetchOptions {
  /** Deadline for one exchange, headers and body (milliseconds). */
  timeoutMs: number;
  /** Connections kept to this provider. */
  connections: number;
  /**
   * TLS options for every connection to this provider: the CAs to trust (the system's and the
   * provider's `ca_file`, see config/keys.ts), and the client certificate of mutual TLS (RFC 8705).
   */
  tls?: { ca?: string | Buffer | readonly (string | Buffer)[]; cert?: string | Buffer; key?: string | Buffer } | undefined;
}

export interface ProviderFetch {
  readonly fetch: CustomFetch;
  readonly dispatcher: Dispatcher;
  close(): Promise<void>;
}

export function createProviderFetch(options: ProviderFetchOptions): ProviderFetch {
  // One TLS context per provider, built here: with ca_file the trust store holds every system CA
  // too, and parsing ~150 certificates on each new connection would cost more than the handshake.
  const tls = options.tls;
  const secureContext =
    tls === undefined
      ? undefined
      : createSecureContext({
          ...(tls.ca === undefined ? {} : { ca: Array.isArray(tls.ca) ? [...tls.ca] : (tls.ca as string | Buffer) }),
          ...(tls.cert === undefined ? {} : { cert: tls.cert }),
          ...(tls.key === undefined ? {} : { key: tls.key }),
        });
  const agent = new Agent({
    connections: options.connections,
    keepAliveTimeout: 30_000,
    connect: {
      timeout: options.timeoutMs,
      lookup: lookupExceptInvalid,
      ...(secureContext === undefined ? {} : { secureContext }),
    },
  });

  const boundedFetch: CustomFetch = async (url, init) => {
    // One timer and one controller for the whole exchange, headers and body.
    const abort = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      abort.abort();
    }, options.timeoutMs);
    const onCallerAbort = () => abort.abort();
    if (init.signal?.aborted) abort.abort();
    else init.signal?.addEventListener('abort', onCallerAbort, { once: true });
    try {
      const target = new URL(url);
      const answer = await agent.request({
        origin: target.origin,
        path: target.pathname + target.search,
        method: (init.method ?? 'GET') as Dispatcher.HttpMethod,
        headers: init.headers,
        body: requestBody(init.body),
        signal: abort.signal,
      });
      const { body, decoded } = decode(await readAll(answer.body, MAX_ANSWER_BYTES), answer.headers['content-encoding']);
      return new Response(NULL_BODY_STATUSES.has(answer.statusCode) ? null : body, {
        status: answer.statusCode,
        headers: responseHeaderPairs(answer.headers, decoded),
      });
    } catch (err) {
      if (timedOut) throw new ProviderHttpError('timeout', `no complete answer within ${options.timeoutMs} ms`);
      if (err instanceof ProviderHttpError || abort.signal.aborted) throw err;
      // As fetch reports a network or TLS failure (the code is on the cause): openid-client passes
      // it on, and the log says `fetch failed (ECONNREFUSED)` rather than its generic wrapper's words.
      throw new TypeError('fetch failed', { cause: err });
    } finally {
      clearTimeout(timer);
      init.signal?.removeEventListener('abort', onCallerAbort);
    }
  };

  return {
    fetch: boundedFetch,
    dispatcher: agent,
    close: () => agent.close(),
  };
}

/**
 * RFC 6761 §6.4: names under `.invalid` never resolve, and resolvers "SHOULD always return
 * immediately with NXDOMAIN". glibc asks the network anyway; tollgate answers itself, so a
 * placeholder issuer in a configuration never sends a DNS query anywhere.
 */
const lookupExceptInvalid: LookupFunction = (hostname, options, callback) => {
  if (/(^|\.)invalid\.?$/i.test(hostname)) {
    const err: NodeJS.ErrnoException = new Error(`getaddrinfo ENOTFOUND ${hostname}`);
    err.code = 'ENOTFOUND';
    err.syscall = 'getaddrinfo';
    process.nextTick(() => callback(err, '', 0));
    return;
  }
  dnsLookup(hostname, options, callback);
};

/** The answer's bytes as sent (before content decoding), refused past `limit`. */
async function readAll(body: Dispatcher.ResponseData['body'], limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      body.destroy();
      throw new ProviderHttpError('answer_too_large', `answer larger than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

/**
 * Content decoding as fetch does it (gzip, deflate, br), the decoded answer capped too (a
 * decompression bomb). An unknown coding stops decoding: the bytes are passed on as they are then.
 */
function decode(raw: Buffer, encoding: string | string[] | undefined): { body: Buffer; decoded: boolean } {
  let body = raw;
  const codings = encoding === undefined ? [] : String(encoding).toLowerCase().split(',');
  for (const coding of codings.map((c) => c.trim()).reverse()) {
    const options = { maxOutputLength: MAX_ANSWER_BYTES };
    try {
      if (coding === '' || coding === 'identity') continue;
      else if (coding === 'gzip' || coding === 'x-gzip') body = gunzipSync(body, options);
      else if (coding === 'deflate') body = inflateSync(body, options);
      else if (coding === 'br') body = brotliDecompressSync(body, options);
      else return { body, decoded: false };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new ProviderHttpError('answer_too_large', `answer larger than ${MAX_ANSWER_BYTES} bytes`);
      }
      throw err;
    }
  }
  return { body, decoded: true };
}

/** What openid-client sends (a form, a JSON text) as bytes undici takes. */
function requestBody(body: CustomFetchOptions['body']): string | Uint8Array | undefined {
  if (body === null || body === undefined) return undefined;
  if (typeof body === 'string' || body instanceof Uint8Array) return body;
  if (body instanceof URLSearchParams) return body.toString();
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  throw new TypeError('a streamed request body is not supported');
}

/** The answer's headers for the Response; once the body is decoded, its coding and length no longer apply. */
function responseHeaderPairs(headers: Record<string, string | string[] | undefined>, decoded: boolean): [string, string][] {
  const out: [string, string][] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || (decoded && (name === 'content-encoding' || name === 'content-length'))) continue;
    for (const v of Array.isArray(value) ? value : [value]) out.push([name, v]);
  }
  return out;
}
