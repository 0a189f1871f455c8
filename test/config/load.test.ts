/**
 * SPEC §1–2: from a YAML file (or the zero-file environment) to a validated, frozen configuration,
 * or every problem with its path. Files are written under a per-test directory; the environment is
 * passed in, never read from the test process.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { formatProblems, loadConfig, type LoadResult, type Problem } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { createPki } from '../helpers/pki.js';

/** A recognisable secret: no problem message may ever contain it. */
const SECRET = 'S3CRET-zebra-7f3a91';

const GOOD = `
upstream:
  url: "http://127.0.0.1:8080"
providers:
  - name: acme
    issuer: "https://login.acme.example"
    client_id: tollgate
    client_secret: "${SECRET}"
`;

const dirs = new WeakMap<Test, { dir: string; count: number }>();

/** Writes the YAML to a new file in the test's own directory and returns its path. */
function writeConfig(t: Test, yaml: string): string {
  let entry = dirs.get(t);
  if (entry === undefined) {
    entry = { dir: t.testdir({}), count: 0 };
    dirs.set(t, entry);
  }
  const file = path.join(entry.dir, `tollgate-${entry.count++}.yaml`);
  writeFileSync(file, yaml);
  return file;
}

function ok(t: Test, result: LoadResult): Config {
  if (!result.ok) {
    t.fail(`expected a valid configuration, got:\n${formatProblems(result.problems)}`);
    throw new Error('invalid configuration');
  }
  return result.config;
}

function problems(t: Test, result: LoadResult): Problem[] {
  if (result.ok) {
    t.fail('expected problems, the configuration was accepted');
    return [];
  }
  return result.problems;
}

/** `path: message` lines, the way check-config prints them. */
const lines = (ps: readonly Problem[]) => ps.map((p) => `${p.path}: ${p.message}`);

t.test('a YAML file with the defaults of SPEC §2', async (t) => {
  const config = ok(t, loadConfig({ configPath: writeConfig(t, GOOD), env: {} }));
  t.equal(config.listen, '0.0.0.0:7080');
  t.equal(config.admin_listen, '0.0.0.0:7081');
  t.same(config.upstream, { url: 'http://127.0.0.1:8080', timeout_ms: 30000 });
  const p = config.providers[0]!;
  t.equal(p.name, 'acme');
  t.equal(p.client_secret, SECRET);
  t.equal(p.auth_method, 'client_secret_basic');
  t.equal(p.introspection_response, 'json');
  t.equal(p.timeout_ms, 2000);
  t.equal(p.max_concurrency, 32);
  t.equal(p.queue_timeout_ms, 1000);
  t.same(p.circuit_breaker, { failures: 5, max_pause_s: 30 });
  t.equal(p.allow_http, false);
  t.equal(p.audience, undefined);
  t.equal(p.introspection_endpoint, undefined);
  t.equal(config.providers_dir, undefined);
  t.equal(config.provider_header, null);
  t.same(config.cache, { ttl_s: 60, negative_ttl_s: 5, max_entries: 100000, stale_if_error_s: 0, refresh_ahead_s: 5 });
  t.equal(config.clock_skew_s, 30);
  t.same(config.token_sources, ['header']);
  t.same(config.routes, []);
  t.same(config.headers, {
    provider: 'X-Auth-Provider',
    claims_json: null,
    strip_prefixes: ['X-Auth-'],
    forward_authorization: false,
  });
  t.equal(config.access_log, true);
  t.same(config.shutdown, { drain_delay_s: 5, timeout_s: 25 });
  t.ok(Object.isFrozen(config) && Object.isFrozen(config.providers[0]) && Object.isFrozen(config.cache), 'deep-frozen');
});

t.test('route defaults and a single-string audience', async (t) => {
  const config = ok(
    t,
    loadConfig({
      configPath: writeConfig(
        t,
        `${GOOD}    audience: orders-api
routes:
  - match: { path_prefix: /health }
    public: true
  - providers: [acme]
`,
      ),
      env: {},
    }),
  );
  t.same(config.providers[0]!.audience, ['orders-api']);
  t.same(config.routes[0], { match: { path_prefix: '/health' }, public: true, scopes: [] });
  t.same(config.routes[1], { match: {}, public: false, scopes: [], providers: ['acme'] });
});

