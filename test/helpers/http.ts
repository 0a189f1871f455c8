/** A small HTTP client for tests: every answer read whole, with bounded time. */
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
