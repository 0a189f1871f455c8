/** Routes that can never match: shadowed by one earlier route, or by several together. */
import t from 'tap';
import { findShadowedRoutes } from '../../src/config/shadow.js';
import type { RouteConfig } from '../../src/config/schema.js';

const route = (match: RouteConfig['match']): RouteConfig => ({ match, public: false, scopes: [] });

t.test('shadowed routes', async (t) => {
  const cases: [string, RouteConfig['match'][], string[]][] = [
    [
      'an empty match takes everything after it',
      [{}, { path_prefix: '/a' }],
      ['routes[1]: never matches: routes[0] matches every request it would'],
    ],
    ['a broader prefix', [{ path_prefix: '/api' }, { path_prefix: '/api/admin' }], ['routes[1]']],
    ['the same prefix', [{ path_prefix: '/a' }, { path_prefix: '/a' }], ['routes[1]']],
    ['a prefix covers whole segments only', [{ path_prefix: '/health' }, { path_prefix: '/healthcare' }], []],
    ['a prefix ending in / covers what starts with it', [{ path_prefix: '/api/' }, { path_prefix: '/api/v1' }], ['routes[1]']],
    ['a narrower prefix first is fine', [{ path_prefix: '/api/admin' }, { path_prefix: '/api' }], []],
    ['any host covers a host', [{ path_prefix: '/a' }, { host: 'x.example', path_prefix: '/a/b' }], ['routes[1]']],
    ['hosts compare case-insensitively', [{ host: 'X.example' }, { host: 'x.EXAMPLE', path_prefix: '/a' }], ['routes[1]']],
    ['another host does not', [{ host: 'x.example' }, { host: 'y.example' }], []],
    ['a host route does not cover every host', [{ host: 'x.example' }, { path_prefix: '/a' }], []],
    ['all methods cover some', [{ path_prefix: '/a' }, { path_prefix: '/a', methods: ['GET'] }], ['routes[1]']],
    ['some methods do not cover all', [{ path_prefix: '/a', methods: ['GET'] }, { path_prefix: '/a' }], []],
    ['other methods do not', [{ methods: ['GET'] }, { methods: ['POST'] }], []],
    ['a superset of methods does', [{ methods: ['get', 'POST'] }, { methods: ['POST'] }], ['routes[1]']],
    [
      'several routes together',
      [
        { methods: ['GET'] },
        { path_prefix: '/b', methods: ['PUT'] },
        { methods: ['POST'] },
        { path_prefix: '/a', methods: ['GET', 'POST'] },
      ],
      ['routes[3]: never matches: routes[0] and routes[2] match every request it would'],
    ],
    [
      'a route neither covers',
      [{ path_prefix: '/a', methods: ['GET'] }, { path_prefix: '/b' }, { path_prefix: '/a', methods: ['GET', 'PUT'] }],
      [],
    ],
  ];
  for (const [name, matches, expected] of cases) {
    const problems = findShadowedRoutes(matches.map(route)).map((p) => `${p.path}: ${p.message}`);
    t.equal(problems.length, expected.length, name);
    expected.forEach((e, i) => t.ok(problems[i]?.startsWith(e), `${name}: ${problems[i]}`));
  }
});