t.test('TOLLGATE_CONFIG names the file when --config is not given', async (t) => {
  const config = ok(t, loadConfig({ env: { TOLLGATE_CONFIG: writeConfig(t, GOOD) } }));
  t.equal(config.providers[0]!.name, 'acme');
});

t.test('a missing file and a non-mapping file are problems', async (t) => {
  const dir = t.testdir({ 'list.yaml': '- a\n- b\n' });
  t.match(lines(problems(t, loadConfig({ configPath: path.join(dir, 'nope.yaml'), env: {} }))), [
    /nope\.yaml: cannot read: ENOENT/,
  ]);
  t.match(lines(problems(t, loadConfig({ configPath: path.join(dir, 'list.yaml'), env: {} }))), [
    /list\.yaml: expected a YAML mapping/,
  ]);
});

t.test('${ENV} substitution', async (t) => {
  t.test('replaces a variable anywhere in a string', async (t) => {
    const yaml = GOOD.replace(SECRET, '${ACME_SECRET}').replace('http://127.0.0.1:8080', 'http://${API_HOST}:8080/v1');
    const config = ok(t, loadConfig({ configPath: writeConfig(t, yaml), env: { ACME_SECRET: SECRET, API_HOST: 'api.local' } }));
    t.equal(config.providers[0]!.client_secret, SECRET);
    t.equal(config.upstream.url, 'http://api.local:8080/v1');
  });

  t.test('an unset variable is a problem at its path, naming the variable', async (t) => {
    const yaml = GOOD.replace(SECRET, '${ACME_SECRET}');
    const ps = problems(t, loadConfig({ configPath: writeConfig(t, yaml), env: {} }));
    t.match(lines(ps), ['providers[0].client_secret: environment variable ACME_SECRET is not set']);
  });

  t.test('an empty variable is set (it substitutes the empty string)', async (t) => {
    const yaml = GOOD.replace(SECRET, 'x${EMPTY}y');
    const config = ok(t, loadConfig({ configPath: writeConfig(t, yaml), env: { EMPTY: '' } }));
    t.equal(config.providers[0]!.client_secret, 'xy');
  });
});

t.test('client_secret_file', async (t) => {
  const withFile = (file: string) => GOOD.replace(`client_secret: "${SECRET}"`, `client_secret_file: ${file}`);

  t.test('is read relative to the configuration, its trailing newline trimmed', async (t) => {
    const dir = t.testdir({ 'tollgate.yaml': withFile('secrets/acme'), secrets: { acme: `${SECRET}\n`, crlf: `${SECRET}\r\n` } });
    const config = ok(t, loadConfig({ configPath: path.join(dir, 'tollgate.yaml'), env: {} }));
    t.equal(config.providers[0]!.client_secret, SECRET);
    t.notOk('client_secret_file' in config.providers[0]!, 'the file key is replaced by the secret');

    writeFileSync(path.join(dir, 'abs.yaml'), withFile(path.join(dir, 'secrets', 'crlf')));
    const absolute = ok(t, loadConfig({ configPath: path.join(dir, 'abs.yaml'), env: {} }));
    t.equal(absolute.providers[0]!.client_secret, SECRET, 'an absolute path; CRLF trimmed too');
  });

  t.test('only one trailing newline goes: inner whitespace is part of the secret', async (t) => {
    const dir = t.testdir({ 'tollgate.yaml': withFile('acme'), acme: ` ${SECRET} \n` });
    const config = ok(t, loadConfig({ configPath: path.join(dir, 'tollgate.yaml'), env: {} }));
    t.equal(config.providers[0]!.client_secret, ` ${SECRET} `);
  });

  t.test('client_secret and client_secret_file together are a problem', async (t) => {
    const yaml = `${GOOD}    client_secret_file: acme\n`;
    const dir = t.testdir({ 'tollgate.yaml': yaml, acme: SECRET });
    const ps = problems(t, loadConfig({ configPath: path.join(dir, 'tollgate.yaml'), env: {} }));
    t.match(lines(ps), ['providers[0].client_secret_file: give client_secret or client_secret_file, not both']);
    t.notMatch(JSON.stringify(ps), SECRET);
  });

  t.test('a missing or unreadable file is a problem at its path', async (t) => {
    const dir = t.testdir({ 'tollgate.yaml': withFile('nope'), locked: SECRET });
    t.match(lines(problems(t, loadConfig({ configPath: path.join(dir, 'tollgate.yaml'), env: {} }))), [
      /^providers\[0\]\.client_secret_file: cannot read nope: ENOENT$/,
    ]);
    mkdirSync(path.join(dir, 'sub'));
    writeFileSync(path.join(dir, 'dir.yaml'), withFile('sub'));
    t.match(lines(problems(t, loadConfig({ configPath: path.join(dir, 'dir.yaml'), env: {} }))), [
      /^providers\[0\]\.client_secret_file: cannot read sub: EISDIR$/,
    ]);
    if (process.getuid?.() !== 0) {
      // root reads any file, so permissions can only be tested as another user.
      chmodSync(path.join(dir, 'locked'), 0o000);
      writeFileSync(path.join(dir, 'tollgate.yaml'), withFile('locked'));
      t.match(lines(problems(t, loadConfig({ configPath: path.join(dir, 'tollgate.yaml'), env: {} }))), [
        /^providers\[0\]\.client_secret_file: cannot read locked: EACCES$/,
      ]);
    }
  });
});

