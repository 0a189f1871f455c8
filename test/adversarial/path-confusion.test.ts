/**
 * Path confusion (Oathkeeper and Envoy route bypasses, Tomcat/Spring `..;/`, Apache
 * CVE-2021-41773/42013 `%2e` and `%252e`, IIS `\`): a target that some server behind tollgate could
 * read as another path is either refused with 400 or normalised once (SPEC §3.1); the route is
 * judged on that normalised path, and exactly that path is forwarded, to the upstream and nowhere
 * else. No such target is ever judged as the public route.
 */
import t from 'tap';
import { head, rawRequest } from '../helpers/raw.js';
import { startUpstream } from '../helpers/upstream.js';
import { startGate } from '../helpers/gate.js';

/** [target, normalised path it is judged and forwarded as, or 400 when it is refused]. */
const TARGETS: [string, string | 400][] = [
  ['/public/../admin/users', '/admin/users'],
  ['/public/./../admin/users', '/admin/users'],
  ['/public/%2e%2e/admin/users', '/admin/users'],
  ['/public/%2E%2e/admin/users', '/admin/users'],
  ['/public/.%2e/admin/users', '/admin/users'],
  ['/public/%2e./admin/users', '/admin/users'],
  ['/public/x/../../admin', '/admin'],
  ['/%70ublic/../adm%69n', '/admin'],
  ['/public;x/../admin', '/admin'],
  ['/public#/../admin', '/admin'],
  ['/admin;jsessionid=1/users', '/admin;jsessionid=1/users'],
  ['/adm%69n/users', '/admin/users'],
  ['/public/..', '/'],
  ['/public%2F..%2Fadmin', 400],
  ['/public/..%2fadmin', 400],
  ['/public/%2e%2e%2fadmin', 400],
  ['/public/%252e%252e/admin', 400],
  ['/public/%252E%252E/admin', 400],
  ['/public/%25252e%25252e/admin', 400],
  ['/public/..%252fadmin', 400],
  ['/public/%255c..%255cadmin', 400],
  ['/public/..;/admin', 400],
  ['/public/..;x=1/admin', 400],
  ['/public/.;/../admin', 400],
  ['/public\\..\\admin', 400],
  ['/public/%5c../admin', 400],
  ['/public/%5C..%5Cadmin', 400],
  ['/public/%00/../admin', 400],
  ['/public/%zz/../admin', 400],
  ['/../admin', 400],
  ['/public/../../admin', 400],
  ['/%2e%2e/admin', 400],
];

t.test('no disguised target is judged public, and the upstream gets the matched path', async (t) => {
  const g = await startGate(t);
  for (const [target, expected] of TARGETS) {
    const before = g.upstream.requests.length;
    const anonymous = await rawRequest(
      g.gate.url,
      head(`GET ${target} HTTP/1.1`, [
        ['Host', g.host],
        ['Connection', 'close'],
      ]),
    );
    const status = anonymous.responses[0]?.status;
    if (expected === 400) {
      t.equal(status, 400, `${target} is refused`);
      t.same(JSON.parse(anonymous.responses[0]?.body ?? '{}').error, 'invalid_request');
    } else {
      t.equal(status, 401, `${target} (judged as ${expected}) needs a token`);
    }
    t.equal(g.upstream.requests.length, before, `nothing of ${target} reached the upstream without a token`);

    const vouched = await rawRequest(
      g.gate.url,
      head(`GET ${target} HTTP/1.1`, [
        ['Host', g.host],
        ['Authorization', 'Bearer admin'],
        ['Connection', 'close'],
      ]),
    );
    if (expected === 400) {
      t.equal(vouched.responses[0]?.status, 400, `${target} is refused with a token too`);
      t.equal(g.upstream.requests.length, before);
    } else {
      t.equal(vouched.responses[0]?.status, 200, `${target} with a token`);
      t.equal(g.upstream.requests.at(-1)?.url, expected, `${target} is forwarded as ${expected}`);
    }
  }
});

