/**
 * RFC 9110 §7.6.1: headers named in `Connection` are not forwarded. The common values
 * (`keep-alive`, `close`) take a fast path; they must behave exactly as the general one.
 */
import type { IncomingMessage } from 'node:http';
import t from 'tap';
import { configSchema } from '../../src/config/schema.js';
import { buildUpstreamHeaders, compileHeaderPlan, responseHeaders } from '../../src/proxy/headers.js';

const plan = compileHeaderPlan(configSchema.parse({ upstream: { url: 'http://127.0.0.1:1' } }).headers);

function forwarded(raw: string[]): string[] {
  const headers: Record<string, string> = {};
  for (let i = 0; i < raw.length; i += 2) headers[raw[i]!.toLowerCase()] ??= raw[i + 1]!;
  const req = { rawHeaders: raw, headers } as unknown as IncomingMessage;
  const host = headers.host;
  const out = buildUpstreamHeaders(req, plan, { clientAddress: undefined, host, answer: null, tokenCookie: undefined });
  return out.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
}

t.test('Connection-named request headers are dropped, whatever the value', async (t) => {
  for (const value of ['keep-alive', 'Keep-Alive', 'close', 'Close', 'close, X-Extra', 'keep-alive,x-extra']) {
    const names = forwarded([
      'Host',
      'api',
      'Connection',
      value,
      'Keep-Alive',
      'timeout=5',
      'Close',
      'x',
      'X-Extra',
      'y',
      'Accept',
      '*/*',
    ]);
    t.notOk(names.includes('connection'), `${value}: connection`);
    t.notOk(names.includes('keep-alive'), `${value}: keep-alive`);
    t.equal(names.includes('close'), !/close/i.test(value), `${value}: a header named close`);
    t.equal(names.includes('x-extra'), !/x-extra/i.test(value), `${value}: x-extra`);
    t.ok(names.includes('accept'), `${value}: accept kept`);
  }
});

t.test('Connection-named response headers are dropped', async (t) => {
  t.same(responseHeaders({ connection: 'keep-alive', 'keep-alive': 'timeout=5', 'content-type': 'a/b' }), {
    'content-type': 'a/b',
  });
  t.same(responseHeaders({ connection: 'close, x-a', 'x-a': '1', 'x-b': '2' }), { 'x-b': '2' });
});