t.test('unknown keys are rejected at every level, with their path', async (t) => {
  const yaml = `
lisen: "0.0.0.0:1"
upstream:
  url: "http://127.0.0.1:8080"
  timeout: 5
providers:
  - name: acme
    issuer: "https://login.acme.example"
    client_id: tollgate
    client_secret: s
    circuit_breaker: { failures: 3, max_pause: 10 }
  - name: beta
    issuer: "https://login.beta.example"
    clent_id: tollgate
    client_secret: s
cache: { ttl: 10 }
routes:
  - match: { path: /x }
    scope: [a]
headers: { claim: {} }
shutdown: { drain_delay: 1 }
`;
  const ps = lines(problems(t, loadConfig({ configPath: writeConfig(t, yaml), env: {} })));
  for (const want of [
    'lisen: unknown key',
    'upstream.timeout: unknown key',
    'providers[0].circuit_breaker.max_pause: unknown key',
    'providers[1].clent_id: unknown key',
    'providers[1].client_id: required',
    'cache.ttl: unknown key',
    'routes[0].match.path: unknown key',
    'routes[0].scope: unknown key',
    'headers.claim: unknown key',
    'shutdown.drain_delay: unknown key',
  ]) {
    t.ok(ps.includes(want), want);
  }
  t.equal(ps.length, 10, `exactly these problems:\n${ps.join('\n')}`);
});

t.test('every problem is listed at once, across sections', async (t) => {
  const yaml = `
listen: "nowhere"
upstream:
  url: "ftp://x"
providers:
  - name: Acme
    issuer: "not a url"
    client_id: tollgate
  - name: beta
    issuer: "https://login.beta.example"
    client_id: tollgate
    client_secret: s
    auth_method: magic
    timeout_ms: -1
cache: { ttl_s: -5 }
clock_skew_s: "30"
token_sources: [header, bogus]
`;
  const ps = lines(problems(t, loadConfig({ configPath: writeConfig(t, yaml), env: {} })));
  for (const want of [
    /^listen: expected host:port$/,
    /^upstream\.url: /,
    /^providers\[0\]\.name: expected \[a-z0-9-\]\{1,40\}$/,
    /^providers\[0\]\.issuer: /,
    /^providers\[1\]\.auth_method: /,
    /^providers\[1\]\.timeout_ms: /,
    /^cache\.ttl_s: /,
    /^clock_skew_s: /,
    /^token_sources\[1\]: /,
  ]) {
    t.ok(
      ps.some((p) => want.test(p)),
      `${want} among\n${ps.join('\n')}`,
    );
  }
});

