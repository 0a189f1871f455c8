/**
 * src/provider/fetch.ts, the HTTP client openid-client calls providers with, against a local
 * server: it does what fetch did for it — content decoding, statuses without a body, the URL's
 * path and query — within SPEC §3.4's limits (64 KiB after decoding, one deadline for headers and
 * body, the caller's abort). The refusals end to end are in refusals.test.ts and provider-faults.test.ts.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import t, { type Test } from 'tap';
import { createProviderFetch, MAX_ANSWER_BYTES, ProviderHttpError } from '../../src/provider/fetch.js';

async function server(t: Test, handle: (req: IncomingMessage, res: ServerResponse) => void, timeoutMs = 2000) {
  const srv = createServer(handle);
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    srv.closeAllConnections();
    srv.close();
  });
  const client = createProviderFetch({ timeoutMs, connections: 2 });
  t.teardown(() => client.close());
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, fetch: client.fetch };
}

const post = (body: string) => ({
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
  body,
  redirect: 'manual' as const,
});

t.test('gzip, deflate and br answers are decoded; an unknown coding is passed as sent', async (t) => {
  const answer = JSON.stringify({ active: true, sub: 'alice' });
  const encoders: Record<string, (b: Buffer) => Buffer> = {
    gzip: gzipSync,
    'x-gzip': gzipSync,
    deflate: deflateSync,
    br: brotliCompressSync,
    'deflate, gzip': (b) => gzipSync(deflateSync(b)),
    identity: (b) => b,
  };
  const { url, fetch } = await server(t, (req, res) => {
    const coding = decodeURIComponent(req.url!.slice(1));
    const encode = encoders[coding] ?? ((b: Buffer) => b);
    res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': coding }).end(encode(Buffer.from(answer)));
  });
  for (const coding of Object.keys(encoders)) {
    const res = await fetch(`${url}/${encodeURIComponent(coding)}`, post('token=x'));
    t.equal(res.status, 200, coding);
    t.same(await res.json(), { active: true, sub: 'alice' }, `${coding}: decoded`);
    t.equal(res.headers.get('content-encoding'), null, `${coding}: no encoding left to apply`);
  }
  const raw = await fetch(`${url}/zstd-like`, post('token=x'));
  t.equal(await raw.text(), answer, 'an unknown coding: the bytes as sent');
  t.equal(raw.headers.get('content-encoding'), 'zstd-like', 'and its coding still said');
});

t.test('the request: method, path and query, headers and form body as openid-client gives them', async (t) => {
  let seen: { method?: string; url?: string; type?: string; body: string } = { body: '' };
  const { url, fetch } = await server(t, (req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (c: string) => (body += c));
    req.on('end', () => {
      seen = { method: req.method, url: req.url, type: req.headers['content-type'], body };
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await fetch(`${url}/t/acme/introspect?x=1`, {
    ...post(''),
    body: new URLSearchParams({ token: 'a b', hint: 'access_token' }),
  } as never);
  t.same(seen, {
    method: 'POST',
    url: '/t/acme/introspect?x=1',
    type: 'application/x-www-form-urlencoded',
    body: 'token=a+b&hint=access_token',
  });
});

t.test('statuses without a body, and headers relayed', async (t) => {
  const { url, fetch } = await server(t, (req, res) => {
    if (req.url === '/204') return void res.writeHead(204, { 'x-request-id': 'r1' }).end();
    res.writeHead(500, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' }).end('{"error":"server_error"}');
  });
  const empty = await fetch(`${url}/204`, post(''));
  t.equal(empty.status, 204);
  t.equal(empty.headers.get('x-request-id'), 'r1');
  t.equal(await empty.text(), '');
  const failed = await fetch(`${url}/500`, post(''));
  t.equal(failed.status, 500);
  t.equal(failed.headers.get('www-authenticate'), 'Bearer');
  t.same(await failed.json(), { error: 'server_error' });
});

t.test('64 KiB exactly is an answer; one byte more, raw or decoded, is not', async (t) => {
  const [head, tail] = ['{"active":true,"pad":"', '"}'];
  const exactly = head + 'x'.repeat(MAX_ANSWER_BYTES - head.length - tail.length) + tail;
  t.equal(Buffer.byteLength(exactly), MAX_ANSWER_BYTES);
  const { url, fetch } = await server(t, (req, res) => {
    const body = req.url === '/exact' ? exactly : `${exactly} `;
    const gz = req.url === '/gz';
    res.writeHead(200, { 'content-type': 'application/json', ...(gz ? { 'content-encoding': 'gzip' } : {}) });
    res.end(gz ? gzipSync(body) : body);
  });
  t.equal((await (await fetch(`${url}/exact`, post(''))).text()).length, MAX_ANSWER_BYTES);
  await t.rejects(fetch(`${url}/over`, post('')), new ProviderHttpError('answer_too_large', 'answer larger than 65536 bytes'));
  await t.rejects(fetch(`${url}/gz`, post('')), { code: 'answer_too_large' }, 'decoded size counts');
});

t.test('one deadline for headers and body; the caller can abort', async (t) => {
  const { url, fetch } = await server(
    t,
    (req, res) => {
      if (req.url === '/stall-body') res.writeHead(200, { 'content-type': 'application/json' }).write('{"active":');
      // '/stall-head' and '/abort': never answer
    },
    100,
  );
  await t.rejects(fetch(`${url}/stall-head`, post('')), { code: 'timeout' });
  await t.rejects(fetch(`${url}/stall-body`, post('')), { code: 'timeout' }, 'a body that stalls after the headers');

  const caller = new AbortController();
  const pending = fetch(`${url}/abort`, { ...post(''), signal: caller.signal });
  caller.abort();
  await t.rejects(pending, { name: 'AbortError' });
  const already = new AbortController();
  already.abort();
  await t.rejects(fetch(`${url}/abort`, { ...post(''), signal: already.signal }), { name: 'AbortError' });
});
