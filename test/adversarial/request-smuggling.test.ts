/**
 * Request smuggling (CL.TE / TE.CL, duplicate lengths, obs-fold, bare LF, unknown transfer
 * codings): a request whose framing two parsers could read differently is refused with 400 and
 * `Connection: close` (SPEC §3.8), and the bytes after it are never read as a request. tollgate
 * also never relays the client's bytes: the upstream gets a request re-framed by undici, so it sees
 * at most the legitimate request, with tollgate's headers only.
 */
import t from 'tap';
import { collect, head, rawRequest } from '../helpers/raw.js';
import { identityOf, startGate } from '../helpers/gate.js';
import { connect } from 'node:net';

/** What an attacker hopes the upstream reads as a second request of its own. */
const SMUGGLED = 'GET /admin/users HTTP/1.1\r\nHost: x\r\nX-Auth-Subject: root\r\nX-Auth-Scope: orders:admin\r\n\r\n';

const framings: [string, (host: string) => string][] = [
  [
    'Content-Length with Transfer-Encoding',
    (host) =>
      `POST /orders HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer good\r\nContent-Length: ${5 + SMUGGLED.length}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
  ],
  [
    'Transfer-Encoding with Content-Length',
    (host) =>
      `POST /orders HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer good\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\n${SMUGGLED}0\r\n\r\n`,
  ],
  [
    'two Content-Lengths',
    (host) =>
      `POST /orders HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer good\r\nContent-Length: 0\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`,
  ],
  [
    'obs-fold',
    (host) => `GET /orders HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer good\r\nX-Note: a\r\n X-Auth-Subject: root\r\n\r\n`,
  ],
  ['bare LF line ends', (host) => `GET /orders HTTP/1.1\nHost: ${host}\nAuthorization: Bearer good\nX-Auth-Subject: root\n\n`],
  [
    'a bare LF inside the head',
    (host) => `GET /orders HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer good\nX-Auth-Subject: root\r\n\r\n`,
  ],
  [
    'Transfer-Encoding: chunked, identity',
    (host) =>
      `POST /orders HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer good\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${SMUGGLED}`,
  ],
  [
    'Transfer-Encoding: identity',
    (host) =>
      `POST /orders HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer good\r\nTransfer-Encoding: identity\r\n\r\n${SMUGGLED}`,
  ],
  [
    'Transfer-Encoding: xchunked',
    (host) =>
      `POST /orders HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer good\r\nTransfer-Encoding: xchunked\r\n\r\n${SMUGGLED}`,
  ],
  [
    'a chunk size with a bare LF',
    (host) =>
      `POST /orders HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer good\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n${SMUGGLED}`,
  ],
];

for (const [name, build] of framings) {
  t.test(`${name}: 400, Connection: close, nothing upstream`, async (t) => {
    const g = await startGate(t);
    const res = await rawRequest(g.gate.url, build(g.host));
    t.equal(res.responses.length, 1, 'one answer, and no second request was read');
    t.equal(res.responses[0]?.status, 400);
    t.same(res.responses[0]?.headers.connection, ['close']);
    t.ok(res.closed, 'the connection is closed');
    t.equal(g.upstream.requests.length, 0);
  });
}

t.test("a Transfer-Encoding that does not end in chunked: tollgate's own refusal, before any provider call", async (t) => {
  // Node (20 and 24) dispatches this head as a request and only then fails the body with its own
  // plain 400: it is tollgate's check that must answer first, with its error and its access line,
  // and without asking the provider about the token. Head alone and head with smuggled bytes.
  for (const coding of ['identity', 'xchunked', 'gzip']) {
    for (const rest of ['', SMUGGLED]) {
      const what = `${coding}${rest === '' ? '' : ' + bytes'}`;
      const g = await startGate(t);
      const res = await rawRequest(
        g.gate.url,
        `POST /orders HTTP/1.1\r\nHost: ${g.host}\r\nAuthorization: Bearer good\r\nTransfer-Encoding: ${coding}\r\n\r\n${rest}`,
      );
      t.equal(res.responses.length, 1, `${what}: one answer`);
      t.equal(res.responses[0]?.status, 400, what);
      t.same(res.responses[0]?.headers.connection, ['close'], what);
      t.equal(res.responses[0]?.headers['content-type']?.[0], 'application/json', `${what}: tollgate's error body`);
      t.same(
        JSON.parse(res.responses[0]?.body || '{}'),
        { error: 'invalid_request', error_description: 'the request body has no knowable length' },
        what,
      );
      t.ok(res.closed, `${what}: the connection is closed`);
      await waitFor(() => g.gate.accessLines().length === 1, `${what}: no access line`);
      t.match(g.gate.accessLines()[0], { status: 400, outcome: 'bad_request', code: 'invalid_request', provider: null }, what);
      t.equal(g.provider.callCount, 0, `${what}: the provider was not asked`);
      t.equal(g.upstream.requests.length, 0, `${what}: nothing upstream`);
    }
  }
});