t.test('cross-section problems are listed alongside the others', async (t) => {
  // A route naming an unknown provider and a typo elsewhere: both, in one run.
  const yaml = `${GOOD}    clent_id: x
  - name: acme
    issuer: "https://login.acme.example"
    client_id: tollgate
    client_secret: s
routes:
  - providers: [acme, nope]
`;
  const ps = lines(problems(t, loadConfig({ configPath: writeConfig(t, yaml), env: {} })));
  t.ok(ps.includes('providers[0].clent_id: unknown key'), ps.join('\n'));
  t.ok(
    ps.some((p) => p.startsWith('providers[1].name: duplicate')),
    ps.join('\n'),
  );
  t.ok(ps.includes('routes[0].providers[1]: unknown provider nope'), ps.join('\n'));
});

t.test('routes naming unknown providers', async (t) => {
  const yaml = `${GOOD}routes:
  - match: { path_prefix: /a }
    providers: [acme]
  - match: { path_prefix: /b }
    providers: [nope, acme, other]
`;
  t.same(lines(problems(t, loadConfig({ configPath: writeConfig(t, yaml), env: {} }))), [
    'routes[1].providers[0]: unknown provider nope',
    'routes[1].providers[2]: unknown provider other',
  ]);
});

t.test('duplicate provider names', async (t) => {
  const yaml = `${GOOD}  - name: acme
    issuer: "https://other.example"
    client_id: tollgate
    client_secret: s
`;
  const ps = lines(problems(t, loadConfig({ configPath: writeConfig(t, yaml), env: {} })));
  t.equal(ps.length, 1, ps.join('\n'));
  t.match(ps[0], /^providers\[1\]\.name: duplicate/);
});

t.test('no provider at all is a problem', async (t) => {
  const yaml = 'upstream: { url: "http://127.0.0.1:8080" }\n';
  t.same(lines(problems(t, loadConfig({ configPath: writeConfig(t, yaml), env: {} }))), [
    'providers: at least one provider is required (here or in providers_dir)',
  ]);
});

t.test('route rules', async (t) => {
  const yaml = `${GOOD}routes:
  - match: { path_prefix: health }
  - match: { path_prefix: /health }
    public: true
    scopes: [a]
    providers: [acme]
  - match: { methods: ["GET POST"] }
`;
  const ps = lines(problems(t, loadConfig({ configPath: writeConfig(t, yaml), env: {} })));
  t.ok(ps.includes('routes[0].match.path_prefix: expected a path starting with /'), ps.join('\n'));
  t.ok(ps.includes('routes[1].scopes: a public route takes no scopes'), ps.join('\n'));
  t.ok(ps.includes('routes[1].providers: a public route takes no providers'), ps.join('\n'));
  t.ok(ps.includes('routes[2].match.methods[0]: expected an HTTP method'), ps.join('\n'));
});

t.test('http:// issuers and endpoints', async (t) => {
  const provider = (issuer: string, extra = '') => `
upstream: { url: "http://127.0.0.1:8080" }
providers:
  - name: p
    issuer: "${issuer}"
    client_id: c
    client_secret: s
${extra}`;
  for (const issuer of [
    'http://127.0.0.1:9000',
    'http://127.8.9.10',
    'http://localhost:9000',
    'http://[::1]:9000',
    'http://LOCALHOST',
  ]) {
    ok(t, loadConfig({ configPath: writeConfig(t, provider(issuer)), env: {} }));
    t.pass(`${issuer} is loopback: accepted`);
  }
  t.same(lines(problems(t, loadConfig({ configPath: writeConfig(t, provider('http://login.example')), env: {} }))), [
    'providers[0].issuer: http:// is accepted only for loopback hosts unless allow_http is true',
  ]);
  t.same(
    lines(
      problems(
        t,
        loadConfig({
          configPath: writeConfig(
            t,
            provider('https://login.example', '    introspection_endpoint: "http://10.0.0.1/introspect"\n'),
          ),
          env: {},
        }),
      ),
    ),
    ['providers[0].introspection_endpoint: http:// is accepted only for loopback hosts unless allow_http is true'],
  );
  t.same(
    lines(problems(t, loadConfig({ configPath: writeConfig(t, provider('http://127.0.0.1.example')), env: {} }))),
    ['providers[0].issuer: http:// is accepted only for loopback hosts unless allow_http is true'],
    'a name that starts like a loopback address is not one',
  );
  const allowed = ok(
    t,
    loadConfig({ configPath: writeConfig(t, provider('http://login.example', '    allow_http: true\n')), env: {} }),
  );
  t.equal(allowed.providers[0]!.allow_http, true);
  t.same(lines(problems(t, loadConfig({ configPath: writeConfig(t, provider('ftp://login.example')), env: {} }))), [
    'providers[0].issuer: expected an https:// URL',
  ]);
});

