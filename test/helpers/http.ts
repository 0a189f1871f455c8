/** A small HTTP client for tests: every answer read whole, with bounded time. */
import { connect } from 'node:net';
import type { Test } from 'tap';
import { request as undiciRequest } from 'undici';

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json<T = Record<string, unknown>>(): T;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string | string[]> | string[];
  body?: string | Buffer;
  /** Default 10 s: a hung request fails the test with a clear message instead of hanging it. */
  timeoutMs?: number;
}

export async function request(url: string, options: RequestOptions = {}): Promise<Answer> {
  const res = await undiciRequest(url, {
    method: (options.method ?? 'GET') as 'GET',
    headers: options.headers,
    body: options.body,
    headersTimeout: options.timeoutMs ?? 10_000,
    bodyTimeout: options.timeoutMs ?? 10_000,
  });
  const text = await res.body.text();
  return {
    status: res.statusCode,
    headers: res.headers,
    text,
    json: <T>() => JSON.parse(text) as T,
  };
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/**
 * Checks a refusal is SPEC §4 exactly: status, JSON body with the code, Content-Type,
 * Cache-Control: no-store, and Retry-After on a 503. Returns the Retry-After seconds (or NaN).
 */
export function assertRefusal(t: Test, res: Answer, status: number, code: string): number {
  t.equal(res.status, status, `status ${status} (${code})`);
  t.equal(res.headers['content-type'], 'application/json');
  t.equal(res.headers['cache-control'], 'no-store');
  t.match(JSON.parse(res.text), { error: code, error_description: String }, `body error ${code}`);
  if (status !== 503) return NaN;
  t.match(res.headers['retry-after'], /^[1-9]\d*$/, 'Retry-After in whole seconds');
  return Number(res.headers['retry-after']);
}

export interface RawAnswer {
  status: number;
  /** Lower-cased names; repeated headers keep every value. */
  headers: Record<string, string[]>;
  body: string;
  /** The whole answer as received. */
  raw: string;
}

/**
 * Sends `head` (request line and headers, without the blank line) byte for byte over a plain TCP
 * socket, for what an HTTP client would normalise: duplicate headers, odd names, `%2e%2e` (which
 * WHATWG URL parsing resolves before sending). `Connection: close` is added, so the answer ends
 * with the connection (the server closes it).
 */
export async function rawRequest(
  url: string,
  head: string,
  options: { body?: string; timeoutMs?: number } = {},
): Promise<RawAnswer> {
  const { hostname, port } = new URL(url);
  const socket = connect({ host: hostname, port: Number(port) });
  socket.setTimeout(options.timeoutMs ?? 10_000);
  const chunks: Buffer[] = [];
  const done = new Promise<string>((resolve, reject) => {
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.on('timeout', () => {
      socket.destroy();
      reject(new Error(`no complete answer within ${options.timeoutMs ?? 10_000} ms to: ${head.split('\r\n')[0]}`));
    });
    socket.on('error', reject);
  });
  const body = options.body ?? '';
  const length = body === '' && !/^(GET|HEAD|DELETE|OPTIONS) /.test(head) ? '' : `Content-Length: ${Buffer.byteLength(body)}\r\n`;
  // write, not end: a half-closed socket reads as a client that went away (tollgate aborts).
  socket.write(`${head.replace(/\r?\n$/, '').replace(/\r?\n/g, '\r\n')}\r\n${length}Connection: close\r\n\r\n${body}`);
  const raw = await done;
  const split = raw.indexOf('\r\n\r\n');
  const lines = raw.slice(0, split).split('\r\n');
  const status = Number(lines[0]!.split(' ')[1]);
  const headers: Record<string, string[]> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    (headers[line.slice(0, colon).toLowerCase()] ??= []).push(line.slice(colon + 1).trim());
  }
  let rest = raw.slice(split + 4);
  if (headers['transfer-encoding']?.includes('chunked')) rest = dechunk(rest);
  return { status, headers, body: rest, raw };
}

function dechunk(text: string): string {
  let out = '';
  let at = 0;
  for (;;) {
    const eol = text.indexOf('\r\n', at);
    const size = parseInt(text.slice(at, eol), 16);
    if (!(size > 0)) return out;
    out += text.slice(eol + 2, eol + 2 + size);
    at = eol + 2 + size + 2;
  }
}
