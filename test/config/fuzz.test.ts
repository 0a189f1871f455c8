/**
 * A property of the configuration loader (issue 17), checked on generated input: every input — a
 * configuration tree from the schema with mutations, its YAML text with byte-level mutations, any
 * environment, files that are FIFOs, devices, symlink loops or too large — ends in a validated,
 * frozen configuration or in problems, each one line naming its path. Never an exception, never a
 * secret in a message, and what is accepted holds the invariants the loader promises.
 *
 * Seeded and bounded for CI. A longer run:
 *   TOLLGATE_FUZZ_RUNS=20000 TOLLGATE_FUZZ_SEED=42 npx tap test/config/fuzz.test.ts
 * (TOLLGATE_FUZZ_TIMEOUT_S raises tap's timeout for it.) A failure prints the seed and the
 * shrunk counterexample.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { stringify } from 'yaml';
import { formatProblems, loadConfig, LOG_LEVELS, type LoadResult } from '../../src/config/load.js';
import { MAX_CACHE_ENTRIES, MAX_TIMER_MS, MAX_TIMER_S } from '../../src/config/schema.js';
import { normalizeTarget, hostOf } from '../../src/proxy/routes.js';

const RUNS = Number(process.env.TOLLGATE_FUZZ_RUNS ?? 400);
const SEED = Number(process.env.TOLLGATE_FUZZ_SEED ?? 17_2026);
if (process.env.TOLLGATE_FUZZ_TIMEOUT_S !== undefined) t.setTimeout(Number(process.env.TOLLGATE_FUZZ_TIMEOUT_S) * 1000);

const SECRET = 'S3CRET-fuzz-91c2';

// A folder of its own (not tap's fixture folder), so that a long run beside the suite shares nothing.
const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-fuzz-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(path.join(dir, 'secret.txt'), `${SECRET}\n`);
writeFileSync(path.join(dir, 'big.txt'), 'x'.repeat(1024 * 1024 + 1));
mkdirSync(path.join(dir, 'providers.d'));
writeFileSync(
  path.join(dir, 'providers.d', 'good.yaml'),
  `issuer: "https://good.example"\nclient_id: c\nclient_secret: "${SECRET}"\n`,
);
writeFileSync(path.join(dir, 'providers.d', 'bad.yaml'), `issuer: 1\nclient_id: [\n`);
mkdirSync(path.join(dir, 'empty.d'));
// What must be refused without being read: a FIFO (a read would block forever), a device, a loop.
execFileSync('mkfifo', [path.join(dir, 'fifo')]);
execFileSync('mkfifo', [path.join(dir, 'providers.d', 'pipe.yaml')]);
symlinkSync('loop-b', path.join(dir, 'loop-a'));
symlinkSync('loop-a', path.join(dir, 'loop-b'));
symlinkSync('/dev/zero', path.join(dir, 'zero'));
mkdirSync(path.join(dir, 'sub'));

/** A configuration that is valid as it stands: the mutations start from here. */
const BASE = {
  listen: '127.0.0.1:7080',
  admin_listen: '127.0.0.1:7081',
  upstream: { url: 'http://127.0.0.1:8080', timeout_ms: 30000 },
  providers: [
    {
      name: 'acme',
      issuer: 'https://login.acme.example',
      client_id: 'tollgate',
      client_secret: SECRET,
      audience: ['orders-api'],
      timeout_ms: 2000,
      max_concurrency: 32,
      queue_timeout_ms: 1000,
      circuit_breaker: { failures: 5, max_pause_s: 30 },
    },
    { name: 'globex', issuer: 'http://127.0.0.1:9000', client_id: 'g', client_secret_file: 'secret.txt' },
  ],
  provider_header: null,
  cache: { ttl_s: 60, negative_ttl_s: 5, max_entries: 100000, stale_if_error_s: 0, refresh_ahead_s: 5 },
  clock_skew_s: 30,
  token_sources: ['header', 'cookie:at'],
  routes: [
    { match: { path_prefix: '/health' }, public: true },
    { match: { path_prefix: '/admin/', methods: ['POST', 'DELETE'] }, scopes: ['orders:admin'] },
    { match: { host: 'acme.api.example' }, providers: ['acme'] },
  ],
  headers: {
    claims: { 'X-Auth-Subject': 'sub', 'X-Auth-Scope': 'scope' },
    provider: 'X-Auth-Provider',
    claims_json: null,
    strip_prefixes: ['X-Auth-'],
    forward_authorization: false,
  },
  server: { headers_timeout_ms: 10000, request_timeout_ms: 300000, keep_alive_timeout_ms: 5000 },
  access_log: true,
  shutdown: { drain_delay_s: 5, timeout_s: 25 },
};