t.test('auth_method requirements', async (t) => {
  const provider = (body: string) => `
upstream: { url: "http://127.0.0.1:8080" }
providers:
  - name: p
    issuer: "https://login.example"
    client_id: c
${body}`;
  const check = (body: string) => loadConfig({ configPath: writeConfig(t, provider(body)), env: {} });
  t.same(lines(problems(t, check(''))), ['providers[0].client_secret: required with auth_method client_secret_basic']);
  t.same(lines(problems(t, check('    auth_method: client_secret_post\n'))), [
    'providers[0].client_secret: required with auth_method client_secret_post',
  ]);
  t.equal(
    ok(t, check('    auth_method: client_secret_post\n    client_secret: s\n')).providers[0]!.auth_method,
    'client_secret_post',
  );
  t.equal(ok(t, check('    auth_method: none\n')).providers[0]!.client_secret, undefined, 'none needs no secret');
  t.same(lines(problems(t, check('    auth_method: private_key_jwt\n'))), [
    'providers[0].private_key_file: required with auth_method private_key_jwt',
  ]);
  t.same(lines(problems(t, check('    auth_method: tls_client_auth\n'))), [
    'providers[0].tls_cert_file: required with auth_method tls_client_auth',
    'providers[0].tls_key_file: required with auth_method tls_client_auth',
  ]);
  t.same(lines(problems(t, check('    auth_method: none\n    tls_cert_file: c.pem\n'))), [
    'providers[0].tls_key_file: tls_cert_file and tls_key_file go together',
  ]);
  t.match(lines(problems(t, check('    auth_method: client_secret_jwt\n    client_secret: s\n'))), [
    /^providers\[0\]\.auth_method: /,
  ]);
  t.same(lines(problems(t, check('    client_secret: s\n    introspection_signing_alg: RS256\n'))), [
    'providers[0].introspection_signing_alg: only with introspection_response: jwt',
  ]);
  t.same(lines(problems(t, check('    auth_method: client_secret_post\n    client_secret: s\n    basic_auth_encoding: raw\n'))), [
    'providers[0].basic_auth_encoding: only with auth_method client_secret_basic',
  ]);
  t.same(lines(problems(t, check('    client_secret: s\n    basic_auth_encoding: latin1\n'))), [
    'providers[0].basic_auth_encoding: expected one of rfc6749, raw',
  ]);
});

