/**
 * The `jwt` provider block and the route key `introspect: always`: defaults, and what check-config
 * refuses, each problem with its path and all of them in one run.
 */
import t from 'tap';
import { validateConfig, type Problem } from '../../src/config/load.js';

const base = (providers: Record<string, unknown>[], routes: Record<string, unknown>[] = []) => ({
  upstream: { url: 'http://127.0.0.1:8080' },
  providers,
  routes,
});

const problemsOf = (raw: Record<string, unknown>): Problem[] => {
  const result = validateConfig(raw, { env: {} });
  return result.ok ? [] : result.problems;
};

const jwtOnly = { name: 'entra', issuer: 'https://login.example/t/v2.0', audience: 'api://orders', jwt: {} };
const credentials = { client_id: 'tollgate', client_secret: 'secret' };

t.test('a jwt provider needs no client credentials; defaults are the documented ones', async (t) => {
  const result = validateConfig(base([jwtOnly]), { env: {} });
  if (!result.ok) throw new Error(JSON.stringify(result.problems));
  const p = result.config.providers[0]!;
  t.same(p.jwt, { jwks_uri: null, algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'], typ: null, scope_claims: ['scope', 'scp'] });
  t.same(p.audience, ['api://orders']);
  t.equal(p.client_id, undefined);
});

t.test('refused: jwt without audience, none or HS* in algorithms, an unknown algorithm', async (t) => {
  const problems = problemsOf(
    base([{ name: 'a', issuer: 'https://a.example', jwt: { algorithms: ['none', 'HS256', 'RS256', 'XX1', 'hs512'] } }]),
  );
  t.same(
    problems.map((p) => p.path).sort(),
    [
      'providers[0].audience',
      'providers[0].jwt.algorithms[0]',
      'providers[0].jwt.algorithms[1]',
      'providers[0].jwt.algorithms[3]',
      'providers[0].jwt.algorithms[4]',
    ].sort(),
  );
  t.match(problems.find((p) => p.path.endsWith('algorithms[0]'))!.message, /none is refused/);
  t.match(problems.find((p) => p.path.endsWith('algorithms[1]'))!.message, /HS256 is refused/);
  t.match(problems.find((p) => p.path === 'providers[0].audience')!.message, /required with jwt/);
});

t.test('refused: a provider with neither jwt nor client credentials', async (t) => {
  const problems = problemsOf(base([{ name: 'a', issuer: 'https://a.example' }]));
  t.same(
    problems.map((p) => `${p.path}: ${p.message}`),
    ['providers[0].client_id: required', 'providers[0].client_secret: required with auth_method client_secret_basic'],
  );
});

t.test('refused: introspect: always on a route whose allowed providers lack introspection', async (t) => {
  const hybrid = { name: 'hybrid', issuer: 'https://h.example', audience: 'x', jwt: {}, ...credentials };
  const problems = problemsOf(
    base(
      [jwtOnly, hybrid],
      [
        { match: { path_prefix: '/payments' }, introspect: 'always', providers: ['entra'] },
        { match: { path_prefix: '/refunds' }, introspect: 'always', providers: ['hybrid'] },
        { match: { path_prefix: '/all' }, introspect: 'always' },
      ],
    ),
  );
  t.same(
    problems.map((p) => p.path),
    ['routes[0].introspect', 'routes[2].introspect'],
  );
  t.match(problems[0]!.message, /entra has none/);
  t.same(problemsOf(base([hybrid], [{ introspect: 'always' }])), [], 'fine when every allowed provider introspects');
  t.same(
    problemsOf(base([hybrid], [{ introspect: 'sometimes' }])).map((p) => p.path),
    ['routes[0].introspect'],
  );
});

t.test('refused: a plain-http jwks_uri off loopback, a client_secret without client_id', async (t) => {
  const problems = problemsOf(base([{ ...jwtOnly, jwt: { jwks_uri: 'http://keys.example/jwks' }, client_secret: 'x' }]));
  t.same(problems.map((p) => p.path).sort(), ['providers[0].client_secret', 'providers[0].jwt.jwks_uri']);
  t.same(problemsOf(base([{ ...jwtOnly, jwt: { jwks_uri: 'http://127.0.0.1:9/jwks' } }])), [], 'loopback is fine');
});