t.test('a request-shaped body is only a body', async (t) => {
  const g = await startGate(t);
  const res = await rawRequest(
    g.gate.url,
    `POST /orders HTTP/1.1\r\nHost: ${g.host}\r\nAuthorization: Bearer good\r\nContent-Length: ${SMUGGLED.length}\r\nConnection: close\r\n\r\n${SMUGGLED}`,
  );
  t.equal(res.responses[0]?.status, 200);
  const seen = g.upstream.single();
  t.equal(seen.body.toString('latin1'), SMUGGLED);
  t.same(identityOf(seen.headers)['x-auth-subject'], ['alice']);
});

t.test('a pipelined second request with spoofed headers and no token is refused on its own', async (t) => {
  const g = await startGate(t);
  const res = await rawRequest(
    g.gate.url,
    head('GET /orders/1 HTTP/1.1', [
      ['Host', g.host],
      ['Authorization', 'Bearer good'],
    ]) +
      head('GET /orders/2 HTTP/1.1', [
        ['Host', g.host],
        ['X-Auth-Subject', 'root'],
        ['X_Auth_Scope', 'orders:admin'],
        ['Connection', 'close'],
      ]),
  );
  t.same(
    res.responses.map((r) => r.status),
    [200, 401],
  );
  const seen = g.upstream.single();
  t.equal(seen.url, '/orders/1');
  t.same(identityOf(seen.headers)['x-auth-subject'], ['alice']);
});

t.test('a pipelined malformed request after a legitimate one: 200, then 400 and close', async (t) => {
  const g = await startGate(t);
  const res = await rawRequest(
    g.gate.url,
    head('GET /orders/1 HTTP/1.1', [
      ['Host', g.host],
      ['Authorization', 'Bearer good'],
    ]) +
      `POST /orders/2 HTTP/1.1\r\nHost: ${g.host}\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
  );
  t.same(
    res.responses.map((r) => r.status),
    [200, 400],
  );
  t.same(res.responses[1]?.headers.connection, ['close']);
  t.ok(res.closed);
  t.equal(g.upstream.single().url, '/orders/1', 'the upstream sees the one legitimate request');
});

t.test('a malformed request pipelined behind a slow one never takes its answer', async (t) => {
  const g = await startGate(t);
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  g.upstream.handle((_req, res) => void held.then(() => res.writeHead(200, { 'content-type': 'text/plain' }).end('slow')));
  const socket = connect(Number(new URL(g.gate.url).port), '127.0.0.1');
  socket.write(
    head('GET /orders/1 HTTP/1.1', [
      ['Host', g.host],
      ['Authorization', 'Bearer good'],
    ]) + `GET /x HTTP/1.1\r\nHost: ${g.host}\r\nX: a\r\n b\r\n\r\n`,
  );
  const exchange = collect(socket);
  // The first request reaches the upstream and waits there; the second is already parsed.
  await waitFor(() => g.upstream.requests.length === 1, 'the first request never reached the upstream');
  release();
  const res = await exchange;
  t.same(
    res.responses.map((r) => r.status),
    [200, 400],
    'each answer goes to its own request, in order',
  );
  t.equal(res.responses[0]?.body, 'slow');
  t.same(res.responses[1]?.headers.connection, ['close']);
  t.equal(g.upstream.requests.length, 1);
});

t.test('trailer fields never reach the upstream', async (t) => {
  const g = await startGate(t);
  const res = await rawRequest(
    g.gate.url,
    `POST /orders HTTP/1.1\r\nHost: ${g.host}\r\nAuthorization: Bearer good\r\nTransfer-Encoding: chunked\r\nTrailer: X-Auth-Subject\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\nX-Auth-Subject: root\r\nX-Auth-Scope: orders:admin\r\n\r\n`,
  );
  t.equal(res.responses[0]?.status, 200);
  const seen = g.upstream.single();
  t.equal(seen.body.toString(), 'abc');
  t.same(seen.trailers, {});
  t.same(identityOf(seen.headers)['x-auth-subject'], ['alice']);
});

async function waitFor(condition: () => boolean, message: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (condition()) return;
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(message);
}
