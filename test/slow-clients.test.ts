/**
 * Slow clients (SPEC §2 `server.*`): a slowloris client that trickles its headers is answered 408
 * and cut off after headers_timeout_ms, one that trickles its body after request_timeout_ms, an
 * idle keep-alive connection is closed after keep_alive_timeout_ms — and other clients are served
 * all along. Node's HTTP server keeps these times itself, so the limits here are small real times;
 * every wait is bounded.
 */
import t from 'tap';
import { connect, type Socket } from 'node:net';
import { validateConfig } from '../src/config/load.js';
import { startFakeProvider } from './helpers/fake-provider.js';
import { providerEntry, startTollgate, withTimeout } from './helpers/tollgate.js';
import { startUpstream } from './helpers/upstream.js';

const provider = await startFakeProvider();
t.teardown(() => provider.close());
const upstream = await startUpstream();
t.teardown(() => upstream.close());

const gate = await startTollgate(t, {
  upstream: { url: upstream.url },
  providers: [providerEntry('acme', provider.issuer)],
  routes: [{ match: { path_prefix: '/public' }, public: true }],
  server: { headers_timeout_ms: 300, request_timeout_ms: 600, keep_alive_timeout_ms: 400 },
});
const { port } = new URL(gate.url);

/** A raw connection that records what it receives and when it is closed. */
function rawClient() {
  const socket: Socket = connect(Number(port), '127.0.0.1');
  socket.on('error', () => {});
  let received = '';
  socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  return { socket, closed, received: () => received };
}

/** Writes `pieces` one every `everyMs` until the socket closes or they run out (bounded). */
async function trickle(socket: Socket, pieces: string[], everyMs: number) {
  for (const piece of pieces) {
    if (socket.destroyed || !socket.writable) return;
    socket.write(piece);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Meanwhile, an ordinary client is served again and again. */
async function othersServed(until: Promise<void>) {
  let served = 0;
  let done = false;
  void until.then(() => (done = true));
  for (let i = 0; i < 200 && !done; i++) {
    const res = await gate.request('/public/ping', { timeoutMs: 2000 });
    if (res.status === 200) served++;
    await new Promise((r) => setTimeout(r, 10));
  }
  return served;
}

t.test('headers trickled past headers_timeout_ms: 408 and the connection is closed', async (t) => {
  const client = rawClient();
  client.socket.write('GET /public/slow HTTP/1.1\r\nHost: api.test\r\n');
  const headers = Array.from({ length: 100 }, (_, i) => `X-Slow-${i}: ${'a'.repeat(5)}\r\n`);
  const trickling = trickle(client.socket, headers, 50); // at most 5 s of headers, never finished
  const served = othersServed(client.closed);
  await withTimeout(client.closed, 5000, 'the slowloris connection was not cut off');
  t.match(client.received(), /^HTTP\/1\.1 408 Request Timeout\r\n/);
  t.ok((await served) > 0, 'other clients were served while it trickled');
  await trickling;
  t.notOk(
    upstream.requests.some((r) => r.url === '/public/slow'),
    'nothing of the slow request reached the upstream',
  );
});

t.test('a body trickled past request_timeout_ms: 408 and the connection is closed', async (t) => {
  const client = rawClient();
  client.socket.write('POST /public/upload HTTP/1.1\r\nHost: api.test\r\nContent-Length: 1000\r\n\r\n');
  const trickling = trickle(
    client.socket,
    Array.from({ length: 100 }, () => 'x'),
    50,
  );
  const served = othersServed(client.closed);
  await withTimeout(client.closed, 5000, 'the slow upload was not cut off');
  t.ok((await served) > 0, 'other clients were served meanwhile');
  await trickling;
  t.match(client.received(), /408 Request Timeout/, 'answered 408 (the request was still being received)');
});

t.test('an idle keep-alive connection is closed after keep_alive_timeout_ms', async (t) => {
  const client = rawClient();
  client.socket.write('GET /public/once HTTP/1.1\r\nHost: api.test\r\n\r\n');
  await withTimeout(client.closed, 5000, 'the idle connection was kept open');
  t.match(client.received(), /^HTTP\/1\.1 200 OK\r\n/);
  t.match(client.received(), /Keep-Alive: timeout=0?\.?\d+/i);
});

t.test('server timeouts are validated: headers must not outlast the whole request', async (t) => {
  const result = validateConfig({
    upstream: { url: 'http://127.0.0.1:1' },
    providers: [providerEntry('acme', 'http://127.0.0.1:2')],
    server: { headers_timeout_ms: 5000, request_timeout_ms: 1000 },
  });
  t.notOk(result.ok);
  t.match(JSON.stringify(result), /server\.headers_timeout_ms.*must not exceed request_timeout_ms/);
  const defaults = validateConfig({
    upstream: { url: 'http://127.0.0.1:1' },
    providers: [providerEntry('acme', 'http://127.0.0.1:2')],
  });
  t.match(defaults, {
    ok: true,
    config: { server: { headers_timeout_ms: 10_000, request_timeout_ms: 300_000, keep_alive_timeout_ms: 5_000 } },
  });
});
