/**
 * A refused request whose body tollgate never read (no `Expect: 100-continue`): the refusal says
 * `Connection: close` and the connection closes, so the unread upload costs nothing and none of
 * its bytes can be parsed as a next request. Node closes on its own only for `Expect` requests, so
 * these answers come from tollgate's check alone; each is asserted as tollgate's own refusal (its
 * error body and its access line), not as whatever Node would answer.
 */
import t, { type Test } from 'tap';
import { head, rawRequest, type RawExchange } from '../helpers/raw.js';
import { startGate, type Gate } from '../helpers/gate.js';
import { waitFor } from '../helpers/tollgate.js';

/** What the client hopes is read as a request of its own once tollgate skips the body. */
const NEXT = 'GET /orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\n\r\n';

const upload = (g: Gate, auth: [string, string][], framing: [string, string]) =>
  head('POST /orders HTTP/1.1', [['Host', g.host], ...auth, ['Content-Type', 'application/octet-stream'], framing]);

/** tollgate's own refusal and access line, and a closed connection: the same whatever Node does. */
async function assertRefusedAndClosed(t: Test, g: Gate, res: RawExchange, code: string, what: string) {
  t.same(
    res.responses.map((r) => r.status),
    [401],
    `${what}: one answer, tollgate's refusal`,
  );
  t.equal(JSON.parse(res.responses[0]?.body || '{}').error, code, `${what}: its error body`);
  t.same(res.responses[0]?.headers.connection, ['close'], `${what}: Connection: close`);
  t.ok(res.closed, `${what}: the connection is closed`);
  await waitFor(() => g.gate.accessLines().length >= 1, 5000, `${what}: no access line`);
  t.same(
    g.gate.accessLines().map((l) => [l.status, l.code]),
    [[401, code]],
    `${what}: one access line, tollgate's refusal`,
  );
  t.equal(g.upstream.requests.length, 0, `${what}: nothing upstream`);
}

const CASES: [string, [string, string][], string][] = [
  ['no token (refused at once)', [], 'missing_token'],
  ['a token the provider rejects (refused after the provider answers)', [['Authorization', 'Bearer nope']], 'invalid_token'],
];

for (const [name, auth, code] of CASES) {
  t.test(`${name}: a declared upload not sent yet`, async (t) => {
    const g = await startGate(t);
    // Only the head: tollgate answers while the whole body is still to come.
    const res = await rawRequest(g.gate.url, upload(g, auth, ['Content-Length', '100000']), { timeoutMs: 5000 });
    await assertRefusedAndClosed(t, g, res, code, 'Content-Length');
  });

  t.test(`${name}: a chunked upload not finished`, async (t) => {
    const g = await startGate(t);
    const res = await rawRequest(g.gate.url, `${upload(g, auth, ['Transfer-Encoding', 'chunked'])}5\r\nhello\r\n`, {
      timeoutMs: 5000,
    });
    await assertRefusedAndClosed(t, g, res, code, 'chunked');
  });
}

t.test('a refused upload whose body holds a request: the body is never read as one', async (t) => {
  const g = await startGate(t);
  // Declared longer than what is sent, so the body is unread when tollgate answers.
  const res = await rawRequest(g.gate.url, upload(g, [], ['Content-Length', String(NEXT.length + 10)]) + NEXT, {
    timeoutMs: 5000,
  });
  await assertRefusedAndClosed(t, g, res, 'missing_token', 'request-shaped body');
});

t.test('a refused request without a body keeps its connection (nothing unread to fear)', async (t) => {
  const g = await startGate(t);
  const res = await rawRequest(
    g.gate.url,
    head('GET /orders HTTP/1.1', [['Host', g.host]]) +
      head('GET /orders HTTP/1.1', [
        ['Host', g.host],
        ['Authorization', 'Bearer good'],
        ['Connection', 'close'],
      ]),
    { timeoutMs: 5000 },
  );
  t.same(
    res.responses.map((r) => r.status),
    [401, 200],
    'the second request is served on the same connection',
  );
  t.notSame(res.responses[0]?.headers.connection, ['close']);
});