t.test('environment overrides with a file', async (t) => {
  t.test('listeners, upstream and the single provider', async (t) => {
    const config = ok(
      t,
      loadConfig({
        configPath: writeConfig(t, GOOD.replace('http://127.0.0.1:8080', 'http://127.0.0.1:8080')),
        env: {
          TOLLGATE_LISTEN: '127.0.0.1:9001',
          TOLLGATE_ADMIN_LISTEN: '127.0.0.1:9002',
          TOLLGATE_UPSTREAM_URL: 'http://127.0.0.1:9003',
          TOLLGATE_ISSUER: 'https://other.example',
          TOLLGATE_INTROSPECTION_ENDPOINT: 'https://other.example/introspect',
          TOLLGATE_CLIENT_ID: 'env-client',
          TOLLGATE_CLIENT_SECRET: 'env-secret',
        },
      }),
    );
    t.equal(config.listen, '127.0.0.1:9001');
    t.equal(config.admin_listen, '127.0.0.1:9002');
    t.same(config.upstream, { url: 'http://127.0.0.1:9003', timeout_ms: 30000 }, "the file's other upstream keys stay");
    const p = config.providers[0]!;
    t.equal(p.name, 'acme', "the file's provider keeps its name");
    t.equal(p.issuer, 'https://other.example');
    t.equal(p.introspection_endpoint, 'https://other.example/introspect');
    t.equal(p.client_id, 'env-client');
    t.equal(p.client_secret, 'env-secret');
  });

  t.test('an empty variable does not override', async (t) => {
    const config = ok(
      t,
      loadConfig({ configPath: writeConfig(t, GOOD), env: { TOLLGATE_LISTEN: '', TOLLGATE_CLIENT_SECRET: '' } }),
    );
    t.equal(config.listen, '0.0.0.0:7080');
    t.equal(config.providers[0]!.client_secret, SECRET);
  });

  t.test('a bad override is a problem at the key it sets', async (t) => {
    const ps = problems(t, loadConfig({ configPath: writeConfig(t, GOOD), env: { TOLLGATE_LISTEN: 'nowhere' } }));
    t.same(lines(ps), ['listen: expected host:port'], 'one problem, not a second about the port');
  });

  t.test('provider variables with several providers are a problem, each named', async (t) => {
    const yaml = `${GOOD}  - name: beta
    issuer: "https://beta.example"
    client_id: tollgate
    client_secret: s
`;
    const ps = problems(
      t,
      loadConfig({
        configPath: writeConfig(t, yaml),
        env: { TOLLGATE_ISSUER: 'https://x.example', TOLLGATE_CLIENT_SECRET: SECRET },
      }),
    );
    t.same(lines(ps), [
      'TOLLGATE_ISSUER: applies only to a configuration file with exactly one provider',
      'TOLLGATE_CLIENT_SECRET: applies only to a configuration file with exactly one provider',
    ]);
    t.notMatch(JSON.stringify(ps), SECRET);
  });
});

