/**
 * Routes that can never match (SPEC §2: first match wins). A route is dead when the routes before
 * it already take every request it would: each of them covers its host, its path prefix and its
 * methods. A dead route is a configuration mistake that silently disables a check — often the
 * scopes of a narrower route written after a broader one — so it is reported like a typo.
 */
import { pathPrefixCovers } from '../proxy/routes.js';
import type { Problem } from './load.js';
import type { RouteConfig } from './schema.js';

type Match = RouteConfig['match'];

/** Does `earlier` take every request `later` would (host and path; methods are counted apart)? */
function coversHostAndPath(earlier: Match, later: Match): boolean {
  if (earlier.host !== undefined && earlier.host.toLowerCase() !== later.host?.toLowerCase()) return false;
  // A prefix that covers the later prefix covers every path the later one does (segment-bounded).
  if (earlier.path_prefix !== undefined && !pathPrefixCovers(earlier.path_prefix, later.path_prefix ?? '')) return false;
  return true;
}

export function findShadowedRoutes(routes: readonly RouteConfig[]): Problem[] {
  const problems: Problem[] = [];
  routes.forEach((route, j) => {
    const wanted = route.match.methods?.map((m) => m.toUpperCase());
    const by: number[] = [];
    const covered = new Set<string>();
    for (let i = 0; i < j; i++) {
      const earlier = routes[i]!.match;
      if (!coversHostAndPath(earlier, route.match)) continue;
      if (earlier.methods === undefined) {
        by.splice(0, by.length, i);
        covered.clear();
        break;
      }
      // Together, several earlier routes may take all of this route's methods.
      if (wanted === undefined) continue;
      const theirs = earlier.methods.map((m) => m.toUpperCase());
      if (!theirs.some((m) => wanted.includes(m) && !covered.has(m))) continue;
      by.push(i);
      for (const m of theirs) covered.add(m);
      if (wanted.every((m) => covered.has(m))) break;
    }
    const all = by.length > 0 && (covered.size === 0 || (wanted !== undefined && wanted.every((m) => covered.has(m))));
    if (!all) return;
    const names = by.map((i) => `routes[${i}]`);
    const who = names.length === 1 ? `${names[0]} matches` : `${names.slice(0, -1).join(', ')} and ${names.at(-1)} match`;
    problems.push({ path: `routes[${j}]`, message: `never matches: ${who} every request it would` });
  });
  return problems;
}
