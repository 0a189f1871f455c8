/**
 * Routes are grouped by host so that 1,000 tenant hosts cost a request one lookup (see
 * test/bench/providers.ts). The grouping must never change which route matches: first match wins,
 * host-less routes interleaved with host routes keep their place. Checked against the plain scan.
 */
import fc from 'fast-check';
import t from 'tap';
import { matchRoute, type CompiledRoute } from '../../src/proxy/routes.js';

const HOSTS = ['a.test', 'b.test', 'c.test'];
const PREFIXES = ['/', '/a', '/a/b', '/b'];
const METHODS = ['GET', 'POST', 'PUT'];

const routeArb = fc.record({
  host: fc.option(fc.constantFrom(...HOSTS), { nil: undefined }),
  pathPrefix: fc.option(fc.constantFrom(...PREFIXES), { nil: undefined }),
  methods: fc.option(fc.subarray(METHODS, { minLength: 1 }), { nil: undefined }),
});

const fallback: CompiledRoute<null> = {
  index: null,
  host: undefined,
  pathPrefix: undefined,
  methods: undefined,
  public: false,
  scopes: [],
  scopeText: '',
  providers: null,
};

t.test('the host index matches exactly what a scan of every route matches', async (t) => {
  fc.assert(
    fc.property(
      fc.array(routeArb, { maxLength: 12 }),
      fc.constantFrom(...HOSTS, 'other.test', ''),
      fc.constantFrom('/', '/a', '/a/b/c', '/b', '/c'),
      fc.constantFrom(...METHODS, 'DELETE'),
      (specs, host, path, method) => {
        const routes = specs.map((r, index): CompiledRoute<null> => ({
          ...fallback,
          index,
          host: r.host,
          pathPrefix: r.pathPrefix,
          methods: r.methods === undefined ? undefined : new Set(r.methods),
        }));
        const scanned = matchRoute([...routes], fallback, method, host, path); // not frozen: plain scan
        const indexed = matchRoute(Object.freeze(routes), fallback, method, host, path);
        return scanned === indexed;
      },
    ),
    { numRuns: 2000 },
  );
  t.pass('2,000 random route tables and requests agree');
});
