/**
 * The loader is total (issue 17): every input ends in a configuration or in problems naming their
 * paths — never an exception, a hang or unbounded work — and nothing it accepts can silently skip
 * a check. One test per finding of the issue, each through loadConfig on a real file.
 */
import { execFileSync } from 'node:child_process';
import { symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { formatProblems, loadConfig, type LoadResult, type Problem } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { MAX_VALUES } from '../../src/config/yaml.js';

const SECRET = 'S3CRET-total-4b1d';

const GOOD = `upstream:
  url: "http://127.0.0.1:8080"
providers:
  - name: acme
    issuer: "https://login.acme.example"
    client_id: tollgate
    client_secret: "${SECRET}"
`;

let count = 0;
function load(t: Test, yaml: string, env: NodeJS.ProcessEnv = {}): LoadResult {
  const dir = t.testdir({});
  const file = path.join(dir, `tollgate-${count++}.yaml`);
  writeFileSync(file, yaml);
  return loadConfig({ configPath: file, env });
}

function problems(t: Test, result: LoadResult): string[] {
  if (result.ok) {
    t.fail('expected problems, the configuration was accepted');
    return [];
  }
  t.notOk(formatProblems(result.problems).includes(SECRET), 'no problem repeats the secret');
  return result.problems.map((p: Problem) => `${p.path}: ${p.message}`);
}

function ok(t: Test, result: LoadResult): Config {
  if (!result.ok) throw new Error(`expected a valid configuration, got:\n${formatProblems(result.problems)}`);
  return result.config;
}

t.test('a route that can never match is refused', async (t) => {
  t.same(problems(t, load(t, `${GOOD}routes: [{match: {host: "api.example:8080"}, scopes: [admin]}]\n`)), [
    'routes[0].match.host: never matches: a request is matched on its host without the port (an IPv6 address in brackets)',
  ]);
  t.same(problems(t, load(t, `${GOOD}routes: [{match: {host: "::1"}}]\n`)), [
    'routes[0].match.host: never matches: a request is matched on its host without the port (an IPv6 address in brackets)',
  ]);
  t.same(
    problems(
      t,
      load(
        t,
        `${GOOD}routes:
  - { match: { path_prefix: "/x/../admin" }, scopes: [admin] }
  - { match: { path_prefix: "/%61dmin/" } }
  - { match: { path_prefix: "/../x" } }
  - { match: { path_prefix: "/a%2fb" } }
  - { match: { path_prefix: "/a?b=1" } }
`,
      ),
    ),
    [
      'routes[0].match.path_prefix: never matches: requests are matched on the normalised path; write "/admin"',
      'routes[1].match.path_prefix: never matches: requests are matched on the normalised path; write "/admin/"',
      'routes[2].match.path_prefix: never matches: the path climbs above the root',
      'routes[3].match.path_prefix: never matches: an encoded slash, backslash or NUL in the path',
      'routes[4].match.path_prefix: never matches: a path prefix cannot hold a query (?)',
    ],
  );
  // What requests are matched on passes: a bracketed IPv6 host, a prefix ending in `/`, an escape kept.
  const config = ok(
    t,
    load(
      t,
      `${GOOD}routes:
  - { match: { host: "[::1]", path_prefix: "/api/" } }
  - { match: { host: "API.example", path_prefix: "/caf%C3%A9" } }
`,
    ),
  );
  t.equal(config.routes.length, 2);
});

t.test('__proto__, constructor and prototype are refused as keys anywhere', async (t) => {
  t.same(
    problems(
      t,
      load(
        t,
        `${GOOD}    __proto__: { issuer: "https://hidden.example", client_secret: x }
cache: { constructor: 1 }
routes: [{ match: { prototype: 1 } }]
`,
      ),
    ),
    [
      'providers[0].__proto__: reserved name, not accepted as a key',
      'cache.constructor: reserved name, not accepted as a key',
      'routes[0].match.prototype: reserved name, not accepted as a key',
    ],
  );

  const dir = t.testdir({
    'providers.d': {
      'hidden.yaml': `__proto__: { issuer: "https://hidden.example", client_secret: x }\nclient_id: tollgate\n`,
    },
  });
  const file = path.join(dir, 'tollgate.yaml');
  writeFileSync(file, `${GOOD}providers_dir: providers.d\n`);
  const result = loadConfig({ configPath: file, env: {} });
  t.match(problems(t, result), ['providers_dir/hidden.yaml: __proto__: reserved name, not accepted as a key']);
});

t.test('identity headers that collide, or that tollgate sets itself', async (t) => {
  t.same(problems(t, load(t, `${GOOD}headers: { claims: { X-Auth-Provider: sub } }\n`)), [
    'headers.provider: the same header as headers.claims.X-Auth-Provider: both would be sent',
  ]);
  t.same(problems(t, load(t, `${GOOD}headers: { claims: { X-Auth-Sub: sub, x_auth_sub: iss, Host: iss } }\n`)), [
    'headers.claims.x_auth_sub: the same header as headers.claims.X-Auth-Sub: both would be sent',
    'headers.claims.Host: "Host" is a header tollgate sets or forwards itself',
  ]);
  // The default claim map is sent when claims is left out.
  t.same(problems(t, load(t, `${GOOD}headers: { claims_json: X-Auth-Subject }\n`)), [
    'headers.claims_json: the same header as headers.claims (default X-Auth-Subject): both would be sent',
  ]);
  // null turns the provider header off: a claim may then take its name.
  ok(t, load(t, `${GOOD}headers: { provider: null, claims: { X-Auth-Provider: iss } }\n`));
});

t.test('a token source listed twice', async (t) => {
  t.same(problems(t, load(t, `${GOOD}token_sources: [header, "cookie:at", header, "cookie:at"]\n`)), [
    'token_sources[2]: listed twice (also token_sources[0])',
    'token_sources[3]: listed twice (also token_sources[1])',
  ]);
});

t.test('listen and admin_listen on one address', async (t) => {
  t.same(problems(t, load(t, `listen: "127.0.0.1:7080"\nadmin_listen: "127.0.0.1:7080"\n${GOOD}`)), [
    'admin_listen: the same address as listen ("127.0.0.1:7080")',
  ]);
  t.same(problems(t, load(t, `${GOOD}`, { TOLLGATE_ADMIN_LISTEN: '0.0.0.0:7080' })), [
    'admin_listen: the same address as listen ("0.0.0.0:7080")',
  ]);
  ok(t, load(t, `listen: "127.0.0.1:0"\nadmin_listen: "127.0.0.1:0"\n${GOOD}`));
  ok(t, load(t, `listen: "127.0.0.1:7080"\nadmin_listen: "127.0.0.2:7080"\n${GOOD}`));
});

t.test('numbers and timers out of range', async (t) => {
  const yaml = `${GOOD}    timeout_ms: 2147483648
    queue_timeout_ms: -1e308
upstream2: 1
cache: { max_entries: 4294967296, ttl_s: .inf }
shutdown: { drain_delay_s: 2200000 }
server: { request_timeout_ms: 1e400 }
`;
  t.same(problems(t, load(t, yaml)), [
    'server.request_timeout_ms: expected a number, got Infinity',
    'providers[0].timeout_ms: must be at most 2147483647',
    'providers[0].queue_timeout_ms: must be at least 0',
    'cache.ttl_s: expected a number, got Infinity',
    'cache.max_entries: must be at most 10000000',
    'shutdown.drain_delay_s: must be at most 2147483',
    'upstream2: unknown key',
  ]);
});

t.test('an unknown log level and environment values that are not URLs', async (t) => {
  t.same(problems(t, load(t, GOOD, { TOLLGATE_LOG_LEVEL: 'verbose', TOLLGATE_UPSTREAM_URL: '127.0.0.1:8080' })), [
    'TOLLGATE_LOG_LEVEL: expected one of fatal, error, warn, info, debug, trace, silent',
    'upstream.url: expected a URL (https://…)',
  ]);
  const zeroFile = loadConfig({ env: { TOLLGATE_UPSTREAM_URL: 'x', TOLLGATE_ISSUER: '', TOLLGATE_CLIENT_ID: 'c' } });
  t.same(problems(t, zeroFile), [
    'TOLLGATE_ISSUER: required without a configuration file (or give --config FILE)',
    // Without a file, problems name the variables the operator set.
    'TOLLGATE_UPSTREAM_URL: expected a URL (https://…)',
  ]);
});

t.test('an unset ${VAR}, an empty or scheme-less URL: problems, not exceptions', async (t) => {
  t.same(problems(t, load(t, GOOD.replace('"http://127.0.0.1:8080"', '"${NOPE}"'))), [
    'upstream.url: environment variable NOPE is not set',
  ]);
  t.same(problems(t, load(t, GOOD.replace('"http://127.0.0.1:8080"', '""'))), ['upstream.url: expected a URL (https://…)']);
  t.same(problems(t, load(t, GOOD.replace('"https://login.acme.example"', '"login.acme.example:443"'))), [
    'providers[0].issuer: expected an https:// URL',
  ]);
});

t.test('YAML: aliases, merge keys and limits', async (t) => {
  t.same(problems(t, load(t, `${GOOD}x: &a [*a]\n`)), ['x[0]: YAML: an alias inside the node it refers to']);
  // The same loop through a merge key, directly, nested, or through a sequence holding the mapping.
  t.same(problems(t, load(t, `${GOOD}x: &a { <<: *a }\n`)), ['x.<<: YAML: an alias inside the node it refers to']);
  t.same(problems(t, load(t, `${GOOD}x: &a { b: { <<: *a } }\n`)), ['x.b.<<: YAML: an alias inside the node it refers to']);
  t.same(problems(t, load(t, `${GOOD}x: &a [{ <<: *a }]\n`)), ['x[0].<<: YAML: an alias inside the node it refers to']);
  // Merge keys are honoured: keys written in the mapping win, then earlier sources over later ones.
  const config = ok(
    t,
    load(
      t,
      `upstream: { url: "http://127.0.0.1:8080" }
providers:
  - &p { name: acme, issuer: "https://login.acme.example", client_id: tollgate, client_secret: x, timeout_ms: 5 }
  - { <<: *p, name: beta, timeout_ms: 6 }
  - { !!merge <<: [{ name: gamma }, *p] }
`,
    ),
  );
  t.same(
    config.providers.map((p) => [p.name, p.timeout_ms]),
    [
      ['acme', 5],
      ['beta', 6],
      ['gamma', 5],
    ],
  );
  t.same(problems(t, load(t, `${GOOD}cache: { <<: [1] }\n`)), [
    'cache.<<: YAML: a merge (<<) takes a mapping or a list of mappings',
  ]);

  // A billion laughs: 10^9 values from a few lines, stopped at the budget.
  const laughs = ['l0: &l0 [x, x, x, x, x, x, x, x, x, x]'];
  for (let i = 1; i < 9; i++)
    laughs.push(
      `l${i}: &l${i} [${Array(10)
        .fill(`*l${i - 1}`)
        .join(', ')}]`,
    );
  const result = load(t, `${GOOD}${laughs.join('\n')}\n`);
  t.match(problems(t, result), [new RegExp(`: YAML: more than ${MAX_VALUES} values \\(aliases included\\)$`)]);

  t.match(problems(t, load(t, `${GOOD}x: ${'['.repeat(100)}${']'.repeat(100)}\n`)), [
    /x(\[0\])+: YAML: nested more than 64 levels$/,
  ]);
  t.match(problems(t, load(t, `${GOOD}x: ${'['.repeat(200_000)}${']'.repeat(200_000)}\n`)), [
    /: YAML: (resource exhaustion at line \d+, column \d+|nested too deeply)$/,
  ]);
  t.same(problems(t, load(t, `${GOOD}cache: { ttl_s: 1, ttl_s: 2 }\n`)), ['cache.ttl_s: duplicate key']);
  t.same(problems(t, load(t, `${GOOD}cache: { [a]: 1 }\n`)), ['cache: YAML: a key must be a plain string']);
  t.same(problems(t, load(t, `${GOOD}cache: { ttl_s: !!binary aGVsbG8= }\n`)), [
    'cache.ttl_s: YAML: only strings, numbers, booleans and null are accepted here',
  ]);
});

t.test('parsing is linear in the number of keys (the duplicate check was quadratic)', async (t) => {
  const timed = (n: number) => {
    const keys = Array.from({ length: n }, (_, i) => `  k${i}: 1`).join('\n');
    const start = process.hrtime.bigint();
    const ps = problems(t, load(t, `${GOOD}cache:\n${keys}\n  k7: 2\n`));
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    t.same(ps, ['cache.k7: duplicate key']);
    return ms;
  };
  timed(5_000); // warm-up
  const small = timed(10_000);
  const large = timed(40_000);
  // Four times the keys: about four times the time when linear, sixteen when quadratic. A ratio in
  // one run, so a loaded machine slows both alike.
  t.ok(large / small < 9, `10,000 keys: ${Math.round(small)} ms, 40,000 keys: ${Math.round(large)} ms`);
});

t.test('files: regular files only, bounded size', async (t) => {
  const dir = t.testdir({ 'secret.txt': 'x\n', 'big.yaml': 'a: "' + 'x'.repeat(1024 * 1024) + '"\n' });
  execFileSync('mkfifo', [path.join(dir, 'fifo')]);
  symlinkSync('loop-b', path.join(dir, 'loop-a'));
  symlinkSync('loop-a', path.join(dir, 'loop-b'));
  const main = (secretFile: string) => {
    const file = path.join(dir, 'tollgate.yaml');
    writeFileSync(file, GOOD.replace(`client_secret: "${SECRET}"`, `client_secret_file: "${secretFile}"`));
    return loadConfig({ configPath: file, env: {} });
  };
  const unread = 'providers[0].client_secret: required with auth_method client_secret_basic';
  t.same(problems(t, main('fifo')), ['providers[0].client_secret_file: cannot read fifo: not a regular file (a FIFO)', unread]);
  t.same(problems(t, main('/dev/zero')), [
    'providers[0].client_secret_file: cannot read /dev/zero: not a regular file (a device)',
    unread,
  ]);
  t.same(problems(t, main('loop-a')), [
    'providers[0].client_secret_file: cannot read loop-a: ELOOP (a symbolic link loop)',
    unread,
  ]);
  t.ok(main('secret.txt').ok);
  for (const name of ['fifo', 'loop-a', 'big.yaml']) {
    const result = loadConfig({ configPath: path.join(dir, name), env: {} });
    t.match(problems(t, result), [
      new RegExp(`${name}: cannot read: (not a regular file \\(a FIFO\\)|ELOOP|larger than 1048576 bytes)`),
    ]);
  }

  // The same in providers_dir: named, not read, and the running server never blocks on them.
  const folder = t.testdir({
    'providers.d': { 'ok.yaml': `issuer: "https://ok.example"\nclient_id: c\nclient_secret_file: ../s\n` },
    s: 'x',
  });
  execFileSync('mkfifo', [path.join(folder, 'providers.d', 'pipe.yaml')]);
  symlinkSync('loop.yaml', path.join(folder, 'providers.d', 'loop.yaml'));
  const file = path.join(folder, 'tollgate.yaml');
  writeFileSync(file, `${GOOD}providers_dir: providers.d\n`);
  t.same(problems(t, loadConfig({ configPath: file, env: {} })), [
    'providers_dir/loop.yaml: cannot read: ELOOP (a symbolic link loop)',
    'providers_dir/pipe.yaml: cannot read: not a regular file (a FIFO)',
  ]);
});

t.test('problems print one line each, one message per problem', async (t) => {
  const dir = t.testdir({ 'providers.d': { 'a\nforged: line.yaml': 'issuer: x\n' } });
  const file = path.join(dir, 'tollgate.yaml');
  writeFileSync(file, `${GOOD}providers_dir: providers.d\n`);
  const result = loadConfig({ configPath: file, env: {} });
  if (result.ok) return t.fail('accepted');
  const printed = formatProblems(result.problems).split('\n');
  t.equal(printed.length, result.problems.length, 'one line per problem');
  t.ok(
    printed.every((line) => line.startsWith('  providers_dir/a\\u000aforged: line.yaml')),
    printed.join('\n'),
  );

  t.same(problems(t, load(t, GOOD.replace('client_id: tollgate', 'client_id: []'))), [
    'providers[0].client_id: expected a string, got a list',
  ]);
  t.same(problems(t, load(t, `${GOOD}    timeout_ms: -1e308\n`)), ['providers[0].timeout_ms: must be greater than 0']);
  t.same(problems(t, load(t, `${GOOD}    timeout_ms: 1.5\n`)), ['providers[0].timeout_ms: expected an integer, got a number']);
});
