/**
 * SPEC §3.8: `Expect: 100-continue` gets its `100 Continue` only once the request is authorised.
 * A refused request never invites its body, its answer closes the connection (the body it holds
 * must not be read as a next request), and nothing of it reaches the upstream.
 */
import { connect } from 'node:net';
import t from 'tap';
import { collect, head, parseResponses, rawRequest } from '../helpers/raw.js';
import { startGate } from '../helpers/gate.js';

const BODY = '{"order":42}';

const post = (host: string, auth: [string, string][], path = '/orders') =>
  head(`POST ${path} HTTP/1.1`, [
    ['Host', host],
    ...auth,
    ['Content-Type', 'application/json'],
    ['Content-Length', String(BODY.length)],
    ['Expect', '100-continue'],
  ]);

for (const [name, auth, status] of [
  ['no token', [], 401],
  ['a bad token', [['Authorization', 'Bearer nope']], 401],
  ['a token without the scope', [['Authorization', 'Bearer good']], 403],
] as [string, [string, string][], number][]) {
  t.test(`${name}: ${status}, no 100 Continue, the body never forwarded`, async (t) => {
    const g = await startGate(t);
    const res = await rawRequest(g.gate.url, post(g.host, auth, '/admin/orders'));
    t.same(
      res.responses.map((r) => r.status),
      [status],
      'one final answer and no 100 Continue',
    );
    t.notMatch(res.raw, /100 Continue/);
    t.same(res.responses[0]?.headers.connection, ['close']);
    t.same(res.responses[0]?.headers['content-type'], ['application/json']);
    t.ok(res.closed);
    t.equal(g.upstream.requests.length, 0);
  });
}

t.test('a refused client that sends its body anyway: what follows is never read as a request', async (t) => {
  const g = await startGate(t);
  // Had tollgate drained the body and kept the connection, this would be read and forwarded.
  const next = `GET /orders HTTP/1.1\r\nHost: ${g.host}\r\nAuthorization: Bearer good\r\nX-Auth-Subject: root\r\n\r\n`;
  const res = await rawRequest(g.gate.url, post(g.host, [['Authorization', 'Bearer nope']]) + BODY + next);
  t.same(
    res.responses.map((r) => r.status),
    [401],
  );
  t.ok(res.closed);
  t.equal(g.upstream.requests.length, 0);
});

t.test('an authorised request: 100 Continue, then the body is forwarded', async (t) => {
  const g = await startGate(t);
  const socket = connect(Number(new URL(g.gate.url).port), '127.0.0.1');
  let received = '';
  const gotContinue = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no 100 Continue within 10 s; got ${JSON.stringify(received)}`)), 10_000);
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (parseResponses(received, false).some((r) => r.status === 100)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  socket.write(post(g.host, [['Authorization', 'Bearer good']]));
  await gotContinue;
  t.equal(g.upstream.requests.length, 0, 'the upstream holds no complete request before the body is sent');
  const rest = collect(socket, { responses: 1 });
  socket.write(BODY);
  const final = await rest;
  t.equal(final.responses[0]?.status, 200);
  const seen = g.upstream.single();
  t.equal(seen.body.toString(), BODY);
  t.same(seen.headers['x-auth-subject'], ['alice']);
  t.equal(seen.headers.expect, undefined, 'Expect is answered by tollgate, not forwarded');
});