t.test('zero-file mode', async (t) => {
  t.test('TOLLGATE_* variables make the provider `default`', async (t) => {
    const config = ok(
      t,
      loadConfig({
        env: {
          TOLLGATE_UPSTREAM_URL: 'http://127.0.0.1:8080',
          TOLLGATE_ISSUER: 'https://login.example',
          TOLLGATE_CLIENT_ID: 'tollgate',
          TOLLGATE_CLIENT_SECRET: SECRET,
        },
      }),
    );
    t.equal(config.upstream.url, 'http://127.0.0.1:8080');
    t.equal(config.listen, '0.0.0.0:7080');
    t.equal(config.providers.length, 1);
    t.match(config.providers[0], {
      name: 'default',
      issuer: 'https://login.example',
      client_id: 'tollgate',
      client_secret: SECRET,
      auth_method: 'client_secret_basic',
    });
    t.equal(config.providers[0]!.introspection_endpoint, undefined);
  });

  t.test('with an explicit endpoint', async (t) => {
    const config = ok(
      t,
      loadConfig({
        env: {
          TOLLGATE_UPSTREAM_URL: 'http://127.0.0.1:8080',
          TOLLGATE_ISSUER: 'http://127.0.0.1:9000',
          TOLLGATE_INTROSPECTION_ENDPOINT: 'http://127.0.0.1:9000/oauth/introspect',
          TOLLGATE_CLIENT_ID: 'tollgate',
          TOLLGATE_CLIENT_SECRET: 's',
        },
      }),
    );
    t.equal(config.providers[0]!.introspection_endpoint, 'http://127.0.0.1:9000/oauth/introspect');
  });

  t.test('missing TOLLGATE_UPSTREAM_URL and TOLLGATE_ISSUER are both problems, each said once', async (t) => {
    t.same(lines(problems(t, loadConfig({ env: {} }))), [
      'TOLLGATE_UPSTREAM_URL: required without a configuration file (or give --config FILE)',
      'TOLLGATE_ISSUER: required without a configuration file (or give --config FILE)',
    ]);
    t.same(lines(problems(t, loadConfig({ env: { TOLLGATE_UPSTREAM_URL: 'http://127.0.0.1:1' } }))), [
      'TOLLGATE_ISSUER: required without a configuration file (or give --config FILE)',
    ]);
    t.same(
      lines(
        problems(
          t,
          loadConfig({ env: { TOLLGATE_ISSUER: 'https://x.example', TOLLGATE_CLIENT_ID: 'c', TOLLGATE_CLIENT_SECRET: 's' } }),
        ),
      ),
      ['TOLLGATE_UPSTREAM_URL: required without a configuration file (or give --config FILE)'],
    );
  });

  t.test('missing credentials are problems of provider `default`', async (t) => {
    const ps = lines(
      problems(t, loadConfig({ env: { TOLLGATE_UPSTREAM_URL: 'http://127.0.0.1:8080', TOLLGATE_ISSUER: 'https://x.example' } })),
    );
    // Issue 18, failure 5: named by the variable the operator sets, not a YAML path never written.
    t.same(ps, ['TOLLGATE_CLIENT_ID: required', 'TOLLGATE_CLIENT_SECRET: required with auth_method client_secret_basic']);
  });

  t.test('an http:// issuer off loopback is refused here too', async (t) => {
    const ps = lines(
      problems(
        t,
        loadConfig({
          env: {
            TOLLGATE_UPSTREAM_URL: 'http://127.0.0.1:8080',
            TOLLGATE_ISSUER: 'http://login.example',
            TOLLGATE_CLIENT_ID: 'c',
            TOLLGATE_CLIENT_SECRET: 's',
          },
        }),
      ),
    );
    t.same(ps, ['TOLLGATE_ISSUER: http:// is accepted only for loopback hosts unless allow_http is true']);
  });

  const zeroFile = (extra: Record<string, string>) =>
    loadConfig({
      env: {
        TOLLGATE_UPSTREAM_URL: 'http://127.0.0.1:8080',
        TOLLGATE_ISSUER: 'https://login.example',
        TOLLGATE_CLIENT_ID: 'tollgate',
        TOLLGATE_CLIENT_SECRET: SECRET,
        ...extra,
      },
    });

  // Issue 18, failure 5: a Glewlwyd tenant needs client_secret_post and its private CA.
  t.test('TOLLGATE_AUTH_METHOD and TOLLGATE_CA_FILE', async (t) => {
    const ca = createPki(t.testdir({})).ca('zero-file-ca');
    const config = ok(t, zeroFile({ TOLLGATE_AUTH_METHOD: 'client_secret_post', TOLLGATE_CA_FILE: ca.certFile }));
    t.match(config.providers[0], { name: 'default', auth_method: 'client_secret_post', ca_file: ca.certFile });
  });

  t.test('problems with them name the variables', async (t) => {
    const missing = path.join(t.testdir({}), 'no-such-ca.pem');
    t.same(lines(problems(t, zeroFile({ TOLLGATE_AUTH_METHOD: 'client_secret_jwt', TOLLGATE_CA_FILE: missing }))), [
      'TOLLGATE_AUTH_METHOD: expected one of client_secret_basic, client_secret_post, private_key_jwt, tls_client_auth, self_signed_tls_client_auth, none',
    ]);
    t.match(lines(problems(t, zeroFile({ TOLLGATE_CA_FILE: missing }))), [/^TOLLGATE_CA_FILE: cannot read /]);
    t.same(lines(problems(t, zeroFile({ TOLLGATE_AUTH_METHOD: 'private_key_jwt', TOLLGATE_CLIENT_SECRET: '' }))), [
      'TOLLGATE_AUTH_METHOD: private_key_file: required with auth_method private_key_jwt (only a configuration file can set private_key_file)',
    ]);
    t.same(lines(problems(t, zeroFile({ TOLLGATE_LISTEN: 'nowhere', TOLLGATE_UPSTREAM_URL: 'ftp://x.example' }))), [
      'TOLLGATE_LISTEN: expected host:port',
      'TOLLGATE_UPSTREAM_URL: expected an http:// or https:// URL',
    ]);
  });

  t.test('with a file, they override its single provider', async (t) => {
    const config = ok(t, loadConfig({ configPath: writeConfig(t, GOOD), env: { TOLLGATE_AUTH_METHOD: 'client_secret_post' } }));
    t.equal(config.providers[0]!.auth_method, 'client_secret_post');
  });
});