/** Values that once crashed, hung or slipped through, and their neighbours. */
const NASTY: unknown[] = [
  '',
  ' ',
  '${NOPE}',
  '${ACME_SECRET}',
  '127.0.0.1:8080',
  'http://',
  'https://a\nb.example',
  'ftp://x.example',
  'api.example:8080',
  '::1',
  '[::1]',
  '/x/../admin',
  '/%2e%2e/',
  '/a?b',
  '/%41',
  '\\admin',
  'header',
  'query',
  'cookie:at',
  'X-Auth-Provider',
  'x_auth_subject',
  'Host',
  'Content-Length',
  '__proto__',
  'constructor',
  'a\nforged: line',
  '\u0000',
  '\u2028',
  'fifo',
  'zero',
  'loop-a',
  'big.txt',
  'sub',
  '/dev/zero',
  'providers.d',
  'empty.d',
  0,
  -1,
  1.5,
  2 ** 31,
  2 ** 31 - 1,
  2 ** 32,
  2 ** 53,
  1e9,
  -1e308,
  1e308,
  Number.POSITIVE_INFINITY,
  Number.NaN,
  true,
  false,
  null,
  [],
  {},
  [[]],
  { __proto__: null, a: 1 },
];

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const value = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...NASTY) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 1, arbitrary: fc.integer() },
);

/** A path into the tree: each step picks an existing key or index by a number. */
type Mutation =
  | { op: 'set'; steps: number[]; value: unknown }
  | { op: 'delete'; steps: number[] }
  | { op: 'add'; steps: number[]; key: string; value: unknown }
  | { op: 'repeat'; steps: number[] };

const steps = fc.array(fc.nat(), { minLength: 0, maxLength: 4 });
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('set' as const), steps, value }),
  fc.record({ op: fc.constant('delete' as const), steps }),
  fc.record({
    op: fc.constant('add' as const),
    steps,
    key: fc.oneof(
      fc.constantFrom('__proto__', 'constructor', 'prototype', 'providers_dir', 'client_secret_file', 'typo', 'name'),
      fc.string({ maxLength: 8 }),
    ),
    value,
  }),
  fc.record({ op: fc.constant('repeat' as const), steps }),
);

/** Walks `steps` into the tree; returns the container reached and the key in it. */
function locate(
  tree: Json,
  walk: readonly number[],
): { parent: Json[] | Record<string, Json>; key: string | number } | undefined {
  let parent: Json = tree;
  let key: string | number | undefined;
  for (const step of walk) {
    const current: Json = key === undefined ? parent : (parent as Record<string, Json>)[key as string]!;
    if (current === null || typeof current !== 'object') break;
    const keys = Array.isArray(current) ? current.map((_, i) => i) : Object.keys(current);
    if (keys.length === 0) break;
    parent = current;
    key = keys[step % keys.length];
  }
  if (key === undefined || parent === null || typeof parent !== 'object') return undefined;
  return { parent: parent as Json[] | Record<string, Json>, key };
}

function mutate(tree: Json, m: Mutation): void {
  const at = locate(tree, m.steps);
  if (at === undefined) return;
  const { parent, key } = at;
  const p = parent as Record<string | number, unknown>;
  if (m.op === 'set') p[key] = m.value;
  else if (m.op === 'delete') {
    if (Array.isArray(parent)) parent.splice(key as number, 1);
    else delete p[key];
  } else if (m.op === 'add') {
    const target = p[key];
    if (target !== null && typeof target === 'object' && !Array.isArray(target))
      Object.defineProperty(target, m.key, { value: m.value, enumerable: true, writable: true, configurable: true });
    else if (Array.isArray(target)) target.push(m.value);
  } else if (Array.isArray(parent)) parent.push(structuredClone(parent[key as number]!));
}

/** YAML-level edits: the constructs that once crashed the parser's caller, and plain damage. */
const SNIPPETS = [
  '&a ',
  '*a',
  '*b',
  '<<: *a\n',
  '!!merge <<: ',
  '!!binary aGk= ',
  '!!set ',
  '!!timestamp 2001-12-14 ',
  '? [a]\n: b\n',
  'x: &a [*a]\n',
  'x: &a { <<: *a }\n',
  'x: &a [{ <<: *a }]\n',
  '<<: [*a, *b]\n',
  '- ',
  ': ',
  '{',
  '}',
  '[',
  ']',
  '"',
  "'",
  '\t',
  '\n',
  '\r\n',
  '%YAML 1.1\n---\n',
  '---\n',
  '...\n',
  '\u0000',
  '\uFEFF',
  '#',
  '${NOPE}',
  '\\u0000',
  '__proto__: {a: 1}\n',
];
type TextEdit = { op: 'insert'; at: number; text: string } | { op: 'delete'; at: number; length: number };
const textEdit: fc.Arbitrary<TextEdit> = fc.oneof(
  fc.record({
    op: fc.constant('insert' as const),
    at: fc.nat(),
    text: fc.oneof(fc.constantFrom(...SNIPPETS), fc.string({ maxLength: 6, unit: 'binary' })),
  }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 20 }) }),
);

