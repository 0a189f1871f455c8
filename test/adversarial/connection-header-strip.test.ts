/**
 * Traefik CVE-2024-45410: `Connection: close, X-Forwarded-Host` made the proxy drop a header it
 * had set itself. In tollgate a header named in `Connection` is removed from what the client sent
 * (RFC 9110 §7.6.1), and never from what tollgate adds: the identity headers, X-Forwarded-*, and
 * the Host the route was judged on.
 */
import t from 'tap';
import { head, rawRequest } from '../helpers/raw.js';
import { goodIdentity, identityOf, startGate } from '../helpers/gate.js';

const tricks = [
  'close, X-Auth-Subject',
  'X-Auth-Scope',
  'keep-alive, X-Auth-Subject, X-Auth-Client-Id, X-Auth-Scope, X-Auth-Issuer, X-Auth-Provider',
  'x_auth_subject, X.Auth.Scope',
  'close, X-Forwarded-Host, X-Forwarded-Proto, X-Forwarded-For',
  'close, Host',
];

for (const connection of tricks) {
  t.test(`Connection: ${connection}`, async (t) => {
    const g = await startGate(t);
    const res = await rawRequest(
      g.gate.url,
      head('GET /orders HTTP/1.1', [
        ['Host', g.host],
        ['Authorization', 'Bearer good'],
        ['X-Auth-Subject', 'mallory'],
        ['Connection', connection],
      ]),
      { responses: 1 },
    );
    t.equal(res.responses[0]?.status, 200);
    const seen = g.upstream.single();
    t.same(identityOf(seen.headers), goodIdentity(g), 'every identity header tollgate sets arrives, once');
    t.same(seen.headers.host, [g.host], 'the Host the route was judged on');
    t.same(seen.headers['x-forwarded-host'], [g.host]);
    t.same(seen.headers['x-forwarded-proto'], ['http']);
    t.same(seen.headers['x-forwarded-for'], ['127.0.0.1']);
    t.notOk(
      seen.headers.connection?.some((v) => /auth|forwarded|host/i.test(v)),
      'the client’s Connection list is not forwarded',
    );
  });
}

t.test('a header the client names in Connection is removed from what it sent', async (t) => {
  const g = await startGate(t);
  await rawRequest(
    g.gate.url,
    head('GET /orders HTTP/1.1', [
      ['Host', g.host],
      ['Authorization', 'Bearer good'],
      ['X-Trace', 'hop'],
      ['X-Kept', 'end-to-end'],
      ['Keep-Alive', 'timeout=5'],
      ['Connection', 'close, X-Trace'],
    ]),
  );
  const seen = g.upstream.single();
  t.equal(seen.headers['x-trace'], undefined);
  t.equal(seen.headers['keep-alive'], undefined);
  t.same(seen.headers['x-kept'], ['end-to-end']);
});

t.test('on a public route, Connection cannot remove X-Forwarded-* either', async (t) => {
  const g = await startGate(t);
  await rawRequest(
    g.gate.url,
    head('GET /public/x HTTP/1.1', [
      ['Host', g.host],
      ['X-Forwarded-Host', 'evil.example'],
      ['X-Forwarded-Proto', 'https'],
      ['Connection', 'close, X-Forwarded-Host, X-Forwarded-Proto, Host'],
    ]),
  );
  const seen = g.upstream.single();
  t.same(seen.headers['x-forwarded-host'], [g.host]);
  t.same(seen.headers['x-forwarded-proto'], ['http']);
  t.same(identityOf(seen.headers), {});
});