t.test('no problem message ever contains a secret', async (t) => {
  const leaks = (ps: readonly Problem[]) => formatProblems(ps).includes(SECRET) || JSON.stringify(ps).includes(SECRET);

  t.test('a YAML syntax error on the secret line', async (t) => {
    for (const broken of [
      `    client_secret: "${SECRET}\n`, // unterminated quote
      `    client_secret: ${SECRET}: nested: x\n`, // mapping in a compact value
      `    client_secret: [${SECRET}\n`, // unclosed flow sequence
      `    client_secret: ${SECRET}\n   bad_indent: ${SECRET}\n`, // bad indentation
      `    client_secret: *${SECRET}\n`, // unknown alias
    ]) {
      const yaml = GOOD.replace(`    client_secret: "${SECRET}"\n`, broken);
      const ps = problems(t, loadConfig({ configPath: writeConfig(t, yaml), env: {} }));
      t.equal(ps.length, 1);
      t.match(ps[0]?.message, /^YAML: (an alias without its anchor|[a-z ]+ at line \d+, column \d+)$/);
      t.notOk(leaks(ps), `no secret in: ${formatProblems(ps)}`);
    }
  });

  t.test('a secret of the wrong type or in the wrong place', async (t) => {
    for (const yaml of [
      GOOD.replace(`"${SECRET}"`, `["${SECRET}"]`),
      GOOD.replace(`"${SECRET}"`, `{ x: "${SECRET}" }`),
      GOOD.replace('client_secret:', 'clent_secret:'),
      GOOD.replace('client_id: tollgate', `client_id: tollgate\n    auth_method: "${SECRET}"`),
      GOOD.replace('name: acme', `name: "${SECRET}"`),
      GOOD.replace('"https://login.acme.example"', `"${SECRET}"`),
      `${GOOD}provider_header: "${SECRET} x"\n`,
      `${GOOD}token_sources: ["${SECRET}"]\n`,
      `${GOOD}listen: "${SECRET}"\n`,
    ]) {
      const ps = problems(t, loadConfig({ configPath: writeConfig(t, yaml), env: {} }));
      t.ok(ps.length > 0);
      t.notOk(leaks(ps), `no secret in: ${formatProblems(ps)}`);
    }
  });

  t.test('a secret from the environment', async (t) => {
    const ps = problems(
      t,
      loadConfig({ env: { TOLLGATE_ISSUER: SECRET, TOLLGATE_CLIENT_SECRET: SECRET, TOLLGATE_LISTEN: SECRET } }),
    );
    t.ok(ps.length > 0);
    t.notOk(leaks(ps), `no secret in: ${formatProblems(ps)}`);
  });
});

t.test('a providers_dir file repeating an inline name, with another problem beside it', async (t) => {
  const dir = t.testdir({
    'tollgate.yaml': `${GOOD}providers_dir: providers.d\nroutes:\n  - providers: [acme, beta, nope]\n`,
    'providers.d': {
      'acme.yaml': 'issuer: "https://a.example"\nclient_id: c\nclient_secret: s\n',
      'beta.yaml': 'issuer: "https://b.example"\nclient_id: c\nclient_secret: s\n',
    },
  });
  const good = lines(problems(t, loadConfig({ configPath: path.join(dir, 'tollgate.yaml'), env: {} })));
  t.same(good, [
    'providers_dir/acme.yaml: name: duplicate provider name acme (also in providers[0])',
    'routes[0].providers[2]: unknown provider nope',
  ]);
  writeFileSync(
    path.join(dir, 'tollgate.yaml'),
    `${GOOD}    typo: 1\nproviders_dir: providers.d\nroutes:\n  - providers: [acme, beta, nope]\n`,
  );
  const bad = lines(problems(t, loadConfig({ configPath: path.join(dir, 'tollgate.yaml'), env: {} })));
  t.same(bad, [
    'providers[0].typo: unknown key',
    'providers_dir/acme.yaml: name: duplicate provider name acme (also in providers[0])',
    'routes[0].providers[2]: unknown provider nope',
  ]);
});
