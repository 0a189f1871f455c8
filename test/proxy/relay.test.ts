/**
 * The upstream's answer as the client receives it through tollgate's relay (src/proxy/forward.ts),
 * with a real provider vouching for the token: answers without a body (HEAD, 204, 304) leave the
 * keep-alive connection framed for the next request, a body of unknown length is re-chunked, and a
 * large body reaches a slow client whole, tollgate holding the upstream back meanwhile.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { Client } from 'undici';
import { startOidcProvider } from '../../dev/oidc-provider.js';
import { bearer } from '../helpers/http.js';
import { providerEntry, startTollgate, waitFor, withTimeout } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';

const op = await startOidcProvider();
t.teardown(() => op.close());
const token = await op.mintToken();
const provider = providerEntry('acme', op.issuer);

t.test('answers without a body keep the connection framed for the next request', async (t) => {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  upstream.handle((req, res) => {
    if (req.url === '/head')
      return void res.writeHead(200, { 'content-length': '11' }).end(req.method === 'HEAD' ? undefined : 'eleven byte');
    if (req.url === '/no-content') return void res.writeHead(204).end();
    if (req.url === '/not-modified') return void res.writeHead(304, { etag: '"v1"' }).end();
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`body of ${req.url}`);
  });
  const gate = await startTollgate(t, { upstream: { url: upstream.url }, providers: [provider] });
  // One connection, one request at a time: a stray byte after a bodiless answer would be read as
  // the start of the next answer.
  const client = new Client(gate.url, { pipelining: 1 });
  t.teardown(() => client.close());
  const send = async (method: 'GET' | 'HEAD', path: string) => {
    const res = await client.request({ method, path, headers: bearer(token), headersTimeout: 5000, bodyTimeout: 5000 });
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
  };
  const head = await send('HEAD', '/head');
  t.match(head, { status: 200, text: '' });
  t.equal(head.headers['content-length'], '11', 'HEAD: the length of the body a GET would get');
  t.match(await send('GET', '/after-head'), { status: 200, text: 'body of /after-head' });
  t.match(await send('GET', '/no-content'), { status: 204, text: '' });
  t.match(await send('GET', '/after-204'), { status: 200, text: 'body of /after-204' });
  const notModified = await send('GET', '/not-modified');
  t.match(notModified, { status: 304, text: '' });
  t.equal(notModified.headers.etag, '"v1"');
  t.match(await send('GET', '/after-304'), { status: 200, text: 'body of /after-304' });
  t.same(
    upstream.requests.map((r) => `${r.method} ${r.url}`),
    ['HEAD /head', 'GET /after-head', 'GET /no-content', 'GET /after-204', 'GET /not-modified', 'GET /after-304'],
    'every request reached the upstream, in order',
  );
});

t.test('a body of unknown length is relayed chunked', async (t) => {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  upstream.handle((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('first, ');
    setImmediate(() => res.end('then the rest'));
  });
  const gate = await startTollgate(t, { upstream: { url: upstream.url }, providers: [provider] });
  const res = await gate.request('/stream', { headers: bearer(token) });
  t.equal(res.status, 200);
  t.equal(res.headers['transfer-encoding'], 'chunked');
  t.equal(res.text, 'first, then the rest');
});

t.test('a large answer to a client that pauses: relayed with back-pressure, every byte in order', async (t) => {
  // The client reads nothing until the upstream is held back, so tollgate's writes to it fill up
  // and the relay pauses undici's reading (forward.ts, onData); then 64 MB must arrive whole.
  const CHUNK = 64 * 1024;
  const CHUNKS = 1024;
  const chunk = (i: number) => Buffer.alloc(CHUNK, i % 251);
  const upstream = await startUpstream({ record: false });
  t.teardown(() => upstream.close());
  const progress = { written: 0, blocked: false };
  upstream.handle((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(CHUNK * CHUNKS) });
    let i = 0;
    const more = () => {
      while (i < CHUNKS) {
        progress.written += CHUNK;
        if (!res.write(chunk(i++))) {
          progress.blocked = true;
          return void res.once('drain', more);
        }
      }
      res.end();
    };
    more();
  });
  const gate = await startTollgate(t, { upstream: { url: upstream.url }, providers: [provider] });
  const expected = createHash('sha256');
  for (let i = 0; i < CHUNKS; i++) expected.update(chunk(i));

  const socket = connect(Number(new URL(gate.url).port), '127.0.0.1');
  t.teardown(() => socket.destroy());
  socket.pause();
  socket.write(`GET /large HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`);
  await waitFor(() => progress.blocked, 10_000, 'the upstream was never held back');
  const heldAt = progress.written;
  t.ok(heldAt < CHUNK * CHUNKS, `held back after ${heldAt} of ${CHUNK * CHUNKS} bytes`);

  const received: Buffer[] = [];
  socket.on('data', (data: Buffer) => received.push(data));
  socket.resume();
  await withTimeout(new Promise((r) => socket.once('end', r)), 30_000, 'the answer never ended');
  const bytes = Buffer.concat(received);
  const bodyAt = bytes.indexOf('\r\n\r\n') + 4;
  t.match(bytes.subarray(0, bodyAt).toString('latin1'), /^HTTP\/1\.1 200 /);
  t.equal(bytes.length - bodyAt, CHUNK * CHUNKS, 'every byte arrived');
  t.equal(createHash('sha256').update(bytes.subarray(bodyAt)).digest('hex'), expected.digest('hex'), 'in order');
});