t.test('a scoped route cannot be reached under a disguise without its scope', async (t) => {
  const g = await startGate(t);
  for (const target of ['/public/../admin', '/public/%2e%2e/admin', '/adm%69n', '/public;x/../admin', '/admin;x']) {
    const res = await rawRequest(
      g.gate.url,
      head(`GET ${target} HTTP/1.1`, [
        ['Host', g.host],
        ['Authorization', 'Bearer good'],
        ['Connection', 'close'],
      ]),
    );
    t.equal(res.responses[0]?.status, 403, `${target} needs orders:admin`);
  }
  t.equal(g.upstream.requests.length, 0);
});

t.test('what is public stays public, forwarded as matched', async (t) => {
  const g = await startGate(t);
  for (const [target, path] of <[string, string][]>[
    ['/public/a/../b', '/public/b'],
    ['/public/%7euser', '/public/~user'],
    ['/public/caf%c3%a9', '/public/caf%C3%A9'],
    ['/public//../x', '/public/x'],
    ['/public/x?../../admin', '/public/x?../../admin'],
  ]) {
    const res = await rawRequest(
      g.gate.url,
      head(`GET ${target} HTTP/1.1`, [
        ['Host', g.host],
        ['Connection', 'close'],
      ]),
    );
    t.equal(res.responses[0]?.status, 200, target);
    t.equal(g.upstream.requests.at(-1)?.url, path);
  }
});

t.test('absolute-form and authority-like targets never leave for another host', async (t) => {
  const g = await startGate(t);
  const decoy = await startUpstream();
  t.teardown(() => decoy.close());
  const elsewhere = new URL(decoy.url).host;
  for (const target of [`http://${elsewhere}/public/x`, `http://${g.host}/public/x`, `https://${elsewhere}/x`, '*']) {
    const res = await rawRequest(
      g.gate.url,
      head(`${target === '*' ? 'OPTIONS' : 'GET'} ${target} HTTP/1.1`, [
        ['Host', g.host],
        ['Authorization', 'Bearer good'],
        ['Connection', 'close'],
      ]),
    );
    t.equal(res.responses[0]?.status, 400, `${target} is refused`);
    t.equal(JSON.parse(res.responses[0]?.body ?? '{}').error, 'invalid_request');
  }
  // `//host/x` is a path (origin-form): it goes to the upstream, as that path.
  const res = await rawRequest(
    g.gate.url,
    head(`GET //${elsewhere}/public/x HTTP/1.1`, [
      ['Host', g.host],
      ['Authorization', 'Bearer good'],
      ['Connection', 'close'],
    ]),
  );
  t.equal(res.responses[0]?.status, 200);
  t.equal(g.upstream.single().url, `//${elsewhere}/public/x`);
  const anonymous = await rawRequest(
    g.gate.url,
    head(`GET //${elsewhere}/public/x HTTP/1.1`, [
      ['Host', g.host],
      ['Connection', 'close'],
    ]),
  );
  t.equal(anonymous.responses[0]?.status, 401, '`//host/public/x` is not the public route');
  t.equal(decoy.requests.length, 0, 'nothing ever reached another host');
});

t.test('two Host headers: 400, whichever a route would match', async (t) => {
  const g = await startGate(t, {
    config: {
      routes: [{ match: { host: 'open.example' }, public: true }],
    },
  });
  for (const hosts of [
    ['open.example', 'closed.example'],
    ['closed.example', 'open.example'],
  ]) {
    const res = await rawRequest(
      g.gate.url,
      head('GET /x HTTP/1.1', [...hosts.map((h) => ['Host', h] as [string, string]), ['Connection', 'close']]),
    );
    t.equal(res.responses[0]?.status, 400, `Host: ${hosts.join(' + Host: ')}`);
  }
  t.equal(g.upstream.requests.length, 0);
  const one = await rawRequest(
    g.gate.url,
    head('GET /x HTTP/1.1', [
      ['Host', 'open.example'],
      ['Connection', 'close'],
    ]),
  );
  t.equal(one.responses[0]?.status, 200);
  t.same(g.upstream.single().headers.host, ['open.example']);
});
