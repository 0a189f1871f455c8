/**
 * The HTTP client openid-client uses to talk to one provider (its `customFetch`): undici with a
 * connection pool of its own, a deadline for the whole exchange, no redirects, and an answer
 * capped at 64 KiB (SPEC §3.4). A provider can be slow, wrong or hostile; none of that may cost
 * tollgate more than this.
 */
import { lookup as dnsLookup } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { createSecureContext } from 'node:tls';
import { Agent, fetch as undiciFetch, type Dispatcher } from 'undici';
import type { CustomFetch } from 'openid-client';

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
    const deadline = AbortSignal.timeout(options.timeoutMs);
    const signal = init.signal ? AbortSignal.any([init.signal, deadline]) : deadline;
    try {
      const response = await undiciFetch(url, {
        method: init.method,
        headers: init.headers as Record<string, string>,
        body: init.body as string | undefined,
        redirect: 'manual',
        signal,
        dispatcher: agent,
      });
      const body = await readCapped(response.body, MAX_ANSWER_BYTES);
      return new Response(body, {
        status: response.status,
        statusText: response.statusText,
        headers: response.headers as unknown as Headers,
      });
    } catch (err) {
      if (deadline.aborted) throw new ProviderHttpError('timeout', `no complete answer within ${options.timeoutMs} ms`);
      throw err;
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

async function readCapped(body: ReadableStream<Uint8Array> | null, limit: number): Promise<Uint8Array | null> {
  if (body === null) return null;
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      throw new ProviderHttpError('answer_too_large', `answer larger than ${limit} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, size);
}