function applyEdit(text: string, e: TextEdit): string {
  const at = e.at % (text.length + 1);
  return e.op === 'insert' ? text.slice(0, at) + e.text + text.slice(at) : text.slice(0, at) + text.slice(at + e.length);
}

const VARIABLES = [
  'TOLLGATE_LISTEN',
  'TOLLGATE_ADMIN_LISTEN',
  'TOLLGATE_UPSTREAM_URL',
  'TOLLGATE_ISSUER',
  'TOLLGATE_INTROSPECTION_ENDPOINT',
  'TOLLGATE_CLIENT_ID',
  'TOLLGATE_CLIENT_SECRET',
  'TOLLGATE_LOG_LEVEL',
  'ACME_SECRET',
] as const;
const envValue = fc.oneof(
  fc.constantFrom(
    '',
    '127.0.0.1:7080',
    '127.0.0.1:7081',
    '127.0.0.1:8080',
    'http://127.0.0.1:8080',
    'https://idp.example',
    'verbose',
    'debug',
    'x\ny',
  ),
  fc.string({ maxLength: 10 }),
);
const environment = fc.dictionary(fc.constantFrom(...VARIABLES), envValue, { maxKeys: 4 });

/**
 * Flow-style YAML from a small grammar of its own constructs — anchors, aliases (defined or not,
 * inside their own anchor or not), merge keys of mappings, sequences and scalars, tags — so that
 * the walk of aliases and merges meets every shape, not only the ones text damage reaches.
 */
const anchor = fc.constantFrom('a0', 'a1', 'a2');
const { yamlNode } = fc.letrec<{ yamlNode: string; yamlMap: string; yamlSeq: string }>((tie) => ({
  yamlNode: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom('1', 'x', '""', 'null', '-1e308', '"${NOPE}"', '!!binary aGk=', '!!str 5', '__proto__', '"/x/../a"'),
    tie('yamlMap'),
    tie('yamlSeq'),
    fc.tuple(anchor, tie('yamlNode')).map(([a, n]) => `&${a} ${n}`),
    anchor.map((a) => `*${a}`),
  ),
  yamlMap: fc
    .array(
      fc.tuple(
        fc.oneof(
          fc.constantFrom('<<', '!!merge <<', 'ttl_s', 'name', '__proto__', 'k', 'k'),
          anchor.map((a) => `*${a}`),
        ),
        tie('yamlNode'),
      ),
      { maxLength: 4 },
    )
    .map((pairs) => `{ ${pairs.map(([k, v]) => `${k}: ${v}`).join(', ')} }`),
  yamlSeq: fc.array(tie('yamlNode'), { maxLength: 4 }).map((items) => `[${items.join(', ')}]`),
}));
/** Appended as top-level keys (unknown ones, or cache and routes) after the base file. */
const yamlExtra = fc.array(fc.tuple(fc.constantFrom('x', 'y', 'cache', 'routes', 'headers'), yamlNode), { maxLength: 3 });

/** Often none of a kind of damage: a case with a little damage says more than one with a lot. */
const sometimes = <T>(arbitrary: fc.Arbitrary<T[]>) => fc.oneof(fc.constant([] as T[]), arbitrary);

const input = fc.record({
  mutations: sometimes(fc.array(mutation, { maxLength: 4 })),
  extra: sometimes(yamlExtra),
  edits: sometimes(fc.array(textEdit, { maxLength: 3 })),
  env: fc.oneof(fc.constant({}), environment),
  zeroFile: fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
});

let caseNumber = 0;

