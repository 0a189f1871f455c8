/**
 * SPEC §3.8: a WebSocket upgrade is authorised like any request (the same pipeline: path, token,
 * provider, checks, headers), then tunnelled. A refused upgrade gets a SPEC §4 answer and never a
 * `101`; an authorised one reaches the upstream with the identity headers (spoofed ones removed)
 * and carries frames both ways.
 */
import t from 'tap';
import { WebSocket } from 'undici';
import { head, rawRequest } from '../helpers/raw.js';
import { withTimeout } from '../helpers/tollgate.js';
import { goodIdentity, identityOf, startGate } from '../helpers/gate.js';

const upgradeHead = (path: string, host: string, extra: [string, string][] = []) =>
  head(`GET ${path} HTTP/1.1`, [
    ['Host', host],
    ['Upgrade', 'websocket'],
    ['Connection', 'Upgrade'],
    ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='],
    ['Sec-WebSocket-Version', '13'],
    ...extra,
  ]);

for (const [name, path, auth, status, code] of [
  ['no token', '/chat', [], 401, 'missing_token'],
  ['a bad token', '/chat', [['Authorization', 'Bearer nope']], 401, 'invalid_token'],
  ['a token without the scope', '/admin/chat', [['Authorization', 'Bearer good']], 403, 'insufficient_scope'],
  ['a disguised path', '/public/%2e%2e/chat', [], 401, 'missing_token'],
  ['an encoded slash', '/public%2fchat', [['Authorization', 'Bearer good']], 400, 'invalid_request'],
  [
    'two tokens',
    '/chat',
    [
      ['Authorization', 'Bearer good'],
      ['Authorization', 'Bearer admin'],
    ],
    400,
    'invalid_request',
  ],
] as [string, string, [string, string][], number, string][]) {
  t.test(`an upgrade with ${name}: ${status}, no 101, nothing upstream`, async (t) => {
    const g = await startGate(t, { upstream: { websocket: true } });
    const res = await rawRequest(g.gate.url, upgradeHead(path, g.host, [...auth, ['X-Auth-Subject', 'root']]));
    t.same(
      res.responses.map((r) => r.status),
      [status],
    );
    t.notMatch(res.raw, /\b101\b/);
    const answer = res.responses[0]!;
    t.same(JSON.parse(answer.body).error, code);
    t.same(answer.headers['content-type'], ['application/json']);
    t.same(answer.headers['cache-control'], ['no-store']);
    if (status === 401) t.match(answer.headers['www-authenticate']?.[0], /^Bearer realm="tollgate"/);
    t.same(answer.headers.connection, ['close']);
    t.ok(res.closed);
    t.equal(g.upstream.requests.length, 0);
    t.same(g.upstream.messages, []);
    const line = g.gate.accessLines().at(-1);
    t.equal(line?.status, status);
    t.equal(line?.code, code);
  });
}

t.test('an authorised upgrade is tunnelled with the identity headers, frames both ways', async (t) => {
  const g = await startGate(t, { upstream: { websocket: true } });
  const ws = new WebSocket(`${g.gate.url.replace('http', 'ws')}/public/../chat?room=1`, {
    headers: { authorization: 'Bearer good', 'x-auth-subject': 'root', x_auth_scope: 'orders:admin' },
  });
  const received: string[] = [];
  const gotTwo = new Promise<void>((resolve, reject) => {
    ws.addEventListener('message', (e) => {
      received.push(String(e.data));
      if (received.length === 2) resolve();
    });
    ws.addEventListener('error', () => reject(new Error('the WebSocket failed')));
  });
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve());
      ws.addEventListener('error', () => reject(new Error('the WebSocket did not open')));
    }),
    10_000,
    'the WebSocket did not open within 10 s',
  );
  ws.send('hello');
  ws.send('x'.repeat(1000));
  await withTimeout(gotTwo, 10_000, 'no echo within 10 s');
  t.same(received, ['echo:hello', `echo:${'x'.repeat(1000)}`]);
  t.same(g.upstream.messages, ['hello', 'x'.repeat(1000)]);

  const seen = g.upstream.single();
  t.ok(seen.upgrade);
  t.equal(seen.url, '/chat?room=1', 'the normalised path, as for any request');
  t.same(identityOf(seen.headers), goodIdentity(g));
  t.equal(seen.headers.authorization, undefined);
  t.same(seen.headers.upgrade, ['websocket']);
  t.same(seen.headers.connection, ['upgrade']);
  t.ok(seen.headers['sec-websocket-key']?.[0], 'the handshake headers are end-to-end');

  const closed = new Promise<void>((resolve) => ws.addEventListener('close', () => resolve()));
  ws.close();
  await withTimeout(closed, 10_000, 'the WebSocket did not close within 10 s');
  const line = g.gate.accessLines().at(-1);
  t.equal(line?.status, 101);
  t.equal(line?.outcome, 'allowed');
  t.equal(line?.provider, 'acme');
});

t.test('an upstream that does not switch protocols: its answer is relayed, then the connection closes', async (t) => {
  const g = await startGate(t); // no WebSocket support: a plain 200
  const res = await rawRequest(g.gate.url, upgradeHead('/chat', g.host, [['Authorization', 'Bearer good']]));
  t.same(
    res.responses.map((r) => r.status),
    [200],
  );
  t.equal(res.responses[0]?.body, '{"ok":true}');
  t.same(res.responses[0]?.headers.connection, ['close']);
  t.ok(res.closed);
  t.same(identityOf(g.upstream.single().headers), goodIdentity(g));
});

t.test('an upstream that cannot be reached: 502', async (t) => {
  const g = await startGate(t, { upstream: { websocket: true } });
  await g.upstream.close();
  const res = await rawRequest(g.gate.url, upgradeHead('/chat', g.host, [['Authorization', 'Bearer good']]));
  t.same(
    res.responses.map((r) => r.status),
    [502],
  );
  t.equal(JSON.parse(res.responses[0]!.body).error, 'bad_gateway');
});

t.test('an open tunnel does not hold up shutdown', async (t) => {
  const g = await startGate(t, { upstream: { websocket: true } });
  const ws = new WebSocket(`${g.gate.url.replace('http', 'ws')}/chat`, { headers: { authorization: 'Bearer good' } });
  await withTimeout(new Promise((resolve) => ws.addEventListener('open', resolve)), 10_000, 'the WebSocket did not open');
  const closed = new Promise<void>((resolve) => ws.addEventListener('close', () => resolve()));
  await withTimeout(g.gate.app.close(100), 10_000, 'tollgate did not close with a tunnel open');
  await withTimeout(closed, 10_000, 'the tunnel was not cut at shutdown');
  t.pass('closed');
});