/** The property of issue 17, item 1, for one input. */
function check(result: LoadResult): void {
  if (!result.ok) {
    if (result.problems.length === 0) throw new Error('refused without a problem');
    for (const p of result.problems) {
      if (typeof p.path !== 'string' || p.path === '') throw new Error(`a problem without a path: ${JSON.stringify(p)}`);
      if (typeof p.message !== 'string' || p.message === '') throw new Error(`a problem without a message: ${JSON.stringify(p)}`);
    }
    const printed = formatProblems(result.problems);
    if (printed.split('\n').length !== result.problems.length)
      throw new Error(`a problem printed on more than one line:\n${printed}`);
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u0009\u000b-\u001f\u007f\u2028\u2029]/.test(printed))
      throw new Error(`a control character printed: ${JSON.stringify(printed)}`);
    if (printed.includes(SECRET)) throw new Error(`the secret printed:\n${printed}`);
    return;
  }
  // Accepted: frozen, and none of the silent no-ops the loader refuses.
  const c = result.config;
  if (!Object.isFrozen(c) || !Object.isFrozen(c.providers) || !Object.isFrozen(c.routes)) throw new Error('not frozen');
  if (c.providers.length === 0) throw new Error('accepted without a provider');
  const timersMs = [
    c.upstream.timeout_ms,
    c.server.headers_timeout_ms,
    c.server.request_timeout_ms,
    c.server.keep_alive_timeout_ms,
    ...c.providers.flatMap((p) => [p.timeout_ms, p.queue_timeout_ms]),
  ];
  const timersS = [
    c.cache.ttl_s,
    c.cache.negative_ttl_s,
    c.cache.stale_if_error_s,
    c.cache.refresh_ahead_s,
    c.clock_skew_s,
    c.shutdown.drain_delay_s,
    c.shutdown.timeout_s,
    ...c.providers.map((p) => p.circuit_breaker.max_pause_s),
  ];
  if (!timersMs.every((v) => Number.isInteger(v) && v >= 0 && v <= MAX_TIMER_MS))
    throw new Error(`a timer out of range: ${timersMs}`);
  if (!timersS.every((v) => Number.isFinite(v) && v >= 0 && v <= MAX_TIMER_S))
    throw new Error(`a timer out of range: ${timersS}`);
  if (!(c.cache.max_entries >= 1 && c.cache.max_entries <= MAX_CACHE_ENTRIES)) throw new Error('max_entries out of range');
  if (new Set(c.token_sources).size !== c.token_sources.length) throw new Error('a token source twice');
  if (c.listen === c.admin_listen && !c.listen.endsWith(':0')) throw new Error('listen = admin_listen');
  for (const r of c.routes) {
    if (r.match.host !== undefined && hostOf(r.match.host) !== r.match.host.toLowerCase())
      throw new Error(`host with a port: ${r.match.host}`);
    if (r.match.path_prefix !== undefined && normalizeTarget(r.match.path_prefix).path !== r.match.path_prefix)
      throw new Error(`prefix not normalised: ${r.match.path_prefix}`);
  }
  for (const p of c.providers) {
    for (const url of [p.issuer, p.introspection_endpoint])
      if (url !== undefined && !URL.canParse(url)) throw new Error(`not a URL: ${url}`);
    if (Object.getPrototypeOf(p) !== Object.prototype) throw new Error('a provider with another prototype');
  }
  if (!URL.canParse(c.upstream.url)) throw new Error('upstream not a URL');
}

t.test(`the loader is total (${RUNS} cases, seed ${SEED})`, async (t) => {
  const started = process.hrtime.bigint();
  let accepted = 0;
  fc.assert(
    fc.property(input, ({ mutations, extra, edits, env, zeroFile }) => {
      const tree = structuredClone(BASE) as unknown as Json;
      for (const m of mutations) mutate(tree, m);
      let text: string;
      try {
        text = stringify(tree);
      } catch {
        return; // a tree yaml cannot write (not a loader input)
      }
      // A key the tree already has would only be a duplicate: the grammar's keys replace them.
      for (const [key, node] of extra)
        text = `${text.replace(new RegExp(`^${key}:.*(\\n[ -].*)*\\n?`, 'm'), '')}${key}: ${node}\n`;
      for (const e of edits) text = applyEdit(text, e);
      const file = path.join(dir, `case-${caseNumber++ % 50}.yaml`);
      writeFileSync(file, text);
      const result = loadConfig({ configPath: zeroFile ? undefined : file, env });
      if (result.ok) accepted++;
      check(result);
    }),
    { numRuns: RUNS, seed: SEED, endOnFailure: false },
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  t.comment(`${RUNS} cases in ${seconds.toFixed(1)} s (seed ${SEED}); ${accepted} accepted`);
  t.ok(accepted > 0, 'some generated configurations are valid (the generator is not only noise)');
  t.ok(accepted < RUNS, 'some are not');
});

t.test('a log level that pino knows is accepted', async (t) => {
  for (const level of LOG_LEVELS) {
    const result = loadConfig({
      env: {
        TOLLGATE_UPSTREAM_URL: 'http://127.0.0.1:8080',
        TOLLGATE_ISSUER: 'http://127.0.0.1:9',
        TOLLGATE_CLIENT_ID: 'c',
        TOLLGATE_CLIENT_SECRET: 's',
        TOLLGATE_LOG_LEVEL: level,
      },
    });
    t.ok(result.ok, level);
  }
});
